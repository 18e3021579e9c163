"""Resume is exact, for every registered task: training interrupted after one epoch and resumed
from the checkpoint the flow would resume from ends with the same weights, bit for bit, as the
same training run straight through (CPU).

The interrupt is a crash inside ``log`` of the second epoch, i.e. after that epoch trained but
before its checkpoint was written: the resumed run must redo it from epoch 0's checkpoint with
every random stream (data order, augmentation, dropout, environments) exactly where it was.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from tasks_lib.core.registry import get_task, task_names
from tests import smoke

TRAIN = {"epochs": 2, "max_steps_per_epoch": 2}
# what keeps a task's three short runs cheap beyond the shared overrides
EXTRA = {
    "image_generation": {"judge_fallback_steps": 10},
    "game_control": {"n_steps": 8, "ppo_epochs": 2},
}


class Interrupted(Exception):
    pass


def _train(task, data, cfg, checkpoint=None, crash_at_epoch=None):
    """What the flow's train step does (resuming from ``checkpoint`` if present), crashing in ``log`` if asked."""
    logged = []

    def log(metrics, epoch):
        if epoch == crash_at_epoch:
            raise Interrupted
        logged.append(metrics)

    model, _ = smoke.fit(task, data, cfg, log, checkpoint=checkpoint)
    return model, logged


@pytest.mark.parametrize("name", task_names())
def test_interrupted_and_resumed_training_ends_bit_identical(name, smoke_cache, tmp_path):
    task = get_task(name)
    _, cfg = task.configs("smoke", train_overrides={**TRAIN, **EXTRA.get(name, {})})
    data = smoke_cache.prepared(task).data  # the contract's smoke data: same data config, prepared once

    straight, logged = _train(task, data, cfg)
    assert len(logged) == 2

    ckpt = tmp_path / "checkpoint.pt"
    with pytest.raises(Interrupted):
        _train(task, data, cfg, checkpoint=ckpt, crash_at_epoch=1)
    assert ckpt.exists()
    # whatever else the process drew in between must not matter
    random.random(), np.random.rand(), torch.rand(3)
    resumed, resumed_logged = _train(task, data, cfg, checkpoint=ckpt)

    assert resumed_logged == logged[1:]  # the resumed run logged only epoch 1, with the same figures
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    differ = [k for k in a if not torch.equal(a[k], b[k])]
    assert not differ, f"{len(differ)} of {len(a)} tensors differ after resuming, e.g. {differ[:3]}"


@pytest.mark.parametrize("name", task_names())
def test_training_goes_through_the_engine(name):
    """A task writes ``training`` (a recipe), never ``fit`` or a loop of its own."""
    from tasks_lib.core.task import Task

    assert type(get_task(name)).fit is Task.fit


def test_no_backward_or_optimiser_step_outside_the_engine():
    """Every ``backward()`` and optimiser ``step()`` of the training code is the engine's (the GAN
    and PPO update through its Stepper); environments' ``step(action)`` take an argument."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    found = [
        f"{path.relative_to(root)}:{i}: {line.strip()}"
        for folder in ("tasks_lib", "flows", "serving")
        for path in sorted((root / folder).rglob("*.py"))
        if path != root / "tasks_lib" / "core" / "engine.py"
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.backward\(|\.step\(\)", line)
    ]
    assert not found, "\n".join(found)
