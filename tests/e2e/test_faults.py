"""Faults at the edges, on real servers: an MLflow tracking server that is down at start or
stops mid-run, and a champion whose stored weights became unreadable. Nothing is mocked:
the server is a real `mlflow server` process that the test kills."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e.bento_server import free_port
from tests.e2e.isolated import Home, tail

TASK = "image_classification"
pytestmark = pytest.mark.e2e
TINY = ["--profile", "smoke", "--set", "epochs=1", "--set", "max_steps_per_epoch=3", "--set", "width=8"]


def start_mlflow(root: Path, port: int) -> subprocess.Popen:
    """A real tracking server on SQLite with proxied artifacts, on a loopback port."""
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    proc.kill()
    pytest.fail("mlflow server did not start")


def stop(proc: subprocess.Popen) -> None:
    import os

    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_tracking_server_down_at_start_fails_before_any_training(tmp_path, prefect_api):
    h = Home(tmp_path, prefect_api)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.monotonic()
    proc = h.mlzoo("run", TASK, *TINY, MLFLOW_TRACKING_URI=uri)
    assert proc.returncode == 1, tail(proc)
    assert f"MLflow tracking server at {uri} is unreachable" in proc.stderr
    assert time.monotonic() - started < 90
    assert not (h.settings.home / "runs").exists()  # no run folder: nothing was prepared or trained


def test_tracking_server_lost_mid_run_promotes_nothing_and_the_next_run_tidies_up(tmp_path, prefect_api):
    h = Home(tmp_path, prefect_api)
    port = free_port()
    uri = f"http://127.0.0.1:{port}"
    server = start_mlflow(tmp_path / "mlflow", port)
    try:
        first = h.mlzoo("run", TASK, *TINY, MLFLOW_TRACKING_URI=uri)
        assert first.returncode == 0, tail(first)
        # one retry per call (the default backs off for ~14 s per call), so the lost server shows quickly
        run = h.start("run", TASK, "--profile", "smoke", MLFLOW_TRACKING_URI=uri, MLFLOW_HTTP_REQUEST_MAX_RETRIES="1")
        client = _client(uri)
        deadline = time.monotonic() + 300
        while not _training_started(client) and time.monotonic() < deadline:
            time.sleep(0.5)
        stop(server)  # the tracking server dies while the challenger trains
        proc = h.wait(run)
        assert proc.returncode == 1, tail(proc)
        server = start_mlflow(tmp_path / "mlflow", port)  # it comes back
        versions = client.search_model_versions(f"name='{TASK}'")
        assert [v.version for v in versions] == ["1"]  # no version from the interrupted run
        assert str(client.get_model_version_by_alias(TASK, "champion").version) == "1"
        nxt = h.mlzoo("run", TASK, *TINY, MLFLOW_TRACKING_URI=uri)
        assert nxt.returncode == 0, tail(nxt)
        exp = client.get_experiment_by_name(TASK)
        statuses = sorted(r.info.status for r in client.search_runs([exp.experiment_id]))
        assert statuses == ["FAILED", "FINISHED", "FINISHED"]
    finally:
        stop(server)
        h.close()


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _training_started(client) -> bool:
    try:
        exp = client.get_experiment_by_name(TASK)
        runs = client.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
        return any("train_loss" in r.data.metrics for r in runs)
    except Exception:  # noqa: BLE001
        return False


def test_unreadable_champion_holds_the_challenger_until_promoted_by_hand(tmp_path, prefect_api):
    """The measured failure: a champion whose weights cannot be read let a worse model through."""
    h = Home(tmp_path, prefect_api)
    first = h.mlzoo("run", TASK, *TINY)
    assert first.returncode == 0, tail(first)
    for weights in h.settings.artifact_root.rglob("*.safetensors"):
        weights.write_bytes(b"not a tensor file")  # the champion's stored weights, corrupted
    held = h.mlzoo("run", TASK, *TINY, "--data", "max_samples=500")  # new data version: re-evaluate
    assert held.returncode == 2, tail(held)
    assert "HELD" in held.stderr and f"mlzoo promote {TASK} 2" in held.stderr
    champ = h.alias(TASK, "champion")
    assert str(champ.version) == "1" and h.alias(TASK, "previous") is None
    run = h.client().get_run(h.client().get_model_version(TASK, "2").run_id)
    assert run.data.tags["promotion.decision"] == "held"
    assert "cannot be evaluated" in run.data.tags["promotion.reason"]

    by_hand = h.mlzoo("promote", TASK, "2", "--why", "champion weights lost", "--who", "tester")
    assert by_hand.returncode == 0, tail(by_hand)
    assert str(h.alias(TASK, "champion").version) == "2" and str(h.alias(TASK, "previous").version) == "1"
    mv = h.client().get_model_version(TASK, "2")
    assert mv.tags["promotion.by"] == "tester" and "champion weights lost" in mv.tags["promotion"]
    assert any(b["mlflow_version"] == "2" for b in h.bentos(TASK))
