"""BentoML: import a registered model into the Bento model store and build its Bento."""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from flows.settings import PROJECT_ROOT, TELEMETRY_OFF

SERVICE = "serving.service:MLZooService"
ORCHESTRATION_ONLY = ("prefect", "mlflow", "dvc", "great-expectations")


def import_model(task: str, mlflow_version: str, bundle_dir: Path, metadata: dict[str, Any]):
    """Copy a bundle into the Bento model store, labelled with its MLflow origin."""
    import bentoml

    labels = {"task": task, "mlflow_model": task, "mlflow_version": str(mlflow_version)}
    with bentoml.models.create(name=task, labels=labels, metadata=metadata) as model:
        shutil.copytree(bundle_dir, model.path, dirs_exist_ok=True)
    return model.tag


def build_bento(task: str, model_tag, labels: dict[str, str]) -> str:
    """Build the Bento serving ``model_tag``; returns the Bento tag.

    The model is the service argument ``model`` (``bentoml.use_arguments`` in
    ``serving/service.py``), stored in the Bento's ``bento.yaml``, so ``bentoml serve BENTO``
    serves that model; the service's ``BentoModel`` attribute makes the Bento declare it.
    The build context is a scratch copy of ``serving/`` and ``tasks_lib/``.
    """
    import bentoml
    from bentoml._internal.bento.build_config import BentoEnvSchema  # what bentos.build() takes as envs

    # the build imports the service in this process, and the service reads its arguments at
    # import: a module cached by an earlier build would describe that build's model (and its
    # package would point at that build's deleted context), so the service package is imported afresh
    package = SERVICE.split(".")[0]
    for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
        del sys.modules[name]
    with tempfile.TemporaryDirectory() as ctx:
        for pkg in ("serving", "tasks_lib"):
            shutil.copytree(PROJECT_ROOT / pkg, Path(ctx) / pkg, ignore=shutil.ignore_patterns("__pycache__"))
        bento = bentoml.bentos.build(
            SERVICE,
            name=task,
            labels=labels,
            description=f"mlzoo: champion of task '{task}'",
            include=["serving/*", "tasks_lib/**/*.py"],
            models=[str(model_tag)],
            python={"packages": serving_requirements(), "lock_packages": False},
            envs=[BentoEnvSchema(name=k, value=v) for k, v in TELEMETRY_OFF.items()],  # in its container too
            build_ctx=ctx,
            args={"model": str(model_tag)},
        )
    return str(bento.tag)


def serving_requirements() -> list[str]:
    """The project's dependencies minus the orchestration-only ones a server never imports."""
    import tomllib

    deps = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return [d for d in deps if not d.startswith(ORCHESTRATION_ONLY)]


def find_bento(mv) -> str | None:
    """The newest Bento built for MLflow model version ``mv``, or None.

    Matched on the run id too: version numbers restart in another registry, run ids do not.
    """
    import bentoml

    bentos = [
        b
        for b in bentoml.bentos.list()
        if b.tag.name == mv.name
        and b.info.labels.get("mlflow_version") == str(mv.version)
        and b.info.labels.get("mlflow_run_id") in (None, mv.run_id)
    ]
    return str(max(bentos, key=lambda b: b.info.creation_time).tag) if bentos else None
