"""Where everything lives, read from the environment once; nothing happens at import.

Embedded defaults keep every store under one project-local state folder
(``MLZOO_HOME``, default ``.mlzoo/``). Each store switches to its scale-out form
through its own standard setting:

=============  ==========================================  =====================================
component      embedded default                            scale-out setting
=============  ==========================================  =====================================
MLflow         ``sqlite:///$MLZOO_HOME/mlflow.db``          ``MLFLOW_TRACKING_URI`` (a server)
Prefect        a local server the CLI starts and reuses     ``PREFECT_API_URL``
DVC remote     ``$MLZOO_HOME/dvc-remote`` (a folder)        ``MLZOO_DVC_REMOTE`` (``s3://...``)
BentoML store  ``$MLZOO_HOME/bentoml``                      ``BENTOML_HOME``
datasets       ``../shared/datasets``                       ``MLZOO_DATASETS``
=============  ==========================================  =====================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TELEMETRY_OFF = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",  # the cross-tool convention (MLflow, BentoML and others read it)
    "BENTOML_DO_NOT_TRACK": "true",
    "GX_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
}


@dataclass(frozen=True)
class Settings:
    home: Path  # the state folder
    workspace: Path  # the DVC repo holding dvc.yaml, params.yaml and data/
    tracking_uri: str
    artifact_root: Path
    dvc_remote: str
    bentoml_home: Path
    prefect_home: Path

    @classmethod
    def from_env(cls) -> Settings:
        home = Path(os.environ.get("MLZOO_HOME", PROJECT_ROOT / ".mlzoo")).resolve()
        return cls(
            home=home,
            workspace=Path(os.environ.get("MLZOO_WORKSPACE", PROJECT_ROOT)).resolve(),
            tracking_uri=os.environ.get("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}"),
            artifact_root=home / "mlartifacts",
            dvc_remote=os.environ.get("MLZOO_DVC_REMOTE", str(home / "dvc-remote")),
            bentoml_home=Path(os.environ.get("BENTOML_HOME", home / "bentoml")),
            prefect_home=Path(os.environ.get("PREFECT_HOME", home / "prefect")),
        )

    def apply(self) -> Settings:
        """Export the settings to the libraries' own environment variables.

        Called by the CLI and the tests before Prefect, MLflow or BentoML are used, so
        that every subprocess (Prefect server, ``bentoml serve``, workers) agrees.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        os.environ["MLZOO_HOME"] = str(self.home)
        os.environ["MLZOO_WORKSPACE"] = str(self.workspace)
        os.environ["MLFLOW_TRACKING_URI"] = self.tracking_uri
        os.environ["BENTOML_HOME"] = str(self.bentoml_home)
        os.environ["PREFECT_HOME"] = str(self.prefect_home)
        for name, value in TELEMETRY_OFF.items():  # nothing phones home, here or in any subprocess
            os.environ.setdefault(name, value)
        # bounded waits on a tracking server: MLflow's defaults retry for minutes (7 tries, 120 s each)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
        os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        return self
