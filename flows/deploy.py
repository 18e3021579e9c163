"""``mlzoo deploy``: Prefect deployments of ``retrain`` per task, in a work pool (``cpu`` by
default, ``gpu`` for GPU workers), on a cron schedule, with no schedule (started by
``mlzoo run --fan-out``), or started by a change of the task's data (``--on-data-change``).

A deployment names where its code comes from: a git repository and commit (Prefect's git
storage: the cluster's bare repository, or any git URL), which every worker clones, or
this checkout's folder when no repository is given (a worker on this machine only).
"""

from __future__ import annotations

from typing import Any

from flows.settings import PROJECT_ROOT

# What a run in each pool gets besides its parameters (a process worker's job variables).
POOL_VARIABLES: dict[str, dict[str, Any]] = {"gpu": {"env": {"MLZOO_DEVICE": "cuda"}}}
POOL_PROFILE = {"gpu": "full"}  # the profile a pool runs when none is asked for


def ensure_pool(name: str) -> None:
    """Create a process work pool named ``name`` unless it exists."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    with get_client(sync_client=True) as client:
        try:
            client.create_work_pool(WorkPoolCreate(name=name, type="process"))
        except ObjectAlreadyExists:
            pass


def _source(entrypoint: str, repo: str | None, commit: str | None):
    from prefect import flow
    from prefect.runner.storage import GitRepository

    source = GitRepository(url=repo, commit_sha=commit) if repo else str(PROJECT_ROOT)
    return flow.from_source(source=source, entrypoint=entrypoint)


def deployment_name(task: str, pool: str) -> str:
    return f"retrain/{task}-{pool}"


def deploy(
    tasks: list[str],
    cron: str | None,
    pool: str,
    profile: str | None = None,
    repo: str | None = None,
    commit: str | None = None,
    nproc: int = 1,
) -> list[str]:
    """Register one ``retrain`` deployment per task; returns their ``flow/deployment`` names.

    ``nproc`` > 1: each run trains data-parallel on its worker (e.g. one process per GPU of a
    multi-GPU machine), except a task that trains in one process only.
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    from flows.training import nproc_for

    # one run of a task at a time; a cron run that fires while a manual one runs waits in line
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    profile = profile or POOL_PROFILE.get(pool, "quick")
    ensure_pool(pool)
    source = _source("flows/pipeline.py:retrain", repo, commit)
    where = f"{repo} @ {commit[:12]}" if repo and commit else repo or str(PROJECT_ROOT)
    names = []
    for task in tasks:
        n = nproc_for(task, nproc)
        deployment = source.to_deployment(
            name=f"{task}-{pool}",
            work_pool_name=pool,
            job_variables=POOL_VARIABLES.get(pool, {}),
            cron=cron,
            parameters={"task": task, "profile": profile, **({"nproc": n} if n != 1 else {})},
            tags=["mlzoo", task, pool],
            concurrency_limit=one_at_a_time,
            version=commit[:12] if commit else None,
            description=f"Retraining of '{task}' ({profile} profile) on the '{pool}' pool; code: {where}",
        )
        # apply() rather than flow.deploy(): prefect 3.8.8's deploy() asks the server for the
        # pool's workers with a request its own server rejects (422 on limit/offset).
        deployment.apply()
        names.append(deployment_name(task, pool))
    return names


def deploy_watch(
    task: str,
    every_s: int,
    pool: str,
    data: dict[str, Any],
    profile: str | None = None,
    repo: str | None = None,
    commit: str | None = None,
) -> str:
    """``--on-data-change``: a ``watch`` deployment every ``every_s`` seconds that starts the
    task's ``retrain`` deployment (registered too, unscheduled) only when its data changed."""
    from datetime import timedelta

    profile = profile or POOL_PROFILE.get(pool, "quick")
    (retrain,) = deploy([task], None, pool, profile, repo, commit)
    deployment = _source("flows/watch.py:watch", repo, commit).to_deployment(
        name=f"{task}-{pool}-data",
        work_pool_name=pool,
        interval=timedelta(seconds=every_s),
        parameters={"task": task, "deployment": retrain, "data_overrides": data, "profile": profile},
        tags=["mlzoo", task, pool, "on-data-change"],
        description=f"Starts {retrain} when the data of '{task}' changes (checked every {every_s} s)",
    )
    deployment.apply()
    return f"watch/{task}-{pool}-data"
