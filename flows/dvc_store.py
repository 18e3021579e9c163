"""Dataset versions with DVC: the workspace repo, commit + push, and restore by hash.

The workspace is a DVC repo holding ``dvc.yaml`` (one ``prepare`` stage per task),
``params.yaml`` and ``data/``. After the flow prepares ``data/TASK`` it commits that
stage (dvc.lock records the content hash) and pushes the content to the remote.
Any recorded version can be restored from the remote by its hash alone.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from flows.settings import PROJECT_ROOT, Settings

REMOTE = "mlzoo"


def dvc(s: Settings, *args: str) -> str:
    """Run the ``dvc`` CLI in the workspace (DVC resolves paths from its cwd)."""
    exe = str(Path(sys.executable).with_name("dvc"))
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}  # offline: no usage report daemon
    proc = subprocess.run([exe, *args], cwd=s.workspace, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"dvc {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


@dataclass(frozen=True)
class DataVersion:
    task: str
    md5: str  # DVC's content hash of the data folder (ends in ".dir")
    size: int
    nfiles: int
    path: Path  # the folder in the workspace

    @property
    def short(self) -> str:
        return self.md5.removesuffix(".dir")[:12]


@contextmanager
def workspace_lock(s: Settings) -> Iterator[None]:
    """DVC takes a repo-wide lock; serialise our own DVC calls so parallel flows wait, not fail."""
    s.home.mkdir(parents=True, exist_ok=True)
    with open(s.home / "dvc.lock-file", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def ensure_workspace(s: Settings) -> Path:
    """Make the workspace a DVC repo with the project's dvc.yaml/params.yaml and our remote."""
    ws = s.workspace
    ws.mkdir(parents=True, exist_ok=True)
    with workspace_lock(s):
        if not (ws / ".dvc").is_dir():
            dvc(s, "init", "--quiet", *(() if (ws / ".git").exists() else ("--no-scm",)))
        for name in ("dvc.yaml", "params.yaml"):
            if not (ws / name).exists():
                shutil.copy(PROJECT_ROOT / name, ws / name)
        local = ws / ".dvc" / "config.local"
        configured = local.read_text() if local.exists() else ""
        if f"url = {s.dvc_remote}\n" not in configured or f"remote = {REMOTE}\n" not in configured:
            dvc(s, "remote", "add", "--local", "--default", "--force", REMOTE, s.dvc_remote)
    return ws


def read_params(s: Settings, task: str) -> dict:
    """The task's section of the workspace's params.yaml ({} when absent)."""
    path = s.workspace / "params.yaml"
    params = yaml.safe_load(path.read_text()) if path.exists() else {}
    return (params or {}).get(task) or {}


def data_dir(s: Settings, task: str) -> Path:
    return s.workspace / "data" / task


def version(s: Settings, task: str) -> DataVersion:
    """``dvc commit`` + ``dvc push`` the task's prepare stage; return its content hash."""
    stage = f"prepare@{task}"
    with workspace_lock(s):
        dvc(s, "commit", "--force", "--quiet", stage)
        dvc(s, "push", "--quiet", "--remote", REMOTE, stage)
    lock = yaml.safe_load((s.workspace / "dvc.lock").read_text())
    out = lock["stages"][stage]["outs"][0]
    return DataVersion(task, out["md5"], int(out["size"]), int(out["nfiles"]), data_dir(s, task))


def restore(s: Settings, task: str, md5: str) -> Path:
    """Fetch the data version ``md5`` from the remote into its own folder and return it."""
    name = f"{task}-{md5.removesuffix('.dir')[:12]}"
    folder = s.workspace / "data" / "restored"
    folder.mkdir(parents=True, exist_ok=True)
    pointer = folder / f"{name}.dvc"
    pointer.write_text(yaml.safe_dump({"outs": [{"md5": md5, "hash": "md5", "path": name}]}))
    with workspace_lock(s):
        dvc(s, "pull", "--quiet", "--force", "--remote", REMOTE, str(pointer))
    return folder / name
