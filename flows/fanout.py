"""``mlzoo run TASK [TASK...] --fan-out``: one run of each task's ``retrain`` deployment on the
pool's workers, all at once, waiting for them and showing each task's state as it changes.

A task that builds on another task's champion (a ``models:/`` reference in its config)
starts only after that task's run in the same fan-out completed; one failing task does
not stop the others, and the outcome of each is returned.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from flows.deploy import deploy, deployment_name
from tasks_lib.core import refs
from tasks_lib.core.registry import get_task


def upstream(task: str, profile: str) -> set[str]:
    """The tasks whose champion ``task`` reads at this profile."""
    _, cfg = get_task(task).configs(profile)
    return {refs.registered_name(v) for v in dataclasses.asdict(cfg).values() if refs.is_registry_ref(v)}


def fan_out(
    tasks: list[str],
    profile: str,
    pool: str = "cpu",
    train_overrides: dict[str, Any] | None = None,
    repo: str | None = None,
    commit: str | None = None,
    echo: Callable[[str], None] = print,
    poll_s: float = 2.0,
) -> dict[str, dict[str, Any]]:
    """Submit, wait, and return ``{task: {state, message, flow_run}}`` for every task."""
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment

    deploy(tasks, None, pool, profile, repo, commit)
    after = {t: upstream(t, profile) & set(tasks) - {t} for t in tasks}
    runs: dict[str, Any] = {}
    seen: dict[str, str] = {}
    outcome: dict[str, dict[str, Any]] = {}
    with get_client(sync_client=True) as client:
        while len(outcome) < len(tasks):
            for t in tasks:
                if t in runs or t in outcome or any(u not in outcome for u in after[t]):
                    continue
                failed = sorted(u for u in after[t] if outcome[u]["state"] != "COMPLETED")
                if failed:
                    outcome[t] = {"state": "SKIPPED", "message": f"upstream {', '.join(failed)} did not complete"}
                    echo(f"{t:<24} SKIPPED ({outcome[t]['message']})")
                    continue
                params = {"task": t, "profile": profile, "train_overrides": train_overrides or {}}
                run = run_deployment(deployment_name(t, pool), parameters=params, timeout=0)
                runs[t] = run.id
                echo(f"{t:<24} submitted as flow run '{run.name}'")
            for t, run_id in runs.items():
                if t in outcome:
                    continue
                run = client.read_flow_run(run_id)
                state = run.state.type.value if run.state else "PENDING"
                if seen.get(t) != state:
                    seen[t] = state
                    echo(f"{t:<24} {state}")
                if run.state is not None and run.state.is_final():
                    outcome[t] = {"state": state, "message": run.state.message or "", "flow_run": run.name}
            if len(outcome) < len(tasks):
                time.sleep(poll_s)
    return outcome
