"""Tidy up after runs that were killed: a process that died mid-flow left its MLflow run
RUNNING and its Prefect flow run RUNNING, and nobody else will ever end them.

A run records who owns it (host, pid and the pid's start time, Prefect flow run id).
On the same host a dead pid is certain; for a run owned by another host the Prefect
flow run's state decides (a worker reports its crashed runs). Called by every flow
before it starts work on a task, and by ``mlzoo status``.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path

from flows import promotion, tracking
from flows.settings import Settings

log = logging.getLogger(__name__)


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def owner_tags() -> dict[str, str]:
    """Tags that name this process as the owner of a run."""
    tags = {
        "mlzoo.host": socket.gethostname(),
        "mlzoo.pid": str(os.getpid()),
        "mlzoo.pid_start": _start_time(os.getpid()),
        "mlzoo.worker": os.environ.get("MLZOO_WORKER", socket.gethostname()),  # the Prefect worker's name
    }
    try:
        from prefect.runtime import flow_run

        if flow_run.id:
            tags["mlzoo.flow_run_id"] = str(flow_run.id)
    except Exception:  # noqa: BLE001 (outside a flow)
        pass
    return tags


def _owner_dead(tags: dict[str, str], prefect: bool) -> bool:
    if tags.get("mlzoo.host") == socket.gethostname() and tags.get("mlzoo.pid"):
        pid = int(tags["mlzoo.pid"])
        return _start_time(pid) != tags.get("mlzoo.pid_start", "")  # gone, or the pid was reused
    flow_run_id = tags.get("mlzoo.flow_run_id")
    if not flow_run_id or not prefect:
        return False  # owned elsewhere with nothing to ask: leave it
    state = _flow_run_state(flow_run_id)
    return state is not None and state.is_final()


def _flow_run_state(flow_run_id: str):
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_flow_run(flow_run_id).state


def _crash_flow_run(flow_run_id: str, message: str) -> None:
    """Show the killed flow run as Crashed in Prefect (nobody reported its end)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
        if state is None or not state.is_final():
            client.set_flow_run_state(flow_run_id, Crashed(message=message), force=True)


def mark_stale_runs(s: Settings, task: str, prefect: bool = True) -> list[str]:
    """End the task's RUNNING MLflow runs whose process is gone as FAILED; returns their ids.

    ``prefect=False`` (no Prefect API at hand) decides from same-host pids alone."""
    c = tracking.client(s)
    exp = c.get_experiment_by_name(task)
    if exp is None:
        return []
    ended = []
    for run in c.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'"):
        tags = run.data.tags
        try:
            dead = _owner_dead(tags, prefect)
        except Exception as exc:  # noqa: BLE001 (Prefect unreachable: cannot tell, leave it)
            log.warning("cannot tell whether run %s is alive: %s", run.info.run_id, exc)
            continue
        if not dead:
            continue
        message = f"the process running it (pid {tags.get('mlzoo.pid')} on {tags.get('mlzoo.host')}) died"
        tracking.set_tags(s, run.info.run_id, {"mlzoo.failure": message})
        tracking.end_run(s, run.info.run_id, "FAILED")
        if tags.get("mlzoo.flow_run_id") and prefect:
            try:
                _crash_flow_run(tags["mlzoo.flow_run_id"], message)
            except Exception as exc:  # noqa: BLE001
                log.warning("cannot mark flow run %s crashed: %s", tags["mlzoo.flow_run_id"], exc)
        if tags.get(promotion.LEASE_TAG) and prefect:
            try:
                promotion.release_lease(tags[promotion.LEASE_TAG])
            except Exception as exc:  # noqa: BLE001 (it expires by itself within a minute)
                log.warning("cannot release the promotion slot of run %s: %s", run.info.run_id, exc)
        ended.append(run.info.run_id)
    return ended


def recover(s: Settings, task: str, prefect: bool = True) -> list[str]:
    """Everything a killed run of ``task`` may have left half done; returns what was fixed."""
    fixed = [f"run {r} marked FAILED (its process died)" for r in mark_stale_runs(s, task, prefect)]
    repaired = promotion.repair_previous(s, task)
    return fixed + ([repaired] if repaired else [])
