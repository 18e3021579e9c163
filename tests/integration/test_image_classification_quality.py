"""Behaviour of the trained model: real training, quality against chance and the baseline."""

import pytest

from flows import steps
from tasks_lib.core.bundle import load_bundle
from tasks_lib.core.data import write_prepared
from tasks_lib.core.registry import get_task

TASK = "image_classification"


def test_smoke_profile_learns_well_above_chance(settings, digits_smoke_dir):
    trained = steps.train(settings, steps.plan(settings, TASK, "smoke"), digits_smoke_dir)
    task = get_task(TASK)
    m = task.evaluate(load_bundle(trained.bundle_dir).module, task.load(digits_smoke_dir))
    assert m["accuracy"] > 0.1 + 0.3  # chance is 0.1 on ten balanced classes


@pytest.mark.slow
def test_quick_profile_reaches_its_target_and_beats_the_baseline(settings, tmp_path):
    """The issue's target: accuracy >= 0.98 on the digits test split at the quick profile."""
    task = get_task(TASK)
    p = steps.plan(settings, TASK, "quick")
    dcfg, _ = p.configs()
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    trained = steps.train(settings, p, tmp_path)
    data = task.load(tmp_path)
    m = task.evaluate(load_bundle(trained.bundle_dir).module, data)
    base = task.baseline(data)
    assert m["accuracy"] >= 0.98
    assert m["accuracy"] > base["accuracy"]
    assert min(m[f"acc_class_{i}"] for i in range(10)) > 0.9  # no class left behind
