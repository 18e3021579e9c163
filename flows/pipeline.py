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

from flows import steps, tracking
from flows.settings import Settings
from flows.validation import DataValidationError
from tasks_lib.core.registry import task_names

# Steps pass models and data folders around; nothing here is worth caching by input hash.
step = task(cache_policy=NO_CACHE)

plan_step = step(steps.plan, name="plan")
prepare_step = step(steps.prepare, name="prepare")
version_step = step(steps.version, name="version")
validate_step = step(steps.validate_data, name="validate")
train_step = task(steps.train, name="train", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=2)
evaluate_step = step(steps.evaluate, name="evaluate")
log_step = step(steps.log, name="log")
register_step = step(steps.register, name="register")
promote_step = step(steps.promote, name="promote")
package_step = step(steps.package, name="package")


@flow(name="retrain", log_prints=True)
def retrain(
    task: str,
    profile: str = "quick",
    data_overrides: dict[str, Any] | None = None,
    train_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """prepare -> version -> validate -> train -> evaluate -> log -> register -> promote -> package."""
    logger = get_run_logger()
    s = Settings.from_env().apply()
    try:
        p = steps.plan(s, task, profile, data_overrides, train_overrides)
    except steps.UpstreamNotTrained as missing:  # this task builds on another's champion: train that first
        logger.info("%s; retraining '%s' (profile %s) first", missing, missing.task, profile)
        retrain(missing.task, profile)
    p = plan_step(s, task, profile, data_overrides, train_overrides)
    data_dir = prepare_step(s, p)
    dv = version_step(s, task)
    logger.info("data version %s (%d files)", dv.md5, dv.nfiles)
    run_id = tracking.start_run(s, task, f"{task}-{profile}-{dv.short}", steps.run_tags(task, p, dv))
    try:
        try:
            report = validate_step(task, data_dir)
        except DataValidationError as exc:
            tracking.log_artifacts(
                s, run_id, {"validation_report.md": exc.report.to_markdown()}, s.home / "runs" / run_id / "review"
            )
            tracking.set_tags(s, run_id, {"validation": "failed"})
            raise
        trained = train_step(s, p, data_dir, run_id)
        ev = evaluate_step(s, task, trained.bundle_dir, data_dir, dv.md5)
        model_uri = log_step(s, run_id, p, dv, report, trained, ev)
        version = register_step(s, task, model_uri, run_id, dv, ev)
        decision = promote_step(s, task, version, run_id, ev)
    except BaseException:
        tracking.end_run(s, run_id, "FAILED")
        raise
    finally:
        shutil.rmtree(s.home / "runs" / run_id, ignore_errors=True)  # all of it is in MLflow now
    tracking.end_run(s, run_id, "FINISHED")
    logger.info("promotion: %s", decision.reason)
    bento = package_step(s, task)
    return {
        "task": task,
        "run_id": run_id,
        "model_version": version,
        "data_md5": dv.md5,
        "metric": ev.metric,
        "value": ev.value,
        "baseline": ev.baseline.get(ev.metric),
        "champion_before": {"version": ev.champion_version, "value": ev.champion_value, "how": ev.champion_how},
        "promoted": decision.promoted,
        "reason": decision.reason,
        "champion_version": decision.champion_version,
        "previous_version": decision.previous_version,
        "bento": bento,
        "train_seconds": trained.train_seconds,
    }


@flow(name="retrain-all", log_prints=True)
def retrain_all(profile: str = "quick") -> dict[str, Any]:
    """Retrain every registered task; one task's failure does not stop the others."""
    results: dict[str, Any] = {}
    for name in task_names():
        state = retrain(name, profile, return_state=True)
        results[name] = state.result() if state.is_completed() else {"error": str(state.message)}
    return results
