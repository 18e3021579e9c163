"""MLflow: experiments, runs, batched metrics, the pyfunc model and the registry.

Every call goes through an explicit ``MlflowClient`` and run id, never the fluent
"active run", so concurrent flows in one process cannot log into each other's runs.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flows.settings import PROJECT_ROOT, Settings

CHAMPION, PREVIOUS = "champion", "previous"
MODEL_CODE = Path(__file__).with_name("mlflow_model.py")


def client(s: Settings):
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(s.tracking_uri)
    mlflow.set_registry_uri(s.tracking_uri)
    return MlflowClient(tracking_uri=s.tracking_uri, registry_uri=s.tracking_uri)


def experiment_id(s: Settings, task: str) -> str:
    """The task's experiment (same name as the task), created on first use."""
    c = client(s)
    exp = c.get_experiment_by_name(task)
    if exp is not None:
        return exp.experiment_id
    location = None
    if s.tracking_uri.startswith(("sqlite:", "file:")) or "://" not in s.tracking_uri:
        location = (s.artifact_root / task).as_uri()
    return c.create_experiment(task, artifact_location=location)


def start_run(s: Settings, task: str, run_name: str, tags: dict[str, str]) -> str:
    run = client(s).create_run(experiment_id(s, task), run_name=run_name, tags=tags)
    return run.info.run_id


def log_metrics(s: Settings, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """All ``metrics`` in one request (one ``log_metric`` per value costs ~40 ms on SQLite)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    client(s).log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])


def log_params(s: Settings, run_id: str, params: dict[str, Any]) -> None:
    from mlflow.entities import Param

    client(s).log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])


def set_tags(s: Settings, run_id: str, tags: dict[str, Any]) -> None:
    from mlflow.entities import RunTag

    client(s).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def end_run(s: Settings, run_id: str, status: str = "FINISHED") -> None:
    client(s).set_terminated(run_id, status=status)


def log_artifacts(s: Settings, run_id: str, files: dict[str, Any], folder: Path) -> None:
    """Write figures (matplotlib) and texts under ``folder`` and log them as run artifacts."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, obj in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if hasattr(obj, "savefig"):
            obj.savefig(folder / name, dpi=110)
            import matplotlib.pyplot as plt

            plt.close(obj)
        elif isinstance(obj, bytes):
            (folder / name).write_bytes(obj)
        else:
            (folder / name).write_text(str(obj))
    client(s).log_artifacts(run_id, str(folder))


def log_dataset(s: Settings, run_id: str, manifest, name: str, digest: str, source: str) -> None:
    """Record the data version as an MLflow dataset input (shown in the run's Datasets)."""
    import mlflow
    from mlflow.entities import DatasetInput, InputTag

    ds = mlflow.data.from_pandas(manifest, source=source, name=name, digest=digest)
    tags = [InputTag(key="mlflow.data.context", value="training")]
    client(s).log_inputs(run_id, datasets=[DatasetInput(ds._to_mlflow_entity(), tags=tags)])


def log_model(s: Settings, run_id: str, bundle_dir: Path) -> str:
    """Log the bundle as a pyfunc model of this run; return its model URI."""
    import mlflow

    client(s)
    import numpy as np
    import safetensors
    import torch

    requirements = [
        f"torch=={torch.__version__.split('+')[0]}",
        f"numpy=={np.__version__}",
        f"safetensors=={safetensors.__version__}",
        f"mlflow=={mlflow.__version__}",
        "pillow",
    ]
    with mlflow.start_run(run_id=run_id, nested=False):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(MODEL_CODE),
            artifacts={"bundle": str(bundle_dir)},
            code_paths=[str(PROJECT_ROOT / "tasks_lib")],
            pip_requirements=requirements,  # inferring them took ~24 s here
        )
    # leaving the block ended the run as FINISHED: it is not, until the flow has decided promotion
    client(s).update_run(run_id, status="RUNNING")
    return info.model_uri


def register(s: Settings, task: str, model_uri: str, run_id: str, tags: dict[str, Any]) -> str:
    """Register ``model_uri`` as a new version of the task's model; return the version.

    Idempotent per run: a retried step (or a rerun after the server came back) finds the
    version this run already registered instead of creating a second one.
    """
    from mlflow.exceptions import MlflowException

    c = client(s)
    try:
        c.get_registered_model(task)
    except MlflowException as exc:
        if not _not_found(exc):
            raise
        c.create_registered_model(task, description=f"mlzoo task '{task}': champion served by BentoML")
    existing = c.search_model_versions(f"name='{task}' and run_id='{run_id}'")
    if existing:
        return str(min(int(v.version) for v in existing))
    # MLflow 3 logged models ("models:/m-ID"): a tracking server wants the id beside the source
    model_id = model_uri.removeprefix("models:/") if model_uri.startswith("models:/m-") else None
    mv = c.create_model_version(
        task, model_uri, run_id=run_id, tags={k: str(v) for k, v in tags.items()}, model_id=model_id
    )
    return str(mv.version)


class RegistryError(RuntimeError):
    """The model registry could not be read: nothing may be decided from what it would have said."""


def _not_found(exc: Exception) -> bool:
    """MLflow's answer for a missing model (RESOURCE_DOES_NOT_EXIST) or alias (INVALID_PARAMETER_VALUE
    "... alias ... not found"); anything else (a 5xx, "database is locked", a timeout) is an error."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


def get_alias(s: Settings, task: str, alias: str):
    """The model version behind ``task@alias``; None only when MLflow says there is none.

    Any other failure raises :class:`RegistryError`: treating "could not ask" as "no
    champion" is what let an unmeasured challenger through.
    """
    from mlflow.exceptions import MlflowException

    try:
        return client(s).get_model_version_by_alias(task, alias)
    except MlflowException as exc:
        if _not_found(exc):
            return None
        raise RegistryError(f"cannot read {task}@{alias} from the registry at {s.tracking_uri}: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 (connection errors, sqlite "database is locked", ...)
        raise RegistryError(f"cannot read {task}@{alias} from the registry at {s.tracking_uri}: {exc}") from exc


def check_reachable(s: Settings, timeout: float = 10) -> None:
    """Fail fast, before any training, when the tracking server cannot be reached."""
    if s.tracking_uri.startswith(("http://", "https://")):
        import httpx

        try:
            httpx.get(s.tracking_uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
        except httpx.HTTPError as exc:
            raise RegistryError(f"the MLflow tracking server at {s.tracking_uri} is unreachable: {exc}") from exc
    try:
        client(s).search_experiments(max_results=1)
    except Exception as exc:  # noqa: BLE001
        raise RegistryError(f"the MLflow tracking store at {s.tracking_uri} cannot be read: {exc}") from exc


def set_alias(s: Settings, task: str, alias: str, version: str | None) -> None:
    c = client(s)
    if version is None:
        if get_alias(s, task, alias) is not None:
            c.delete_registered_model_alias(task, alias)
    else:
        c.set_registered_model_alias(task, alias, str(version))


def download_bundle(s: Settings, task: str, version: str, dest: Path) -> Path:
    """The bundle folder of model version ``version`` (downloaded under ``dest``)."""
    import mlflow

    client(s)
    dest.mkdir(parents=True, exist_ok=True)
    local = mlflow.artifacts.download_artifacts(f"models:/{task}/{version}", dst_path=str(dest))
    return Path(local) / "artifacts" / "bundle"


def registered_tasks(s: Settings) -> list[str]:
    return sorted(m.name for m in client(s).search_registered_models())
