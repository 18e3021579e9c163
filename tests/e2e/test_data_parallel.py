"""`mlzoo run TASK --nproc 2 --profile smoke`: the real flow with its train step in two
data-parallel processes (DDP over gloo), on a state folder of its own. Rank 0 alone logs the
epochs; the flow evaluates, logs, registers and promotes the model as for one process."""

from __future__ import annotations

import json

import pytest

from tests.e2e.isolated import Home, tail

TASK = "image_classification"
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def home(tmp_path_factory, prefect_api) -> Home:
    h = Home(tmp_path_factory.mktemp("ddp"), prefect_api)
    yield h
    h.close()


def test_run_with_two_processes_trains_registers_and_promotes(home):
    run = home.mlzoo("run", TASK, "--profile", "smoke", "--nproc", "2")
    assert run.returncode == 0, tail(run)
    lines = run.stdout.splitlines()
    start = lines.index("{")
    result = json.loads("\n".join(lines[start : lines.index("}", start) + 1]))  # what `run` prints
    assert result["promoted"] and result["value"] > 0.5  # chance is 0.1
    c = home.client()
    r = c.get_run(result["run_id"])
    assert r.data.tags["mlzoo.nproc"] == "2"
    assert r.data.metrics["test_accuracy"] == pytest.approx(result["value"])
    # one value per epoch of the smoke profile, from rank 0 only
    assert [m.step for m in c.get_metric_history(result["run_id"], "train_loss")] == [0, 1, 2, 3]
    assert [m.step for m in c.get_metric_history(result["run_id"], "val_accuracy")] == [0, 1, 2, 3]
    card = open(c.download_artifacts(result["run_id"], "model_card.md")).read()
    assert "data-parallel over 2 processes" in card
    assert str(home.alias(TASK, "champion").version) == result["model_version"]
