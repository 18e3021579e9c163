"""The scale-out topology for real, on this machine: `mlzoo cluster up --workers 2` (PostgreSQL,
an MLflow server and a Prefect server on it, sshd as the DVC remote, two process workers that
clone the code from git), a fan-out of three smoke tasks that lands on both workers, the
champions in the cluster's MLflow, a Bento served from an empty folder that knows only the
tracking URI, the data-change trigger, and `cluster down` leaving no process behind."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from flows.cluster import alive
from flows.settings import PROJECT_ROOT
from tests.e2e.bento_server import free_port, running

pytestmark = pytest.mark.e2e
MLZOO = str(Path(sys.executable).with_name("mlzoo"))
TASKS = ["image_classification", "text_classification", "game_control"]  # image, text, RL
TINY = ["--profile", "smoke", "--set", "epochs=1", "--set", "max_steps_per_epoch=2"]
CLIENT_ONLY = ("MLZOO_", "MLFLOW_", "PREFECT_", "BENTOML_")


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLIENT_ONLY)}
    mirror = {"MLZOO_DATASETS": os.environ["MLZOO_DATASETS"]} if os.environ.get("MLZOO_DATASETS") else {}
    return {**env, **mirror, "MLZOO_DEVICE": "cpu", **extra}


def mlzoo(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([MLZOO, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=PROJECT_ROOT)


def _exports(text: str) -> dict[str, str]:
    return dict(line.removeprefix("export ").split("=", 1) for line in text.splitlines() if line.startswith("export "))


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    home = tmp_path_factory.mktemp("cluster-client")
    base = _env(MLZOO_HOME=str(home))
    up = mlzoo("cluster", "up", "--workers", "2", env=base)
    if up.returncode != 0:  # stop what did start: a failed set-up never reaches the teardown
        mlzoo("cluster", "down", "--purge", env=base)
    assert up.returncode == 0, up.stderr[-3000:]
    urls = _exports(up.stdout)
    assert set(urls) >= {"MLFLOW_TRACKING_URI", "PREFECT_API_URL", "MLZOO_DVC_REMOTE"}
    again = mlzoo("cluster", "up", "--workers", "2", env=base)  # a second `up` reuses the running cluster
    assert again.returncode == 0 and _exports(again.stdout) == urls
    yield base, {**base, **urls}
    mlzoo("cluster", "down", "--purge", env=base)


def _status(base) -> dict:
    import json

    return json.loads(mlzoo("cluster", "status", "--json", env=base).stdout or "{}")


def test_status_names_every_service_healthy(cluster):
    base, _ = cluster
    status = _status(base)
    for name in ("postgres", "mlflow", "prefect", "sshd"):
        assert status[name]["healthy"] and status[name]["pid"], name
    assert status["mlflow"]["url"].startswith("http://127.0.0.1:")
    assert status["sshd"]["url"].startswith("ssh://")
    assert len(status["workers"]) == 2 and all(w["healthy"] for w in status["workers"])


def test_fan_out_lands_on_both_workers_and_champions_are_in_the_cluster_registry(cluster):
    from mlflow import MlflowClient

    _, env = cluster
    proc = mlzoo("run", *TASKS, "--fan-out", *TINY, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "3 of 3 completed" in proc.stdout
    c = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"], registry_uri=env["MLFLOW_TRACKING_URI"])
    workers = set()
    for task in TASKS:
        assert "champion" in c.get_registered_model(task).aliases, task
        (run,) = c.search_runs([c.get_experiment_by_name(task).experiment_id])
        workers.add(run.data.tags["mlzoo.worker"])
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # proxied by the server
        assert run.data.tags["git_commit"].startswith(_head())  # the code the workers cloned
    assert len(workers) == 2, workers
    assert list((Path(cluster[0]["MLZOO_HOME"]) / "cluster" / "dvc-remote").rglob("*")), "nothing pushed over ssh"


def _head() -> str:
    return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True).stdout.strip()


def test_a_machine_with_only_the_tracking_uri_serves_the_champion(cluster, tmp_path):
    from mlflow import MlflowClient

    _, env = cluster
    uri = env["MLFLOW_TRACKING_URI"]
    champ = MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(TASKS[0], "champion")
    port = free_port()
    bare = _env(MLZOO_HOME=str(tmp_path / "empty"), MLFLOW_TRACKING_URI=uri)  # no Bentos, DVC or Prefect
    with running([MLZOO, "serve", TASKS[0], "--port", str(port)], port, env=bare, cwd=PROJECT_ROOT) as url:
        meta = httpx.get(f"{url}/metadata", timeout=10).json()
    assert meta["mlflow_version"] == str(champ.version) and meta["mlflow_run_id"] == champ.run_id


def _retrain_runs(deployment_id) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId
    from prefect.client.schemas.sorting import FlowRunSort

    only = DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
    with get_client(sync_client=True) as client:  # limit and sort given: prefect 3.8.8 sends nulls otherwise (422)
        return client.read_flow_runs(deployment_filter=only, limit=200, sort=FlowRunSort.ID_DESC)


def _run_watch(name: str) -> None:
    from prefect.deployments import run_deployment

    run = run_deployment(name, timeout=240)  # on a worker, as its schedule would
    assert run.state.is_completed(), run.state


@pytest.fixture
def cluster_api(cluster):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: cluster[1]["PREFECT_API_URL"]}):
        yield


def test_touching_a_file_of_the_data_starts_exactly_one_retrain(cluster, cluster_api, tmp_path):
    from prefect.client.orchestration import get_client

    _, env = cluster
    tree = tmp_path / "tree"
    rng = np.random.default_rng(0)
    for cls in ("cat", "dog"):
        (tree / cls).mkdir(parents=True)
        for i in range(20):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tree / cls / f"{i}.png")
    path = ["--source", "imagefolder", "--path", str(tree)]
    proc = mlzoo("deploy", TASKS[0], "--on-data-change", "--every", "1h", "--profile", "smoke", *path, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with get_client(sync_client=True) as client:
        retrain = client.read_deployment_by_name(f"retrain/{TASKS[0]}-cpu")
    before = len(_retrain_runs(retrain.id))
    _run_watch(f"watch/{TASKS[0]}-cpu-data")  # first look: records the listing
    _run_watch(f"watch/{TASKS[0]}-cpu-data")  # no change
    assert len(_retrain_runs(retrain.id)) == before
    os.utime(tree / "cat" / "0.png", ns=(time.time_ns(), time.time_ns()))
    _run_watch(f"watch/{TASKS[0]}-cpu-data")
    assert len(_retrain_runs(retrain.id)) == before + 1


def test_down_leaves_no_process_behind(cluster):
    base, _ = cluster
    pids = [v["pid"] for v in _status(base).values() if isinstance(v, dict) and v.get("pid")]
    pids += [w["pid"] for w in _status(base)["workers"]]
    proc = mlzoo("cluster", "down", env=base)
    assert proc.returncode == 0 and "postgres" in proc.stdout
    assert not [p for p in pids if alive(p)]
    root = Path(base["MLZOO_HOME"]) / "cluster"
    leftovers = subprocess.run(["pgrep", "-f", str(root)], capture_output=True, text=True).stdout.split()
    assert not leftovers
