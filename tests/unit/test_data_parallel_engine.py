"""Data-parallel training in the engine: batch sharding, the refusals, and two gloo processes
on a toy problem giving the one-process run (gradients of the whole batch, losses reduced,
only rank 0 logging)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tasks_lib.core import distributed, engine
from tasks_lib.core.config import TaskConfig
from tasks_lib.core.recipes import supervised


def test_split_batch_gives_each_rank_a_contiguous_share_of_every_batch_field():
    x = torch.arange(10).view(5, 2)
    targets = [{"boxes": torch.full((i + 1, 4), i)} for i in range(5)]
    other = torch.arange(3)  # not the batch's length: passed whole
    batch = (x, targets, other, 7)
    parts = [distributed.split_batch(batch, r, 2) for r in range(2)]
    assert [len(p[0]) for p in parts] == [2, 3]
    assert torch.equal(torch.cat([p[0] for p in parts]), x)
    assert [t["boxes"][0, 0].item() for p in parts for t in p[1]] == list(range(5))
    assert all(p[2] is other and p[3] == 7 for p in parts)
    d = distributed.split_batch({"obs": torch.zeros(4, 3), "act": torch.ones(4)}, 1, 2)
    assert d["obs"].shape == (2, 3) and d["act"].shape == (2,)


def test_a_batch_smaller_than_the_number_of_processes_is_refused():
    with pytest.raises(ValueError, match="cannot be shared by 3 processes"):
        distributed.share(2, 0, 3)


def test_tasks_that_train_in_one_process_refuse_nproc():
    from flows.training import check_nproc, nproc_for

    for task in ("game_control", "image_generation"):
        with pytest.raises(ValueError, match="cannot train data-parallel"):
            check_nproc(task, 2)
        assert nproc_for(task, 4) == 1
    check_nproc("image_classification", 2)
    check_nproc("game_control", 1)
    with pytest.raises(ValueError, match="at least 1"):
        check_nproc("image_classification", 0)


def test_the_cli_refuses_nproc_before_any_work():
    from flows.cli import main

    with pytest.raises(SystemExit, match="PPO"):
        main(["run", "game_control", "--nproc", "2"])
    with pytest.raises(SystemExit, match="at least 1"):
        main(["run", "image_classification", "--nproc", "0"])


# -- two processes --------------------------------------------------------------------------


def _toy(cfg: TaskConfig, checkpoint: str | None = None) -> tuple[dict, list]:
    """Train a small MLP on a fixed problem; (weights, what ``log`` received)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 4, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    engine.seed_everything(cfg.seed)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    logged = []
    recipe = supervised(model, x, y, cfg, nn.CrossEntropyLoss(), validate=lambda: {"acc": _acc(model, x, y)})
    engine.train(model, recipe, cfg, lambda m, s: logged.append((s, m)), checkpoint=checkpoint)
    return {k: v.clone() for k, v in model.state_dict().items()}, logged


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    return (model(x).argmax(1) == y).float().mean().item()


def _toy_rank(cfg: TaskConfig) -> tuple[dict, list]:  # module level: the launcher pickles it
    return _toy(cfg)


# 25 does not divide by 2: the ranks get 12 and 13 samples of each batch, weighted to the whole batch's mean
CFG = TaskConfig(epochs=3, batch_size=25, lr=1e-2, seed=3)


def test_two_gloo_processes_train_the_one_process_model():
    torch.set_num_threads(1)
    one_weights, one_log = _toy(CFG)
    (two_weights, two_log), (rank1_weights, rank1_log) = distributed.launch(_toy_rank, 2, CFG)
    assert rank1_log == []  # only rank 0 logs
    for k in one_weights:
        assert torch.equal(two_weights[k], rank1_weights[k]), k  # the replicas stay identical
        torch.testing.assert_close(two_weights[k], one_weights[k], rtol=0, atol=1e-5)
    assert [s for s, _ in two_log] == [0, 1, 2]
    for (_, m1), (_, m2) in zip(one_log, two_log, strict=True):
        assert m1.keys() == m2.keys()
        assert m2["train_loss"] == pytest.approx(m1["train_loss"], abs=1e-5)
        assert m2["val_acc"] == pytest.approx(m1["val_acc"], abs=1e-6)
