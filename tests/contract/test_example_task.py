"""The guide's example task (docs/adding_a_task.md) keeps the whole contract, as a registered task would:
declarations, manifest, smoke round trip (GX, engine, bundle, predict), exact resume, and it learns."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task, register, unregister
from tests.contract import test_resume_exact, test_task_contract
from tests.contract.example_task import WineClassification

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adding_a_task.md"


@pytest.fixture
def task():
    register(WineClassification)
    try:
        yield get_task(WineClassification.name)
    finally:
        unregister(WineClassification.name)


def test_declares_what_the_platform_needs(task):
    test_task_contract.test_declares_what_the_platform_needs(task)


def test_manifest_keys_every_sample_by_content(task, tmp_path):
    test_task_contract.test_manifest_keys_every_sample_by_content(task, tmp_path)


def test_smoke_round_trip(task, tmp_path):
    test_task_contract.test_smoke_round_trip(task, tmp_path)


def test_resume_is_exact(task, tmp_path):
    test_resume_exact.test_interrupted_and_resumed_training_ends_bit_identical(task.name, tmp_path)


def test_quick_profile_beats_the_majority_class(task, tmp_path):
    dcfg, cfg = task.configs("quick")
    write_prepared(tmp_path, task.prepare(dcfg, tmp_path))
    data = task.load(tmp_path)
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    task.fit(model, data, cfg, lambda m, s: None)
    assert task.evaluate(model, data)["accuracy"] > max(0.85, task.baseline(data)["accuracy"] + 0.4)


def test_the_guide_quotes_the_example_as_it_is():
    """Every Python block of the guide is a verbatim excerpt of the example module: they cannot drift."""
    source = (Path(__file__).parent / "example_task.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert blocks
    for block in blocks:
        assert block in source, f"the guide's block is not in example_task.py:\n{block}"
