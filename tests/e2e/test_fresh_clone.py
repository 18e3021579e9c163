"""The path a user takes: a fresh `git clone`, its default workspace (the repo itself, with
its .gitignore), `mlzoo run`, then `mlzoo reproduce` and its exit codes. Every process runs
with a guard (tests/e2e/netguard) that refuses and logs any connection off this machine:
telemetry is off in the CLI and in every Python subprocess it starts (DVC, BentoML, MLflow)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flows.settings import PROJECT_ROOT

TASK = "image_classification"
pytestmark = pytest.mark.e2e
TINY = ["--profile", "smoke", "--set", "epochs=2", "--set", "width=8"]
GUARD = Path(__file__).with_name("netguard")


@pytest.fixture(scope="module")
def clone(tmp_path_factory, prefect_api):
    if not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path_factory.mktemp("fresh") / "mlzoo"
    subprocess.run(["git", "clone", "--quiet", str(PROJECT_ROOT), str(dest)], check=True)
    (dest.parent / "attempts.log").write_text("")
    return dest


def mlzoo(clone, *args):
    """The clone's own code, in its own default workspace and state folder."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MLZOO_HOME", "MLZOO_WORKSPACE", "MLFLOW_", "BENTOML_HOME", "PREFECT_HOME"))
    }
    env.update(
        PYTHONPATH=f"{clone}{os.pathsep}{GUARD}",
        MLZOO_DEVICE="cpu",
        MLZOO_NET_GUARD_LOG=str(clone.parent / "attempts.log"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args], cwd=clone, env=env, capture_output=True, text=True, timeout=900
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_run_then_reproduce_in_the_repo_itself(clone):
    code, out = mlzoo(clone, "run", TASK, *TINY)
    assert code == 0, out[-4000:]
    assert (clone / ".mlzoo" / "mlflow.db").exists() and (clone / "dvc.lock").exists()
    code, out = mlzoo(clone, "reproduce", f"{TASK}@champion")
    assert code == 0, out[-4000:]
    assert "weights bit-identical: True" in out
    attempts = (clone.parent / "attempts.log").read_text()
    assert attempts == "", f"connections off this machine were attempted:\n{attempts}"


def test_the_network_guard_is_active(clone):
    """The check above means something only if the guard really loads in these processes."""
    env = {"PYTHONPATH": str(GUARD), "MLZOO_NET_GUARD_LOG": str(clone.parent / "probe.log")}
    probe = subprocess.run(
        [sys.executable, "-c", "import socket; socket.getaddrinfo('example.invalid', 80)"], env=env, capture_output=True
    )
    assert probe.returncode != 0 and "example.invalid" in (clone.parent / "probe.log").read_text()


def test_reproduce_refuses_other_code(clone):
    readme = clone / "README.md"
    original = readme.read_text()
    readme.write_text(original + "\nlocal change\n")
    try:
        code, out = mlzoo(clone, "reproduce", f"{TASK}@champion")
    finally:
        readme.write_text(original)
    assert code == 3, out[-4000:]
    assert "git_commit" in out and "+dirty" in out  # recorded and checked-out commits side by side


def test_reproduce_says_when_the_data_version_is_gone(clone):
    shutil.rmtree(clone / ".mlzoo" / "dvc-remote")
    shutil.rmtree(clone / ".dvc" / "cache", ignore_errors=True)
    shutil.rmtree(clone / ".mlzoo" / "restore", ignore_errors=True)
    code, out = mlzoo(clone, "reproduce", f"{TASK}@champion")
    assert code == 2, out[-4000:]
