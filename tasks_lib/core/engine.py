"""The shared training loop: seeding, device and precision, optimiser and one-cycle
schedule, gradient clipping, checkpoint/resume and per-epoch metric reporting.

Tasks with ordinary supervised training call :func:`fit`; tasks with special loops
(GAN, RL, CTC) write their own and still report through ``log``.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tasks_lib.core.checkpoint import load_checkpoint, save_checkpoint
from tasks_lib.core.config import TaskConfig
from tasks_lib.core.task import LogFn


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a generator for data order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    # CPU kernels are deterministic already: same data, config and seed give bit-identical
    # weights (tested). torch.use_deterministic_algorithms is not called: it imports
    # torch._inductor (~5 s) and GPU runs promise only a tolerance anyway.
    return torch.Generator().manual_seed(seed)


def pick_device() -> torch.device:
    """CUDA when present, else CPU; ``MLZOO_DEVICE`` overrides (e.g. ``cpu`` on a GPU box)."""
    wanted = os.environ.get("MLZOO_DEVICE", "")
    if wanted:
        return torch.device(wanted)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_optimizer(model: nn.Module, cfg: TaskConfig) -> torch.optim.Optimizer:
    # No weight decay on biases and norm parameters: decaying them only hurts.
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9, nesterov=True)
    raise ValueError(f"optimizer must be 'adamw' or 'sgd', got '{cfg.optimizer}'")


@dataclass
class FitResult:
    epochs: int
    steps: int
    train_seconds: float  # pure optimisation time: no evaluation, no logging
    samples_per_s: float


def fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    cfg: TaskConfig,
    log: LogFn,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    prepare_batch: Callable[[torch.Tensor, torch.Generator], torch.Tensor] | None = None,
    evaluate: Callable[[], dict[str, float]] | None = None,
    checkpoint: Path | None = None,
) -> FitResult:
    """Train ``model`` on in-memory tensors.

    ``prepare_batch(x, gen)`` turns a raw batch (already on the device) into model
    input, e.g. normalise + augment, drawing randomness from ``gen`` only.
    ``evaluate()`` returns validation metrics logged after each epoch.
    ``checkpoint``: saved after every epoch and resumed from when present.
    """
    gen = seed_everything(cfg.seed)
    device = pick_device()
    use_cuda = device.type == "cuda"
    model.to(device)
    if use_cuda and inputs.ndim == 4:
        model.to(memory_format=torch.channels_last)
    step_model = torch.compile(model) if (cfg.compile and use_cuda) else model

    loader = DataLoader(
        TensorDataset(inputs, targets),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=gen,
        drop_last=len(inputs) > cfg.batch_size,
        pin_memory=use_cuda,
    )
    steps_per_epoch = len(loader)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer,
        max_lr=cfg.lr,
        pct_start=0.25,
        # at least 10 steps: shorter one-cycle schedules have an empty warm-up phase
        total_steps=max(cfg.epochs * steps_per_epoch, 10),
    )
    aug_gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)

    start_epoch = 0
    if checkpoint is not None and checkpoint.exists():
        state = load_checkpoint(checkpoint, device, generators={"loader": gen, "aug": aug_gen})
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"] + 1

    steps, seen, train_seconds = 0, 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        n_batches = 0
        t0 = time.perf_counter()
        for i, (x, y) in enumerate(loader):
            if i >= steps_per_epoch:
                break
            x = x.to(device, non_blocking=True)
            y = y.to(device, non_blocking=True)
            if prepare_batch is not None:
                x = prepare_batch(x, aug_gen)
            if use_cuda and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
                loss = loss_fn(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            loss_sum += loss.detach()  # stays on device: no sync per step
            n_batches += 1
            seen += len(x)
        if use_cuda:
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        steps += n_batches
        metrics = {
            "train_loss": float(loss_sum) / max(n_batches, 1),
            "lr": scheduler.get_last_lr()[0],
        }
        if evaluate is not None:
            model.eval()
            metrics.update({f"val_{k}": v for k, v in evaluate().items()})
        log(metrics, epoch)
        if checkpoint is not None:
            save_checkpoint(
                checkpoint,
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "epoch": epoch,
                },
                generators={"loader": gen, "aug": aug_gen},
            )
    model.eval()
    return FitResult(
        epochs=cfg.epochs,
        steps=steps,
        train_seconds=train_seconds,
        samples_per_s=seen / train_seconds if train_seconds > 0 else 0.0,
    )


@torch.no_grad()
def predict_batches(
    model: nn.Module,
    inputs: torch.Tensor,
    batch_size: int = 512,
    prepare: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Model outputs for ``inputs`` in eval mode, on the model's device, returned on CPU."""
    model.eval()
    device = next(model.parameters()).device
    outs = []
    for start in range(0, len(inputs), batch_size):
        x = inputs[start : start + batch_size].to(device)
        if prepare is not None:
            x = prepare(x)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outs.append(model(x).float().cpu())
    return torch.cat(outs) if outs else torch.empty(0)


@dataclass
class Loop:
    """Optimiser, one-cycle schedule and first epoch of a task's own training loop (resumed if checkpointed)."""

    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.OneCycleLR
    start_epoch: int


def start_loop(
    model: nn.Module,
    cfg: TaskConfig,
    steps_per_epoch: int,
    gen: torch.Generator,
    checkpoint: Path | None,
    device: torch.device,
    pct_start: float = 0.25,
) -> Loop:
    """For custom loops (CTC, GAN, RL ...): AdamW/SGD + one-cycle, resumed from ``checkpoint`` when present."""
    optimizer = make_optimizer(model, cfg)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=cfg.lr, pct_start=pct_start, total_steps=max(cfg.epochs * steps_per_epoch, 10)
    )
    start_epoch = 0
    if checkpoint is not None and Path(checkpoint).exists():
        state = load_checkpoint(checkpoint, device, generators={"data": gen})
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start_epoch = state["epoch"] + 1
    return Loop(optimizer, scheduler, start_epoch)


def save_loop(checkpoint: Path | None, model: nn.Module, loop: Loop, gen: torch.Generator, epoch: int) -> None:
    """Checkpoint what :func:`start_loop` resumes from (no-op without a checkpoint path)."""
    if checkpoint is None:
        return
    state = {"model": model.state_dict(), "optimizer": loop.optimizer.state_dict()}
    state |= {"scheduler": loop.scheduler.state_dict(), "epoch": epoch}
    save_checkpoint(checkpoint, state, generators={"data": gen})
