"""The ``mlzoo`` command line.

Exit codes: ``run`` 0 done (promoted or rejected), 1 failed (nothing promoted),
2 challenger held (a person decides: ``mlzoo promote``), 3 data failed validation;
``reproduce`` 0 reproduced within tolerance, 1 metrics differ, 2 data version not in
the remote, 3 code differs from what trained it; ``promote`` / ``rollback`` 0 or 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from flows.settings import Settings


def _overrides(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--set expects key=value, got '{pair}'")
        out[key] = value
    return out


def _settings(args: argparse.Namespace) -> Settings:
    s = Settings.from_env().apply()
    if getattr(args, "server", True) and args.command in ("run", "deploy", "promote", "rollback"):
        from flows.prefect_server import ensure_server

        print(f"Prefect API: {ensure_server(s)}", file=sys.stderr)
    return s


EXIT_FAILED, EXIT_HELD, EXIT_INVALID_DATA = 1, 2, 3


def cmd_run(args: argparse.Namespace, s: Settings) -> int:
    from flows.pipeline import retrain, retrain_all
    from flows.promotion import PromotionHeld
    from flows.redact import hide
    from flows.tracking import RegistryError
    from flows.validation import DataValidationError

    data = {k: v for k, v in (("source", args.source), ("path", args.path)) if v} | _overrides(args.data)
    data = hide(data)  # a URL with credentials travels as a Prefect Secret reference, never as a parameter
    if args.fan_out:
        if args.nproc != 1:
            raise SystemExit("--nproc trains in this process's machine: it does not combine with --fan-out")
        return _fan_out(args, s)
    if len(args.task) > 1:
        raise SystemExit("several tasks run at once with --fan-out (or run `mlzoo run all`)")
    (task,) = args.task
    try:
        if task == "all":
            result = retrain_all(args.profile, train_overrides=_overrides(args.set), nproc=args.nproc)
        else:
            result = retrain(
                task, args.profile, data_overrides=data, train_overrides=_overrides(args.set), nproc=args.nproc
            )
    except PromotionHeld as held:
        print(json.dumps(held.result, indent=2, default=str))
        print(f"\nHELD, nothing promoted: {held.reason}", file=sys.stderr)
        return EXIT_HELD
    except DataValidationError as bad:
        print(f"\n{bad}", file=sys.stderr)
        return EXIT_INVALID_DATA
    except RegistryError as exc:
        print(f"\n{exc}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result, indent=2, default=str))
    task = task if task != "all" else "TASK"
    print(
        "\nWhere to look next:\n"
        f"  MLflow UI (runs, models, aliases): .venv/bin/mlflow ui --backend-store-uri {s.tracking_uri}\n"
        f"  Prefect UI (flow runs):            {os.environ.get('PREFECT_API_URL', '').removesuffix('/api')}\n"
        f"  the champion over HTTP:            .venv/bin/mlzoo serve {task}   (then POST /predict)\n"
        "  every task at a glance:            .venv/bin/mlzoo status"
    )
    return 0


def _check_nproc(args: argparse.Namespace) -> None:
    """Refuse a bad ``--nproc`` before the Prefect server starts or any work is done."""
    if args.command != "run" or getattr(args, "nproc", 1) == 1:
        return
    from flows.training import check_nproc

    if args.nproc < 1:
        raise SystemExit(f"--nproc must be at least 1, got {args.nproc}")
    for task in args.task:
        if task == "all":  # retrain_all trains the tasks that cannot in one process each
            continue
        try:
            check_nproc(task, args.nproc)
        except (KeyError, ValueError) as exc:
            raise SystemExit(str(exc).strip('"')) from None


def _code_source(args: argparse.Namespace, s: Settings) -> tuple[str | None, str | None]:
    """Where workers get the code: ``--repo``, the cluster's repository when this shell points at
    a cluster (this checkout's HEAD is pushed there first), else this folder (None)."""
    from flows import cluster

    if getattr(args, "repo", None):
        return args.repo, getattr(args, "commit", None)
    state = cluster.read_state(s)
    if state and "prefect" in state and os.environ.get("PREFECT_API_URL") == state["prefect"]["url"]:
        return cluster.repo_url(s), cluster.publish_code(s)
    return None, None


def _fan_out(args: argparse.Namespace, s: Settings) -> int:
    from flows.fanout import fan_out
    from tasks_lib.core.registry import task_names

    tasks = task_names() if args.task == ["all"] else args.task
    repo, commit = _code_source(args, s)
    outcome = fan_out(tasks, args.profile, args.pool, _overrides(args.set), repo, commit, echo=_stderr)
    print(json.dumps(outcome, indent=2))
    failed = [t for t, o in outcome.items() if o["state"] != "COMPLETED"]
    print(f"\n{len(tasks) - len(failed)} of {len(tasks)} completed" + (f"; not: {', '.join(failed)}" if failed else ""))
    return EXIT_FAILED if failed else 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_prepare(args: argparse.Namespace, s: Settings) -> int:
    from flows import dvc_store, steps

    p = steps.plan(s, args.task, args.profile)
    print(steps.prepare(s, p, dvc_store.data_dir(s, args.task)))
    return 0


def cmd_status(args: argparse.Namespace, s: Settings) -> int:
    from flows import status
    from flows.prefect_server import attach

    attach(s)  # a running local server, if any, so runs killed mid-flow show as crashed there too
    st = status.collect(s)
    print(json.dumps(st, indent=2) if args.json else status.table(st))
    return 0


def cmd_rollback(args: argparse.Namespace, s: Settings) -> int:
    from flows import packaging, promotion, tracking

    try:
        version, reason = promotion.rollback(s, args.task)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(reason)
    print(f"Bento: {packaging.find_bento(tracking.client(s).get_model_version(args.task, version))}")
    return 0


def cmd_promote(args: argparse.Namespace, s: Settings) -> int:
    import getpass

    from flows import packaging, promotion, steps, tracking

    who = args.who or getpass.getuser()
    try:
        print(
            promotion.promote_by_hand(
                s, args.task, args.version, who, args.why, lambda v: steps.package(s, args.task, v)
            )
        )
    except Exception as exc:  # noqa: BLE001  (no such version, registry unreachable ...): nothing moved
        print(f"not promoted: {exc}", file=sys.stderr)
        return 1
    print(f"Bento: {packaging.find_bento(tracking.client(s).get_model_version(args.task, args.version))}")
    return 0


def cmd_reproduce(args: argparse.Namespace, s: Settings) -> int:
    from flows.dvc_store import DataVersionMissing
    from flows.reproduce import CodeDrift, reproduce

    try:
        r = reproduce(s, args.spec, args.tolerance, allow_code_drift=args.allow_code_drift)
    except DataVersionMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    except CodeDrift as drift:
        print(f"{drift}\n(--allow-code-drift retrains with the code checked out now)", file=sys.stderr)
        return 3
    print(f"{r.task} v{r.version}\n{r.table()}")
    return 0 if r.ok else 1


def cmd_gc(args: argparse.Namespace, s: Settings) -> int:
    from flows import dvc_store, gc

    with dvc_store.workspace_lock(s):  # no run may version data while its cache objects are judged
        garbage = gc.find(s, args.keep)
        for line in garbage.lines():
            print(("removing " if args.apply else "would remove ") + line)
        if not garbage.versions and not garbage.cache_objects:
            print("nothing to remove")
        elif args.apply:
            gc.remove(s, garbage)
        else:
            print("(dry run: --apply removes them)")
    return 0


def cmd_serve(args: argparse.Namespace, s: Settings) -> int:
    from flows import steps, tracking

    if args.task == "all":
        return _serve_all(args, s)
    champ = tracking.get_alias(s, args.task, tracking.CHAMPION)
    if champ is None:
        raise SystemExit(f"'{args.task}' has no @champion yet: run `mlzoo run {args.task}` first")
    bento = steps.package(s, args.task, str(champ.version))
    cmd = [
        str(Path(sys.executable).with_name("bentoml")),
        "serve",
        bento,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    print(f"Serving {bento} (model v{champ.version}) on http://{args.host}:{args.port}", file=sys.stderr)
    os.execv(cmd[0], cmd)


def _serve_all(args: argparse.Namespace, s: Settings) -> int:
    """Every champion behind one server, each task's API under /TASK (the service of the code running now)."""
    import bentoml
    import yaml

    from flows import steps, tracking
    from flows.packaging import SERVICE
    from flows.settings import PROJECT_ROOT
    from tasks_lib.core.registry import task_names

    tags = []
    for task in task_names():
        champ = tracking.get_alias(s, task, tracking.CHAMPION)
        if champ is None:
            continue
        bento = bentoml.bentos.get(steps.package(s, task, str(champ.version)))
        tags += [str(m.tag) for m in bento.info.models]
        print(f"  /{task}/predict  (model v{champ.version})", file=sys.stderr)
    if not tags:
        raise SystemExit("no task has a @champion yet: run `mlzoo run TASK` first")
    arg_file = s.home / "serve-all.yaml"
    arg_file.parent.mkdir(parents=True, exist_ok=True)
    arg_file.write_text(yaml.safe_dump({"models": tags}))
    cmd = [str(Path(sys.executable).with_name("bentoml")), "serve", SERVICE, "--arg-file", str(arg_file)]
    cmd += ["--host", args.host, "--port", str(args.port), "--working-dir", str(PROJECT_ROOT)]
    print(f"Serving {len(tags)} champions on http://{args.host}:{args.port}/TASK/...", file=sys.stderr)
    os.execv(cmd[0], cmd)


def cmd_deploy(args: argparse.Namespace, s: Settings) -> int:
    from flows.deploy import deploy, deploy_watch
    from tasks_lib.core.registry import task_names

    repo, commit = _code_source(args, s)
    if repo:
        print(f"code: {repo}" + (f" @ {commit}" if commit else ""))
    if args.on_data_change:
        data = {k: v for k, v in (("source", args.source), ("path", args.path)) if v}
        for task in args.tasks:
            name = deploy_watch(task, _seconds(args.every), args.pool, data, args.profile, repo, commit)
            print(f"deployment {name}: every {args.every}, starts retrain when {args.path} changes")
    else:
        tasks = args.tasks or task_names()
        for name in deploy(tasks, args.cron, args.pool, args.profile, repo, commit, nproc=args.nproc):
            print(f"deployment {name}: cron '{args.cron}', pool '{args.pool}'")
    print(f"Start a worker for the pool:  .venv/bin/prefect worker start --pool {args.pool}")
    return 0


def _seconds(every: str) -> int:
    """``90``, ``90s``, ``10m``, ``2h`` -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    return int(every[:-1]) * units[every[-1]] if every[-1] in units else int(every)


def cmd_server(args: argparse.Namespace, s: Settings) -> int:
    from flows.prefect_server import ensure_server, stop_server

    if args.action == "start":
        print(ensure_server(s))
    else:
        print("stopped" if stop_server(s) else "no server recorded")
    return 0


def cmd_cluster(args: argparse.Namespace, s: Settings) -> int:
    from flows import cluster

    if args.action == "up":
        state = cluster.up(s, workers=args.workers)
        print(f"cluster up: {len(state['workers'])} workers in pool '{cluster.POOL}'", file=sys.stderr)
        print("\n".join(f"export {k}={v}" for k, v in cluster.env(s).items()))
    elif args.action == "down":
        print("stopped: " + (", ".join(cluster.down(s, purge=args.purge)) or "nothing (no cluster)"))
    elif args.action == "env":
        print("\n".join(f"export {k}={v}" for k, v in cluster.env(s).items()))
    else:
        health = cluster.status(s)
        if args.json:
            print(json.dumps(health, indent=2))
        else:
            for name, v in health.items():
                rows = v if isinstance(v, list) else [dict(v, name=name)]
                for r in rows:
                    mark = "ok  " if r.get("healthy", True) else "DOWN"
                    print(f"{mark} {r.get('name', name):<24} {r.get('url', r.get('dir', ''))}  pid {r.get('pid', '-')}")
        return 0 if health and all(v.get("healthy", True) for v in health.values() if isinstance(v, dict)) else 1
    return 0


def cmd_tasks(args: argparse.Namespace, s: Settings) -> int:
    from tasks_lib.core.registry import get_task, task_names

    for name in task_names():
        t = get_task(name)
        print(f"{name:<24} metric={t.metric:<10} sources={','.join(t.sources())}  profiles={','.join(t.profiles)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlzoo", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the retrain flow for a task (or 'all'; several with --fan-out)")
    p.add_argument("task", nargs="+")
    p.add_argument("--fan-out", action="store_true", help="one deployment run per task on the pool's workers")
    p.add_argument("--pool", default="cpu", help="work pool of --fan-out")
    p.add_argument("--profile", default="quick", help="smoke | quick | full")
    p.add_argument("--source", help="data source name (see `mlzoo tasks`)")
    p.add_argument("--path", help="folder or URL the source reads")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="training config override")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE", help="data config override")
    p.add_argument(
        "--nproc",
        type=int,
        default=1,
        metavar="N",
        help="train in N data-parallel processes on this machine (DDP: one GPU each, or gloo on CPU)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("prepare", help="write data/TASK (the command of the DVC stage)")
    p.add_argument("task")
    p.add_argument("--profile", default="quick")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("status", help="champions, metrics, data versions and Bentos")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("rollback", help="make @previous the @champion again (serving its own Bento)")
    p.add_argument("task")
    p.set_defaults(func=cmd_rollback)

    p = sub.add_parser("promote", help="make VERSION the @champion by hand (e.g. a held challenger)")
    p.add_argument("task")
    p.add_argument("version")
    p.add_argument("--why", default="promoted by hand", help="recorded on the model version")
    p.add_argument("--who", help="recorded on the model version (default: the user name)")
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("gc", help="remove model versions without an alias, older than the newest N")
    p.add_argument("--keep", type=int, default=5, metavar="N")
    p.add_argument("--apply", action="store_true", help="remove (default: only list)")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("reproduce", help="retrain a model version from its recorded data, params and seed")
    p.add_argument("spec", help="TASK@ALIAS or TASK/VERSION")
    p.add_argument(
        "--tolerance",
        type=float,
        default=None,
        help="max metric difference (default 0 when recorded on CPU, 0.01 on GPU)",
    )
    p.add_argument("--allow-code-drift", action="store_true", help="retrain even if the code differs")
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("serve", help="serve the task's champion Bento over HTTP ('all': every champion, /TASK/...)")
    p.add_argument("task", help="a task, or 'all'")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="127.0.0.1")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("deploy", help="Prefect deployments of retrain: on a cron schedule or on data change")
    p.add_argument("tasks", nargs="*")
    p.add_argument("--cron", default="0 3 * * 0", help="default: Sundays 03:00")
    p.add_argument("--pool", default="cpu", help="work pool: cpu, or gpu for GPU workers")
    p.add_argument("--profile", default=None, help="default: quick (full on the gpu pool)")
    p.add_argument("--repo", help="git URL the workers clone (default: the cluster's, else this folder)")
    p.add_argument("--commit", help="commit of --repo to run (default: its default branch)")
    p.add_argument("--nproc", type=int, default=1, metavar="N", help="each run trains in N data-parallel processes")
    p.add_argument("--on-data-change", action="store_true", help="retrain when the --path data changes")
    p.add_argument("--every", default="10m", help="how often --on-data-change looks (90s, 10m, 1h)")
    p.add_argument("--source", help="data source (--on-data-change)")
    p.add_argument("--path", help="the folder --on-data-change watches and trains on")
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("server", help="start or stop the local Prefect server")
    p.add_argument("action", choices=["start", "stop"])
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("cluster", help="PostgreSQL, MLflow and Prefect servers, an SSH DVC remote and N workers")
    p.add_argument("action", choices=["up", "down", "status", "env"])
    p.add_argument("--workers", type=int, default=2, help="Prefect process workers in the cpu pool (up)")
    p.add_argument("--json", action="store_true", help="status as JSON")
    p.add_argument("--purge", action="store_true", help="down: also delete databases, artifacts, remote and keys")
    p.set_defaults(func=cmd_cluster)

    p = sub.add_parser("tasks", help="list registered tasks")
    p.set_defaults(func=cmd_tasks)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_nproc(args)
    return args.func(args, _settings(args))


if __name__ == "__main__":
    sys.exit(main())
