"""The Prefect flows: ``retrain(task, profile)`` and ``retrain_all(profile)``.

Flows only compose steps (see :mod:`flows.steps`); every step is a Prefect task so
its state, duration and logs show in the Prefect UI, and ``train`` retries once
(resuming from its per-epoch checkpoint).
"""

from __future__ import annotations

import shutil
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows import dvc_store, faults, promotion, recovery, steps, tracking
from flows.settings import Settings
from flows.training import nproc_for
from flows.validation import DataValidationError
from tasks_lib.core.registry import get_task, task_names

# Steps pass models and data folders around; nothing here is worth caching by input hash.
step = task(cache_policy=NO_CACHE)

plan_step = step(steps.plan, name="plan")
prepare_step = step(steps.prepare, name="prepare")
validate_step = step(steps.validate_data, name="validate")
version_step = step(steps.version, name="version")
train_step = task(steps.train, name="train", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
evaluate_step = step(steps.evaluate, name="evaluate")
log_step = step(steps.log, name="log")
# register is idempotent per run, so a retry after a transient server error never adds a second version
register_step = task(steps.register, name="register", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
promote_step = step(steps.promote, name="promote")
package_step = step(steps.champion_bento, name="package")


@flow(name="retrain", log_prints=True)
def retrain(
    task: str,
    profile: str = "quick",
    data_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
    nproc: int = 1,
) -> dict[str, Any]:
    """prepare -> validate -> version -> train -> evaluate -> log -> register -> promote -> package.

    ``nproc`` > 1 trains in that many data-parallel processes (DDP; rank 0 logs the epochs).
    Raises :class:`~flows.promotion.PromotionHeld` at the end when the challenger was held.
    """
    logger = get_run_logger()
    s = Settings.from_env().apply()
    tracking.check_reachable(s)  # before any work: a clear error, not a failure after training
    try:
        p = steps.plan(s, task, profile, data_overrides, train_overrides, nproc)
    except steps.UpstreamNotTrained as missing:  # this task builds on another's champion: train that first
        logger.info("%s; retraining '%s' (profile %s) first", missing, missing.task, profile)
        retrain(missing.task, profile, nproc=nproc_for(missing.task, nproc))
    for fixed in recovery.recover(s, task):
        logger.warning("recovered: %s", fixed)
    p = plan_step(s, task, profile, data_overrides, train_overrides, nproc)
    run_id = tracking.start_run(s, task, f"{task}-{profile}", {**steps.plan_tags(p), **recovery.owner_tags()})
    work = s.home / "runs" / run_id
    try:
        data_dir = prepare_step(s, p, work / "data")
        faults.reached("prepare")
        try:
            report = validate_step(task, data_dir)
        except DataValidationError as exc:  # the data never becomes the current version; its hash stays here
            tracking.log_artifacts(s, run_id, {"validation_report.md": exc.report.to_markdown()}, work / "review")
            tracking.set_tags(s, run_id, {"validation": "failed", "data_md5": dvc_store.content_hash(data_dir)})
            raise
        faults.reached("validate")
        dv = version_step(s, task, data_dir)
        tracking.set_tags(s, run_id, steps.data_tags(dv))
        logger.info("data version %s (%d files)", dv.md5, dv.nfiles)
        faults.reached("version")
        trained = train_step(s, p, data_dir, run_id)
        faults.reached("train")
        ev = evaluate_step(s, task, trained.bundle_dir, data_dir, dv.md5)
        faults.reached("evaluate")
        model_uri = log_step(s, run_id, p, dv, report, trained, ev)
        faults.reached("log")
        version = register_step(s, task, model_uri, run_id, dv, ev)
        faults.reached("register")
        decision = promote_step(s, task, version, run_id, ev, data_dir, dv.md5)
    except BaseException:
        tracking.end_run(s, run_id, "FAILED")
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)  # all of it is in MLflow and DVC now
    tracking.end_run(s, run_id, "FINISHED")
    logger.info("promotion: %s", decision.reason)
    bento = package_step(s, task)
    result = {
        "task": task,
        "run_id": run_id,
        "model_version": version,
        "data_md5": dv.md5,
        "metric": ev.metric,
        "value": ev.value,
        "baseline": ev.baseline.get(ev.metric),
        "champion_before": {
            "version": ev.champion_version,
            "value": ev.champion_value,
            "how": ev.champion_how or ev.champion_error,
        },
        "decision": decision.outcome,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "champion_version": decision.champion_version,
        "previous_version": decision.previous_version,
        "bento": bento,
        "train_seconds": trained.train_seconds,
    }
    if decision.outcome == promotion.HELD:
        raise promotion.PromotionHeld(decision.reason, result)
    return result


@flow(name="retrain-all", log_prints=True)
def retrain_all(
    profile: str = "quick", train_overrides: dict[str, Any] | None = None, nproc: int = 1
) -> dict[str, Any]:
    """Retrain every registered task; one task's failure does not stop the others.

    ``nproc`` > 1 trains each task data-parallel, except those that train in one process only.
    """
    results: dict[str, Any] = {}
    for name in task_names():
        n = nproc_for(name, nproc)
        if n != nproc:
            get_run_logger().info("%s trains in one process: %s", name, get_task(name).single_process_reason)
        state = retrain(name, profile, train_overrides=train_overrides, nproc=n, return_state=True)
        results[name] = state.result() if state.is_completed() else {"error": str(state.message)}
    return results
