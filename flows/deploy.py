"""``mlzoo deploy``: Prefect deployments of ``retrain`` per task, on a cron schedule,
in a work pool (``cpu`` by default, ``gpu`` for GPU workers)."""

from __future__ import annotations

from flows.settings import PROJECT_ROOT


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


def deploy(tasks: list[str], cron: str, pool: str, profile: str) -> list[str]:
    """Register one deployment per task; returns their ``flow/deployment`` names."""
    from prefect import flow
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy

    # one run of a task at a time; a cron run that fires while a manual one runs waits in line
    one_at_a_time = ConcurrencyLimitConfig(limit=1, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE)
    ensure_pool(pool)
    names = []
    for task in tasks:
        source = flow.from_source(source=str(PROJECT_ROOT), entrypoint="flows/pipeline.py:retrain")
        deployment = source.to_deployment(
            name=f"{task}-{pool}",
            work_pool_name=pool,
            cron=cron,
            parameters={"task": task, "profile": profile},
            tags=["mlzoo", task, pool],
            concurrency_limit=one_at_a_time,
            description=f"Scheduled retraining of '{task}' ({profile} profile) on the '{pool}' pool",
        )
        # apply() rather than flow.deploy(): prefect 3.8.8's deploy() asks the server for the
        # pool's workers with a request its own server rejects (422 on limit/offset).
        deployment.apply()
        names.append(f"retrain/{task}-{pool}")
    return names
