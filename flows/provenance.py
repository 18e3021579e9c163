"""What a model version records so it can be rebuilt: code, lock file, device."""

from __future__ import annotations

import hashlib
import platform
import subprocess

from flows.settings import PROJECT_ROOT

PLATFORM_STATE = ("dvc.lock",)  # written by the platform itself on every run; recorded as data_md5 instead


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True).stdout


def git_commit() -> str:
    """HEAD of the project repo, suffixed ``+dirty`` when tracked files changed or untracked
    (not ignored) files exist: a model trained from such a tree cannot be rebuilt from HEAD."""
    try:
        sha = _git("rev-parse", "HEAD").strip()
        excluded = [f":(exclude){name}" for name in PLATFORM_STATE]
        dirty = _git("status", "--porcelain", "--untracked-files=all", "--", ".", *excluded).strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def git_changes_sha256() -> str:
    """A hash of what ``+dirty`` means: the diff against HEAD plus every untracked file, so two
    dirty trees can be told apart ("" for a clean tree)."""
    try:
        excluded = [f":(exclude){name}" for name in PLATFORM_STATE]
        diff = _git("diff", "HEAD", "--binary", "--", ".", *excluded)
        untracked = _git("ls-files", "--others", "--exclude-standard", "--", ".", *excluded).split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    if not diff and not untracked:
        return ""
    h = hashlib.sha256(diff.encode())
    for name in sorted(untracked):
        h.update(name.encode() + b"\0" + file_sha256(PROJECT_ROOT / name).encode())
    return h.hexdigest()


def file_sha256(path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "missing"


def device_description() -> str:
    import torch

    from tasks_lib.core.engine import pick_device

    device = pick_device()
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{platform.machine()}:{torch.get_num_threads()}threads"


def provenance_tags() -> dict[str, str]:
    import torch

    return {
        "git_commit": git_commit(),
        "git_changes_sha256": git_changes_sha256(),
        "uv_lock_sha256": file_sha256(PROJECT_ROOT / "uv.lock"),
        "torch_version": torch.__version__,
        "device": device_description(),
    }
