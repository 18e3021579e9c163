"""Test set-up: every test session gets its own state folder and DVC workspace.

The environment is set in ``pytest_configure``, before any test module imports
Prefect, MLflow or BentoML (they read their settings when first used). End-to-end
tests share one real local Prefect server, started once per session.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

STATE = Path(tempfile.mkdtemp(prefix="mlzoo-test-"))


def pytest_configure(config: pytest.Config) -> None:
    os.environ["MLZOO_HOME"] = str(STATE / "home")
    os.environ["MLZOO_WORKSPACE"] = str(STATE / "workspace")
    for var in ("MLFLOW_TRACKING_URI", "BENTOML_HOME", "PREFECT_HOME", "PREFECT_API_URL", "MLZOO_DVC_REMOTE"):
        os.environ.pop(var, None)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ["MLZOO_DEVICE"] = "cpu"
    from flows.settings import Settings

    Settings.from_env().apply()


def pytest_unconfigure(config: pytest.Config) -> None:
    from flows.prefect_server import stop_server
    from flows.settings import Settings

    stop_server(Settings.from_env())
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture(scope="session")
def settings():
    from flows.settings import Settings

    return Settings.from_env().apply()


@pytest.fixture(scope="session")
def prefect_api(settings) -> str:
    """A real local Prefect server (~20 s to start), shared by the whole session."""
    from flows.prefect_server import ensure_server

    return ensure_server(settings)


@pytest.fixture(scope="session")
def digits_smoke_dir(tmp_path_factory) -> Path:
    """Digits prepared at the smoke profile, outside the DVC workspace."""
    from tasks_lib.core.data import write_prepared
    from tasks_lib.core.registry import get_task

    task = get_task("image_classification")
    dcfg, _ = task.configs("smoke")
    out = tmp_path_factory.mktemp("digits")
    write_prepared(out, task.prepare(dcfg, out))
    return out
