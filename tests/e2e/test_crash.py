"""Crash consistency: a real `mlzoo run` killed (``os._exit``, no clean-up of any kind) at every
step boundary of the flow, one after another, on one registry. After each kill the champion
is a decided version with its own Bento, @previous differs from it; then the next run
succeeds, and every killed run is FAILED in MLflow and Crashed in Prefect."""

from __future__ import annotations

import httpx
import pytest

from flows import faults
from flows.promotion import PREVIOUS_TAG, lock_name
from tests.e2e.bento_server import free_port, running
from tests.e2e.isolated import MLZOO, Home, tail

TASK = "image_classification"
pytestmark = pytest.mark.e2e
TINY = ["--profile", "smoke", "--set", "epochs=1", "--set", "max_steps_per_epoch=3", "--set", "width=8"]
MOVES_CHAMPION = ("aliases", "promote")  # a kill after the champion alias was written
IN_CRITICAL_SECTION = ("aliases",)  # a kill while holding the task's promotion slot


@pytest.fixture(scope="module")
def home(tmp_path_factory, prefect_api) -> Home:
    h = Home(tmp_path_factory.mktemp("crash"), prefect_api)
    first = h.mlzoo("run", TASK, *TINY)
    assert first.returncode == 0, tail(first)
    h.set_promotion_policy(TASK, min_delta=-1.0)  # every challenger wins: each run gets to the alias writes
    yield h
    h.close()


def _versions(h: Home) -> list[int]:
    return sorted(int(v.version) for v in h.client().search_model_versions(f"name='{TASK}'"))


def _assert_consistent(h: Home) -> None:
    champ = h.alias(TASK, "champion")
    prev = h.alias(TASK, "previous")
    assert champ is not None
    assert PREVIOUS_TAG in champ.tags, "the champion was not set by a completed decision"
    assert prev is None or prev.version != champ.version
    served = {(b["mlflow_version"], b.get("mlflow_run_id")) for b in h.bentos(TASK)}
    assert (str(champ.version), champ.run_id) in served, "the champion has no Bento of its own"


@pytest.mark.parametrize("boundary", faults.BOUNDARIES)
def test_killed_at_boundary_leaves_a_consistent_registry(home, boundary):
    before = home.alias(TASK, "champion").version
    versions = _versions(home)
    proc = home.mlzoo("run", TASK, *TINY, MLZOO_FAULT=boundary)
    assert proc.returncode == faults.KILLED_EXIT_CODE, tail(proc)
    assert f"killed at boundary '{boundary}'" in proc.stderr
    _assert_consistent(home)
    champ = home.alias(TASK, "champion")
    if boundary in MOVES_CHAMPION:
        assert int(champ.version) == max(_versions(home)) > max(versions)
    else:
        assert champ.version == before
    if boundary in IN_CRITICAL_SECTION:  # the dead holder's slot is freed by recovery, not after its lease
        assert _slots_taken() == 1
        assert home.mlzoo("status").returncode == 0
        assert _slots_taken() == 0


def _slots_taken() -> int:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(lock_name(TASK)).active_slots


def test_the_next_run_succeeds_and_killed_runs_are_failed_and_crashed(home, prefect_api):
    from prefect.client.orchestration import get_client

    proc = home.mlzoo("run", TASK, *TINY)
    assert proc.returncode == 0, tail(proc)
    _assert_consistent(home)
    c = home.client()
    exp = c.get_experiment_by_name(TASK)
    runs = c.search_runs([exp.experiment_id])
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    killed = [r for r in runs if "mlzoo.failure" in r.data.tags]
    assert len(killed) == len(faults.BOUNDARIES)
    assert all(r.info.status == "FAILED" for r in killed)
    with get_client(sync_client=True) as client:
        states = {client.read_flow_run(r.data.tags["mlzoo.flow_run_id"]).state.type.value for r in killed}
    assert states == {"CRASHED"}


def test_the_champion_bento_serves_the_champion(home):
    champ = home.alias(TASK, "champion")
    port = free_port()
    with running([MLZOO, "serve", TASK, "--port", str(port)], port, env=home.env()) as url:
        meta = httpx.get(f"{url}/metadata", timeout=10).json()
    assert meta["mlflow_version"] == str(champ.version)


def test_status_marks_a_killed_run_failed_too(home):
    from prefect.client.orchestration import get_client

    proc = home.mlzoo("run", TASK, *TINY, MLZOO_FAULT="train")
    assert proc.returncode == faults.KILLED_EXIT_CODE, tail(proc)
    c = home.client()
    exp = c.get_experiment_by_name(TASK)
    (killed,) = c.search_runs([exp.experiment_id], filter_string="attributes.status = 'RUNNING'")
    status = home.mlzoo("status", "--json")
    assert status.returncode == 0, tail(status)
    run = c.get_run(killed.info.run_id)
    assert run.info.status == "FAILED" and "died" in run.data.tags["mlzoo.failure"]
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run.data.tags["mlzoo.flow_run_id"]).state.is_crashed()
