"""BentoML: import a registered model into the Bento model store and build its Bento."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from flows.settings import PROJECT_ROOT

SERVICE = "serving.service:MLZooService"


def import_model(task: str, mlflow_version: str, bundle_dir: Path, metadata: dict[str, Any]):
    """Copy a bundle into the Bento model store, labelled with its MLflow origin."""
    import bentoml

    labels = {"task": task, "mlflow_model": task, "mlflow_version": str(mlflow_version)}
    with bentoml.models.create(name=task, labels=labels, metadata=metadata) as model:
        shutil.copytree(bundle_dir, model.path, dirs_exist_ok=True)
    return model.tag


def build_bento(task: str, model_tag, labels: dict[str, str]) -> str:
    """Build the Bento serving ``model_tag``; returns the Bento tag."""
    import bentoml

    bento = bentoml.bentos.build(
        SERVICE,
        name=task,
        labels=labels,
        description=f"mlzoo: champion of task '{task}'",
        include=["serving/*.py", "tasks_lib/**/*.py"],
        envs=[{"name": "MLZOO_MODEL_TAG", "value": str(model_tag)}],
        models=[str(model_tag)],
        python={"packages": ["torch", "torchvision", "safetensors", "numpy", "pillow", "fastapi"],
                "lock_packages": False},
        build_ctx=str(PROJECT_ROOT),
    )
    return str(bento.tag)


def find_bento(task: str, mlflow_version: str | None = None) -> str | None:
    """Newest Bento of ``task`` (serving ``mlflow_version`` when given), or None."""
    import bentoml

    bentos = [b for b in bentoml.bentos.list() if b.tag.name == task and (
        mlflow_version is None or b.info.labels.get("mlflow_version") == str(mlflow_version))]
    return str(max(bentos, key=lambda b: b.info.creation_time).tag) if bentos else None
