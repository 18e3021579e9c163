"""Ready-made :class:`~tasks_lib.core.engine.Recipe` s for the common shapes of training."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tasks_lib.core.config import TaskConfig
from tasks_lib.core.engine import Recipe, one_cycle, pick_device, to_device

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PrepareBatch = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


def prefetch(batches: Iterable[Any], device: torch.device) -> Iterator[Any]:
    """``batches`` moved to ``device`` (non-blocking), each fetched while the previous one is in use."""
    it = iter(batches)
    nxt = next(it, _END)
    while nxt is not _END:
        cur = to_device(nxt, device)
        nxt = next(it, _END)
        yield cur


_END = object()


def supervised(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    cfg: TaskConfig,
    loss_fn: LossFn,
    *,
    prepare_batch: PrepareBatch | None = None,
    validate: Callable[[], dict[str, float]] | None = None,
    pct_start: float = 0.25,
) -> Recipe:
    """``loss_fn(model(prepare_batch(x)), y)`` on in-memory tensors, shuffled each epoch.

    ``prepare_batch(x, gen)`` turns a raw batch (already on the device) into model input,
    e.g. normalise + augment, drawing randomness from ``gen`` only (a generator on the
    device, seeded ``cfg.seed + 1`` and checkpointed). The default optimiser
    (:func:`~tasks_lib.core.engine.make_optimizer`) with a one-cycle schedule.
    """
    device = pick_device()
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    dataset = TensorDataset(inputs, targets)
    drop_last = len(inputs) > cfg.batch_size
    n_batches = len(inputs) // cfg.batch_size if drop_last else 1

    def batches(gen: torch.Generator):
        loader = DataLoader(
            dataset,
            batch_size=cfg.batch_size,
            shuffle=True,
            generator=gen,
            drop_last=drop_last,
            pin_memory=device.type == "cuda",
        )
        # One batch ahead: its host-to-device copy overlaps the step, and the loader reaches its
        # end (where the sampler draws from ``gen``) right after the epoch's last batch is taken.
        ahead = prefetch(loader, device)
        for x, y in ahead:
            yield (prepare_batch(x, aug_gen) if prepare_batch is not None else x), y

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> dict[str, torch.Tensor]:
        x, y = batch
        return {"loss": loss_fn(model(x), y)}

    return Recipe(
        batches=batches,
        step=step,
        steps_per_epoch=n_batches,
        schedule=one_cycle(pct_start),
        validate=validate,
        generators={"aug": aug_gen},
    )
