"""A state folder of its own (MLflow registry, DVC workspace and remote, Bento store) driven
through the real ``mlzoo`` command in separate processes (forked by a warm parent, see
``zygote.py``), so a test can kill a run, run two at once, or cut a server off without
touching the session's own registry."""

from __future__ import annotations

import atexit
import functools
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flows.settings import Settings

MLZOO = str(Path(sys.executable).with_name("mlzoo"))


class Zygote:
    """The warm parent process (tests/e2e/zygote.py), one per test session."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.e2e.zygote"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}
        atexit.register(self.close)

    def ask(self, command: dict) -> dict:
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


@functools.cache
def _zygote() -> Zygote:
    return Zygote()


@dataclass
class Home:
    root: Path
    prefect_api: str
    _logs: dict[int, Path] = field(default_factory=dict, repr=False)
    _count: itertools.count = field(default_factory=itertools.count, repr=False)

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
        env = {k: v for k, v in os.environ.items() if k not in ("MLZOO_FAULT", "PREFECT_HOME")}
        env.update(  # every store this home's own, named explicitly (the test process exports its own)
            MLZOO_HOME=str(self.settings.home),
            MLZOO_WORKSPACE=str(self.settings.workspace),
            MLFLOW_TRACKING_URI=self.settings.tracking_uri,
            BENTOML_HOME=str(self.settings.bentoml_home),
            PREFECT_API_URL=self.prefect_api,
            MLZOO_DEVICE="cpu",
        )
        env.update(extra)
        return env

    def _ask(self, command: dict) -> dict:
        return _zygote().ask(command)

    def start(self, *args: str, **env: str) -> int:
        """Start ``mlzoo ARGS`` in a process of its own; returns its pid."""
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"mlzoo-{next(self._count)}.log"
        pid = self._ask({"run": list(args), "env": self.env(**env), "log": str(log)})["pid"]
        self._logs[pid] = log
        return pid

    def wait(self, pid: int) -> subprocess.CompletedProcess:
        rc = self._ask({"wait": pid})["rc"]
        out = self._logs.pop(pid).read_text()
        return subprocess.CompletedProcess([MLZOO], rc, out, out)

    def mlzoo(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        """``mlzoo ARGS`` to its end (output in both ``stdout`` and ``stderr``)."""
        return self.wait(self.start(*args, **env))

    def close(self) -> None:
        assert not self._logs, f"processes never waited for: {sorted(self._logs)}"

    def client(self):
        from mlflow import MlflowClient

        uri = self.settings.tracking_uri
        return MlflowClient(tracking_uri=uri, registry_uri=uri)

    def alias(self, task: str, alias: str):
        """``task@alias`` in this home's registry (None when unset), read without touching the
        test process's own MLflow settings (``mlflow.set_tracking_uri`` would export it)."""
        from mlflow.exceptions import MlflowException

        from flows.tracking import _not_found

        try:
            return self.client().get_model_version_by_alias(task, alias)
        except MlflowException as exc:
            if _not_found(exc):
                return None
            raise

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
    return (proc.stderr or "")[-5000:]
