"""One prepared and one trained smoke result per task, shared by the small contract tests.

The contract is many small tests parametrised over the registry (timm's pattern: one failure does
not hide the rest), but they must not prepare or train more than one test did: each task's smoke
data is prepared once per session (per xdist worker) and trained once (two optimiser steps);
every test that needs them reads the same cached result. A step that failed fails every test
that needs it with the same error, without being retried.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from tasks_lib.core.bundle import load_bundle, save_bundle
from tasks_lib.core.task import LoadedModel, Task
from tests import smoke

# the contract's training: one epoch of two optimiser steps
CONTRACT_TRAIN = {"epochs": 1, "max_steps_per_epoch": 2}


class SmokeCache:
    """Per task name: its smoke data prepared, a two-step training on it, and that model's bundle."""

    def __init__(self, root: Path):
        self.root = root
        self._done: dict[tuple[str, str], Any] = {}

    def _once(self, kind: str, task: Task, make: Callable[[], Any]) -> Any:
        key = (kind, task.name)
        if key not in self._done:
            try:
                self._done[key] = make()
            except Exception as exc:  # remembered: the next test that needs it fails the same way
                self._done[key] = exc
        value = self._done[key]
        if isinstance(value, Exception):
            raise value
        return value

    def prepared(self, task: Task) -> smoke.Smoke:
        """The task's smoke data, written and loaded (``cfg``: the contract's two-step training)."""
        return self._once(
            "prepared", task, lambda: smoke.prepare(task, self.root / task.name / "data", train=CONTRACT_TRAIN)
        )

    def trained(self, task: Task) -> smoke.Smoke:
        """The prepared data with a model trained on it for two steps."""
        return self._once("trained", task, lambda: smoke.train_prepared(self.prepared(task)))

    def bundled(self, task: Task) -> tuple[LoadedModel, LoadedModel]:
        """(the trained model as serving holds it, the same reloaded from its saved bundle)."""

        def make() -> tuple[LoadedModel, LoadedModel]:
            run = self.trained(task)
            loaded = LoadedModel(task, run.cfg, run.data.info, run.model)
            return loaded, load_bundle(save_bundle(loaded, self.root / task.name / "bundle"))

        return self._once("bundled", task, make)


@pytest.fixture(scope="session")
def smoke_cache(tmp_path_factory) -> SmokeCache:
    return SmokeCache(tmp_path_factory.mktemp("contract"))


@pytest.fixture(autouse=True)
def one_thread():
    """Smoke models are tiny: one torch thread is as fast, and a second one spins for nothing
    whenever another process wants the CPU (seen: 36 s vs 430 s for the resume tests on a busy
    2-core box). ``make test`` runs two xdist workers on two cores anyway."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
