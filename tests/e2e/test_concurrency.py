"""Two real `mlzoo run`s of one task at once (a cron run and a manual one, or two workers):
both finish, exactly one champion comes out, and it is the best of the three on the same
test data, decided inside the task's critical section on the Prefect server."""

from __future__ import annotations

import pytest

from tests.e2e.isolated import Home, tail

TASK = "image_classification"
pytestmark = pytest.mark.e2e
WEAK = ["--profile", "smoke", "--set", "epochs=1", "--set", "max_steps_per_epoch=2", "--set", "width=8"]


@pytest.fixture(scope="module")
def race(tmp_path_factory, prefect_api):
    h = Home(tmp_path_factory.mktemp("race"), prefect_api)
    first = h.mlzoo("run", TASK, *WEAK)
    assert first.returncode == 0, tail(first)
    racers = ["--profile", "smoke", "--set", "epochs=2", "--set", "width=8"]
    pids = [h.start("run", TASK, *racers, "--set", f"seed={seed}") for seed in (1, 2)]
    yield h, [h.wait(pid) for pid in pids]
    h.close()


def test_both_runs_finish(race):
    _, outs = race
    for proc in outs:
        assert proc.returncode == 0, tail(proc)


def test_one_champion_the_best_of_the_three_with_a_distinct_previous(race):
    h, _ = race
    versions = h.client().search_model_versions(f"name='{TASK}'")
    assert len(versions) == 3
    assert len({v.tags["data_md5"] for v in versions}) == 1  # one data version: recorded metrics compare
    value = {str(v.version): float(v.tags["metric_value"]) for v in versions}
    champ, prev = h.alias(TASK, "champion"), h.alias(TASK, "previous")
    assert champ is not None and prev is not None and prev.version != champ.version
    assert value[str(champ.version)] == max(value.values())
    aliases = h.client().get_registered_model(TASK).aliases
    assert set(aliases) == {"champion", "previous"}  # one of each


def test_every_version_records_the_data_its_run_trained_on(race):
    h, _ = race
    c = h.client()
    for v in c.search_model_versions(f"name='{TASK}'"):
        run = c.get_run(v.run_id)
        assert v.tags["data_md5"] == run.data.tags["data_md5"]
        assert run.inputs.dataset_inputs[0].dataset.digest == v.tags["data_md5"].removesuffix(".dir")[:12]
