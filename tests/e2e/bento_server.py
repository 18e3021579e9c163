"""Start a real ``bentoml serve`` (through ``mlzoo serve`` or directly) and wait for ``/readyz``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest


class ServerUrl(str):
    """A server's base URL that also knows its process (``pid``: the ``bentoml serve`` session leader)."""

    pid: int

    def rss_bytes(self) -> int:
        """Resident memory of the server's whole process tree (arbiter and workers)."""
        import psutil

        root = psutil.Process(self.pid)
        total = 0
        for p in [root, *root.children(recursive=True)]:
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def alive(self) -> bool:
        import psutil

        return psutil.pid_exists(self.pid) and psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(command: list[str], port: int, env: dict[str, str] | None = None, cwd=None) -> Iterator[ServerUrl]:
    """Run ``command`` (which serves on ``port``) until the block ends; yields its base URL."""
    proc = subprocess.Popen(
        command,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    url = ServerUrl(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    deadline = time.monotonic() + 180
    try:
        while True:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{' '.join(command)} did not become ready")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


# -- smoke-trained models of any task, served by the one generic service -----------------------


class Smoke:
    """A task's smoke-trained model: in process (``loaded``) and in the Bento model store (``tag``)."""

    def __init__(self, name: str, tmp) -> None:
        import bentoml

        from tasks_lib.core.bundle import save_bundle
        from tasks_lib.core.data import write_prepared
        from tasks_lib.core.engine import seed_everything
        from tasks_lib.core.registry import get_task
        from tasks_lib.core.task import LoadedModel

        task = get_task(name)
        dcfg, cfg = task.configs("smoke", train_overrides={"epochs": 1, "max_steps_per_epoch": 2})
        write_prepared(tmp / "data", task.prepare(dcfg, tmp / "data"))
        self.data = task.load(tmp / "data")
        seed_everything(cfg.seed)
        model = task.build_model(cfg, self.data.info)
        task.fit(model, self.data, cfg, lambda m, s: None)
        self.task, self.loaded = task, LoadedModel(task, cfg, self.data.info, model.eval())
        bundle = save_bundle(self.loaded, tmp / "bundle")
        with bentoml.models.create(name=f"test-{name}".replace("_", "-"), labels={"task": name}) as bm:
            for f in bundle.iterdir():
                (Path(bm.path) / f.name).write_bytes(f.read_bytes())
        self.tag = str(bm.tag)


def serve_command(tags: list[str], arg_file: Path, **limits) -> list[str]:
    """``bentoml serve`` of the generic service on models ``tags`` (one: at /, several: /TASK/...)."""
    import sys

    import yaml

    arg_file.write_text(yaml.safe_dump({"models": tags, **limits}))
    return [sys.executable, "-m", "bentoml", "serve", "serving.service:MLZooService", "--arg-file", str(arg_file)]
