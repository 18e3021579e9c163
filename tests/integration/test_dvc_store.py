"""Real DVC: commit + push a data version, then restore it by hash from the remote alone."""

import shutil
import subprocess

import pytest

from flows import dvc_store, steps
from flows.settings import PROJECT_ROOT


def test_version_and_restore_round_trip(settings):
    p = steps.plan(settings, "image_classification", "smoke")
    data_dir = steps.prepare(settings, p)
    dv = dvc_store.version(settings, "image_classification")
    assert dv.md5.endswith(".dir") and dv.nfiles == len(list(data_dir.iterdir()))
    assert (settings.workspace / "dvc.lock").exists()
    assert any(settings.home.joinpath("dvc-remote").rglob("*")), "nothing was pushed to the remote"

    # same data -> same hash
    assert dvc_store.version(settings, "image_classification").md5 == dv.md5

    # wipe the local cache: restore must come from the remote
    shutil.rmtree(settings.workspace / ".dvc" / "cache")
    restored = dvc_store.restore(settings, "image_classification", dv.md5)
    for f in data_dir.iterdir():
        assert (restored / f.name).read_bytes() == f.read_bytes()


def test_the_repo_does_not_git_ignore_dvc_files():
    """`make run` versions data in the repo itself, and DVC refuses to load a git-ignored
    dvc.lock (FileIsGitIgnored); the tests' own workspaces are not git repos and would not see it."""
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name in ("dvc.yaml", "dvc.lock", "params.yaml"):
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=PROJECT_ROOT).returncode
        assert ignored == 1, f"{name} is git-ignored"
