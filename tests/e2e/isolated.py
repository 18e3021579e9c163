"""A state folder of its own (MLflow registry, DVC workspace and remote, Bento store) driven
through the real ``mlzoo`` command in subprocesses, so a test can kill a run, run two at
once, or cut a server off without touching the session's own registry."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.settings import Settings

MLZOO = str(Path(sys.executable).with_name("mlzoo"))


@dataclass
class Home:
    root: Path
    prefect_api: str

    @property
    def settings(self) -> Settings:
        home = self.root / "home"
        return Settings(
            home=home,
            workspace=self.root / "workspace",
            tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
            artifact_root=home / "mlartifacts",
            dvc_remote=str(home / "dvc-remote"),
            bentoml_home=home / "bentoml",
            prefect_home=home / "prefect",
        )

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "BENTOML_HOME", "MLZOO_FAULT")}
        env.update(
            MLZOO_HOME=str(self.settings.home),
            MLZOO_WORKSPACE=str(self.settings.workspace),
            PREFECT_API_URL=self.prefect_api,
            MLZOO_DEVICE="cpu",
        )
        env.update(extra)
        return env

    def mlzoo(self, *args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([MLZOO, *args], env=self.env(**env), capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen(
            [MLZOO, *args], env=self.env(**env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def client(self):
        from mlflow import MlflowClient

        uri = self.settings.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(self, task: str, alias: str):
        from flows import tracking

        return tracking.get_alias(self.settings, task, alias)

    def bentos(self, task: str) -> list[dict]:
        """The labels of every Bento of ``task`` in this home's store, read from its files."""
        folder = self.settings.bentoml_home / "bentos" / task
        return [yaml.safe_load(f.read_text())["labels"] for f in folder.glob("*/bento.yaml")]

    def set_promotion_policy(self, task: str, **policy) -> None:
        path = self.settings.workspace / "params.yaml"
        params = yaml.safe_load(path.read_text())
        params[task]["promotion"] = policy
        path.write_text(yaml.safe_dump(params, sort_keys=False))


def tail(proc: subprocess.CompletedProcess) -> str:
    return (proc.stdout or "")[-2000:] + (proc.stderr or "")[-4000:]
