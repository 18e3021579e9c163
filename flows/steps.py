"""The pipeline's steps as plain functions: testable without Prefect, wrapped by
``@task`` in :mod:`flows.pipeline`.

prepare -> validate -> version -> train -> evaluate -> log -> register -> promote (+ package)
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flows import dvc_store, faults, packaging, promotion, redact, tracking
from flows.dvc_store import DataVersion
from flows.provenance import provenance_tags
from flows.settings import Settings
from flows.training import CHECKPOINT, Trained, check_nproc, fit, train_parallel
from flows.validation import DataValidationError, ValidationReport, validate
from tasks_lib.core import refs
from tasks_lib.core.bundle import load_bundle
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import read_info, read_manifest, write_prepared
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import Expectation

__all__ = ["Trained"]  # re-exported: what the train step returns (flows.training)


@dataclass
class Plan:
    """What one retrain run will do: the task, its profile and its resolved configs."""

    task: str
    profile: str
    data_config: dict[str, Any]
    train_config: dict[str, Any]
    nproc: int = 1  # training processes (data parallel when > 1; not a model setting, so not in train_config)

    def configs(self) -> tuple[DataConfig, TaskConfig]:
        t = get_task(self.task)
        return t.data_config_cls.from_dict(self.data_config), t.config_cls.from_dict(self.train_config)


@dataclass
class Evaluation:
    metric: str
    greater_is_better: bool
    metrics: dict[str, float]
    baseline: dict[str, float]
    champion_version: str | None = None
    champion_value: float | None = None
    champion_how: str = ""  # "recorded" (same data version) or "re-evaluated"
    champion_error: str = ""  # why the champion could not be measured: the challenger is held

    @property
    def value(self) -> float:
        return self.metrics[self.metric]


@dataclass
class Decision:
    outcome: str  # promotion.PROMOTED | REJECTED | HELD
    reason: str
    champion_version: str | None  # the aliases after the decision
    previous_version: str | None

    @property
    def promoted(self) -> bool:
        return self.outcome == promotion.PROMOTED


# -- prepare ----------------------------------------------------------------------


class UpstreamNotTrained(RuntimeError):
    """A config references ``models:/NAME@ALIAS`` and NAME has no model under that alias yet."""

    def __init__(self, ref: str) -> None:
        self.ref, self.task = ref, refs.registered_name(ref)
        super().__init__(f"'{ref}' does not exist yet: train task '{self.task}' first")


def plan(
    s: Settings,
    task: str,
    profile: str,
    data_overrides: dict | None = None,
    train_overrides: dict | None = None,
    nproc: int = 1,
) -> Plan:
    """Resolve configs: defaults < profile < params.yaml < overrides.

    ``models:/NAME@ALIAS`` references in the train config are pinned to the version the
    alias names now (``models:/NAME/VERSION``), so the run records its exact lineage.
    ``nproc`` > 1 trains data-parallel; a task that cannot is refused here, before any work.
    """
    t = get_task(task)
    check_nproc(task, nproc)
    params = {k: v for k, v in dvc_store.read_params(s, task).items() if k != "promotion"}  # that one is ours
    dcfg, tcfg = t.configs(profile, params, redact.reveal(data_overrides), train_overrides)
    train_config = tcfg.to_dict()
    for key, ref in train_config.items():
        if refs.is_registry_ref(ref) and "@" in ref:
            mv = tracking.get_alias(s, refs.registered_name(ref), ref.split("@", 1)[1])
            if mv is None:
                raise UpstreamNotTrained(ref)
            train_config[key] = f"{refs.PREFIX}{mv.name}/{mv.version}"
    return Plan(task, profile, dcfg.to_dict(), train_config, nproc)


def upstream(s: Settings, train_config: dict[str, Any]) -> dict[str, str]:
    """Download every pinned ``models:/NAME/VERSION`` of the config and make it loadable by tasks."""
    pinned = {k: v for k, v in train_config.items() if refs.is_registry_ref(v)}
    for ref in pinned.values():
        name, ver = ref.removeprefix(refs.PREFIX).split("/")
        cache = s.home / "upstream" / name / ver
        bundle = cache / "artifacts" / "bundle"
        if not (bundle / "config.json").exists():
            bundle = tracking.download_bundle(s, name, ver, cache)
        refs.register(ref, bundle)
    return pinned


def prepare(s: Settings, p: Plan, out: Path) -> Path:
    """Write the task's data into ``out``, the run's own folder (two runs never share one).

    The data becomes the workspace's current version (``data/TASK``, dvc.lock) only in
    :func:`version`, after it passed validation.
    """
    dvc_store.ensure_workspace(s)
    t = get_task(p.task)
    dcfg, _ = p.configs()
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    write_prepared(out, t.prepare(dcfg, out))
    return out


def version(s: Settings, task: str, data_dir: Path) -> DataVersion:
    """Make the validated ``data_dir`` the current data version (DVC commit + push)."""
    return dvc_store.version(s, task, data_dir)


# -- validate ---------------------------------------------------------------------


def validate_data(task: str, data_dir: Path) -> ValidationReport:
    """Run the task's expectations on the manifest; raise DataValidationError on failure."""
    t = get_task(task)
    report = validate(read_manifest(data_dir), t.expectations(read_info(data_dir)), suite=task)
    if not report.success:
        raise DataValidationError(report)
    return report


# -- train / evaluate -------------------------------------------------------------


def train(s: Settings, p: Plan, data_dir: Path, run_id: str | None = None) -> Trained:
    """Train on the train split, logging per-epoch metrics to MLflow run ``run_id`` if given.

    Checkpoints every epoch, so a retried step of the same run resumes. With ``p.nproc`` > 1
    the training runs in that many data-parallel processes (rank 0 logs and writes the bundle).
    """
    pinned = upstream(s, p.train_config)
    (s.home / "runs").mkdir(parents=True, exist_ok=True)
    work = s.home / "runs" / run_id if run_id else Path(tempfile.mkdtemp(prefix="adhoc-", dir=s.home / "runs"))
    work.mkdir(parents=True, exist_ok=True)
    if p.nproc > 1:
        resolved = {ref: str(refs.bundle_dir(ref)) for ref in pinned.values()}
        trained = train_parallel(s, p, data_dir, work, run_id, resolved)
    else:
        trained = fit(s, p, data_dir, work, run_id)
    (work / CHECKPOINT).unlink(missing_ok=True)
    return trained


def evaluate(s: Settings, task: str, bundle_dir: Path, data_dir: Path, data_md5: str) -> Evaluation:
    """Challenger, baseline and current champion on the test split of this data version.

    Whatever goes wrong while measuring the champion is recorded in ``champion_error``
    (the challenger is then held, never promoted on the strength of the failure).
    """
    t = get_task(task)
    data = t.load(data_dir)
    loaded = load_bundle(bundle_dir)
    ev = Evaluation(t.metric, t.greater_is_better, t.evaluate(loaded.module, data, "test"), t.baseline(data, "test"))
    try:
        champ = tracking.get_alias(s, task, tracking.CHAMPION)
    except tracking.RegistryError as exc:
        ev.champion_version, ev.champion_error = "?", f"cannot be read: {exc}"
        return ev
    measure_champion(s, task, ev, champ, data_dir, data_md5)
    return ev


def measure_champion(s: Settings, task: str, ev: Evaluation, champ, data_dir: Path, data_md5: str) -> None:
    """Fill ``ev``'s champion fields: its recorded value on the same data version, else its
    value re-measured on this test split (after checking that none of this split's samples
    were in the champion's own train or val split)."""
    ev.champion_version = champ and str(champ.version)
    ev.champion_value, ev.champion_how, ev.champion_error = None, "", ""
    if champ is None:
        return
    try:
        if champ.tags.get("data_md5") == data_md5 and "metric_value" in champ.tags:
            ev.champion_value, ev.champion_how = float(champ.tags["metric_value"]), "recorded"
            return
        overlap = champion_overlap(s, task, champ, data_dir)
        if not overlap.success:
            ev.champion_error = (
                "cannot be compared fairly on this data version: some of its test samples were train or val "
                f"samples of the champion's data version {champ.tags.get('data_md5')}\n{overlap.summary()}"
            )
            return
        t = get_task(task)
        with tempfile.TemporaryDirectory() as tmp:
            old = load_bundle(tracking.download_bundle(s, task, ev.champion_version, Path(tmp)))
            ev.champion_value = t.evaluate(old.module, t.load(data_dir), "test")[t.metric]
        ev.champion_how = "re-evaluated"
    except Exception as exc:  # noqa: BLE001  (unreadable weights, another class set or image size, a 5xx ...)
        ev.champion_error = f"cannot be evaluated on this data: {type(exc).__name__}: {exc}"


MANIFEST_ARTIFACT = "data/manifest.csv"


def champion_overlap(s: Settings, task: str, champ, data_dir: Path) -> ValidationReport:
    """Great Expectations: no test sample of this data was a train/val sample of the champion's data.

    Samples are matched by content hash (the manifest's ``sha1``); the champion's manifest
    is the one its run logged.
    """
    import pandas as pd

    with tempfile.TemporaryDirectory() as tmp:
        path = tracking.client(s).download_artifacts(champ.run_id, MANIFEST_ARTIFACT, tmp)
        theirs = pd.read_csv(path, usecols=["sha1", "split"])
    ours = read_manifest(data_dir)
    their_split = theirs.drop_duplicates("sha1").set_index("sha1")["split"]
    checked = pd.DataFrame({"split": ours["split"], "champion_split": ours["sha1"].map(their_split).fillna("unseen")})
    expectation = Expectation(
        "expect_column_values_to_be_in_set",
        {"column": "champion_split", "value_set": ["test", "unseen"]},
        "a test sample must not be one the champion trained or validated on",
        where={"split": "test"},
    )
    return validate(checked, [expectation], suite=f"{task}.champion_overlap")


# -- log / register / promote -------------------------------------------------------


def plan_tags(p: Plan) -> dict[str, str]:
    """What a run records when it starts: the task, its resolved configs and the code."""
    return {
        "mlzoo.task": p.task,
        "mlzoo.profile": p.profile,
        "mlzoo.source": p.data_config.get("source", ""),
        "seed": str(p.train_config.get("seed")),
        "mlzoo.data_config": json.dumps(redact.redact_all(p.data_config), sort_keys=True),
        "mlzoo.train_config": json.dumps(p.train_config, sort_keys=True),
        "mlzoo.nproc": str(p.nproc),
        **provenance_tags(),
        **{f"upstream.{k}": v for k, v in p.train_config.items() if refs.is_registry_ref(v)},
    }


def data_tags(dv: DataVersion) -> dict[str, str]:
    return {"data_md5": dv.md5, "data_nfiles": str(dv.nfiles)}


def run_tags(p: Plan, dv: DataVersion) -> dict[str, str]:
    return {**plan_tags(p), **data_tags(dv)}


def model_card(task: str, p: Plan, dv: DataVersion, ev: Evaluation, trained: Trained, tags: dict) -> str:
    champ = (
        f"{ev.champion_value:.4f} (v{ev.champion_version}, {ev.champion_how})"
        if ev.champion_value is not None
        else f"none ({ev.champion_how or 'no champion yet'})"
    )
    rows = "\n".join(
        f"| {k} | {v:.4f} | {ev.baseline.get(k, float('nan')):.4f} |"
        for k, v in ev.metrics.items()
        if not k.startswith("acc_class_")
    )
    parallel = f", data-parallel over {trained.nproc} processes" if trained.nproc > 1 else ""
    return f"""# Model card: {task}

- Task: `{task}` ({get_task(task).__class__.__doc__ or ""}).
- Data version: DVC `{dv.md5}` ({dv.nfiles} files, {dv.size} bytes), source `{p.data_config.get("source")}`.
- Profile `{p.profile}`; seed {p.train_config.get("seed")}; {trained.epochs} epochs in {trained.train_seconds:.1f} s
  of pure training ({trained.samples_per_s:.0f} samples/s) on `{tags["device"]}`{parallel}.
- Code `{tags["git_commit"]}`, uv.lock sha256 `{tags["uv_lock_sha256"][:16]}`, torch {tags["torch_version"]}.

## Test split metrics

| metric | model | baseline |
|---|---|---|
{rows}

Primary metric `{ev.metric}`: **{ev.value:.4f}**; current champion: {champ}.

## Configuration

```json
{json.dumps({"data": redact.redact_all(p.data_config), "train": p.train_config}, indent=2)}
```
"""


def log(
    s: Settings, run_id: str, p: Plan, dv: DataVersion, report: ValidationReport, trained: Trained, ev: Evaluation
) -> str:
    """Params, final metrics, dataset input, review artifacts and the pyfunc model; returns its URI."""
    t = get_task(p.task)
    tags = run_tags(p, dv)
    tracking.log_params(
        s,
        run_id,
        {
            **{f"data.{k}": v for k, v in redact.redact_all(p.data_config).items()},
            **p.train_config,
            "profile": p.profile,
        },
    )
    tracking.set_tags(s, run_id, {**tags, "weights_sha256": trained.weights_sha256})
    final = {f"test_{k}": v for k, v in ev.metrics.items()}
    final.update({f"baseline_{k}": v for k, v in ev.baseline.items()})
    final.update({"train_seconds": trained.train_seconds, "train_samples_per_s": trained.samples_per_s})
    tracking.log_metrics(s, run_id, final, step=trained.epochs)
    manifest = read_manifest(dv.path)
    source = str(dvc_store.data_dir(s, p.task))
    tracking.log_dataset(s, run_id, manifest, name=p.task, digest=dv.short, source=source)
    data = t.load(dv.path)
    loaded = load_bundle(trained.bundle_dir)
    files = dict(t.examples(loaded.module, data))
    files["model_card.md"] = model_card(p.task, p, dv, ev, trained, tags)
    files["validation_report.md"] = report.to_markdown()
    files[MANIFEST_ARTIFACT] = (dv.path / "manifest.csv").read_bytes()  # what later champions are checked against
    tracking.log_artifacts(s, run_id, files, trained.bundle_dir.parent / "review")
    return tracking.log_model(s, run_id, trained.bundle_dir)


def register(s: Settings, task: str, model_uri: str, run_id: str, dv: DataVersion, ev: Evaluation) -> str:
    return tracking.register(
        s,
        task,
        model_uri,
        run_id,
        {
            "data_md5": dv.md5,
            "metric_name": ev.metric,
            "metric_value": ev.value,
            "baseline_value": ev.baseline.get(ev.metric, ""),
        },
    )


def promote(
    s: Settings, task: str, version: str, run_id: str, ev: Evaluation, data_dir: Path, data_md5: str
) -> Decision:
    """The promotion decision (see :mod:`flows.promotion`), recorded on the run and the version."""
    policy = promotion.Policy.from_params(dvc_store.read_params(s, task).get("promotion"))

    def measure(champ) -> None:
        measure_champion(s, task, ev, champ, data_dir, data_md5)

    def on_lease(lease_id: str) -> None:  # a killed holder's slot is freed by the next run's recovery
        tracking.set_tags(s, run_id, {promotion.LEASE_TAG: lease_id})

    outcome, reason = promotion.promote(s, task, version, ev, policy, measure, lambda v: package(s, task, v), on_lease)
    try:
        prev = tracking.get_alias(s, task, tracking.PREVIOUS)
        champ = tracking.get_alias(s, task, tracking.CHAMPION)
    except tracking.RegistryError:
        prev = champ = None
    decision = Decision(outcome, reason, champ and str(champ.version), prev and str(prev.version))
    tracking.set_tags(
        s, run_id, {"promotion.decision": outcome, "promotion.reason": reason, "promotion.model_version": version}
    )
    metrics = {"promotion_challenger_metric": ev.value}
    if ev.champion_value is not None:
        metrics["promotion_champion_metric"] = ev.champion_value
    tracking.log_metrics(s, run_id, metrics)
    tracking.client(s).set_model_version_tag(task, version, "promotion.decision", outcome)
    if outcome != promotion.PROMOTED:
        tracking.client(s).set_model_version_tag(task, version, "promotion", reason)
    faults.reached("promote")
    return decision


# -- package ------------------------------------------------------------------------


def package(s: Settings, task: str, version: str) -> str:
    """The Bento of model ``version``: built once, from the code running now, then reused.

    Built before the version becomes @champion, so every champion keeps the Bento of the
    code that trained it, and rollback switches Bentos instead of rebuilding.
    """
    c = tracking.client(s)
    mv = c.get_model_version(task, version)
    existing = packaging.find_bento(mv)
    if existing:
        return existing
    run = c.get_run(mv.run_id)
    metadata = {
        "mlflow_run_id": mv.run_id,
        "data_md5": mv.tags.get("data_md5", ""),
        "git_commit": run.data.tags.get("git_commit", ""),
        "metrics": {k: v for k, v in run.data.metrics.items() if k.startswith(("test_", "baseline_"))},
    }
    with tempfile.TemporaryDirectory() as tmp:
        bundle = tracking.download_bundle(s, task, version, Path(tmp))
        model_tag = packaging.import_model(task, version, bundle, metadata)
    faults.reached("package")
    return packaging.build_bento(task, model_tag, {"task": task, "mlflow_version": version, "mlflow_run_id": mv.run_id})


def champion_bento(s: Settings, task: str) -> str | None:
    """The Bento of the current champion (None when the task has no champion yet)."""
    champ = tracking.get_alias(s, task, tracking.CHAMPION)
    return champ and package(s, task, str(champ.version))
