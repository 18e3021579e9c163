"""The ``watch`` flow behind ``mlzoo deploy TASK --on-data-change``: a cheap look at the task's
data source (a listing of names, sizes and modification times, no file read) compared
with the listing seen last time (a Prefect Variable); a different listing starts one run
of the task's ``retrain`` deployment. The first look only records the listing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger


def listing(path: Path) -> str:
    """A digest of every file's relative name, size and mtime under ``path`` (or of ``path`` itself)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(path) if f != path else f.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def variable_name(task: str) -> str:
    return f"mlzoo-data-listing-{task}".replace("_", "-")


@flow(name="watch", log_prints=True)
def watch(task: str, deployment: str, data_overrides: dict[str, Any], profile: str = "quick") -> str | None:
    """Start ``deployment`` when the listing of the task's data path changed; returns the new flow run id."""
    from prefect.deployments import run_deployment
    from prefect.variables import Variable

    logger = get_run_logger()
    path = data_overrides.get("path")
    if not path or not Path(path).exists():
        raise ValueError(f"--on-data-change watches a local folder or file (--path); got '{path}'")
    now = listing(Path(path))
    seen = Variable.get(variable_name(task), default=None)
    Variable.set(variable_name(task), now, overwrite=True)
    if seen is None:
        logger.info("first look at %s: listing recorded, nothing started", path)
        return None
    if seen == now:
        logger.info("%s unchanged: nothing started", path)
        return None
    run = run_deployment(
        deployment, parameters={"task": task, "profile": profile, "data_overrides": data_overrides}, timeout=0
    )
    logger.info("%s changed: started %s (flow run %s)", path, deployment, run.id)
    return str(run.id)
