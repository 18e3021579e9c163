"""What a model version records so it can be rebuilt: code, lock file, device."""

from __future__ import annotations

import hashlib
import platform
import subprocess

from flows.settings import PROJECT_ROOT


def git_commit() -> str:
    """HEAD of the project repo, suffixed ``-dirty`` when tracked files have changes."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


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
        "uv_lock_sha256": file_sha256(PROJECT_ROOT / "uv.lock"),
        "torch_version": torch.__version__,
        "device": device_description(),
    }
