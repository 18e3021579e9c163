"""The guide's example task (docs/adding_a_task.md) keeps the whole contract, as a registered task would:
declarations, manifest, smoke round trip (GX, engine, bundle, predict), exact resume, and it learns."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tasks_lib.core.registry import get_task, register, unregister
from tests import smoke
from tests.contract import test_resume_exact, test_task_contract
from tests.contract.example_task import WineClassification

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "adding_a_task.md"
# every test of the registry's contract, run here on the example
CONTRACT = [getattr(test_task_contract, n) for n in dir(test_task_contract) if n.startswith("test_")]


@pytest.fixture
def task():
    register(WineClassification)
    try:
        yield get_task(WineClassification.name)
    finally:
        unregister(WineClassification.name)


@pytest.mark.parametrize("contract_test", CONTRACT, ids=lambda f: f.__name__)
def test_keeps_the_contract(contract_test, task, smoke_cache):
    if "smoke_cache" in inspect.signature(contract_test).parameters:
        contract_test(task, smoke_cache)
    else:
        contract_test(task)


def test_resume_is_exact(task, smoke_cache, tmp_path):
    test_resume_exact.test_interrupted_and_resumed_training_ends_bit_identical(task.name, smoke_cache, tmp_path)


def test_quick_profile_beats_the_majority_class(task, tmp_path):
    run = smoke.train(task, tmp_path, profile="quick")
    assert run.task.evaluate(run.model, run.data)["accuracy"] > max(0.85, run.task.baseline(run.data)["accuracy"] + 0.4)


def test_the_guide_quotes_the_example_as_it_is():
    """Every Python block of the guide is a verbatim excerpt of the example module: they cannot drift."""
    source = (Path(__file__).parent / "example_task.py").read_text()
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.S)
    assert blocks
    for block in blocks:
        assert block in source, f"the guide's block is not in example_task.py:\n{block}"
