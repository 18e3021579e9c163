"""The one training loop of the platform: every task trains through :func:`train`.

A task describes *what* differs in a :class:`Recipe` (its batches, a training step that
returns losses, an optional validation); the engine does the rest, the same way for all:
seeding, device and precision (bf16 autocast on CUDA, channels_last for convolutional
models, optional ``torch.compile``), optimisers and per-step LR schedules, gradient
clipping, loss accumulation on the device (one host sync per epoch), timing, one ``log``
call per epoch and one checkpoint format (model, optimisers, schedulers, epoch, step and
every RNG, written atomically), resumed bit-exactly.

Special loops plug in through the recipe's hooks instead of owning a loop: PPO collects its
rollouts inside ``batches`` (a generator run lazily between the engine's steps); a GAN sets
``manual=True`` and updates its two optimisers through the :class:`Stepper` it is given.

Inside a process group (``mlzoo run TASK --nproc N``, see :mod:`tasks_lib.core.distributed`)
the same loop trains data-parallel: every rank draws the same global batches from the same
seeded generators and trains on its share of each (``Recipe.shard``), the model's forward
goes through ``DistributedDataParallel`` (gradients averaged, weighted so that the update is
the one-process update of the whole batch), the epoch's losses are reduced across ranks, and
only rank 0 validates, calls ``log`` and writes the checkpoint.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from tasks_lib.core import distributed
from tasks_lib.core.checkpoint import load_checkpoint, save_checkpoint
from tasks_lib.core.config import TaskConfig

LogFn = Callable[[dict[str, float], int], None]
"""``log(metrics, epoch)``: how training reports; called once per epoch, never per batch."""

LAYOUT = 1  # of the engine's checkpoint state (the file format is tasks_lib.core.checkpoint's)

Losses = dict[str, torch.Tensor]
Optimizers = torch.optim.Optimizer | dict[str, torch.optim.Optimizer]
Schedule = Callable[[torch.optim.Optimizer, int], torch.optim.lr_scheduler.LRScheduler]


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
    """CUDA when present, else CPU; ``MLZOO_DEVICE`` overrides (e.g. ``cpu`` on a GPU box).

    A data-parallel process (``LOCAL_RANK`` set by the launcher) gets its own GPU, ``cuda:LOCAL_RANK``.
    """
    wanted = os.environ.get("MLZOO_DEVICE", "")
    device = torch.device(wanted) if wanted else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        device = torch.device("cuda", distributed.local_rank())
    return device


def make_optimizer(model: nn.Module, cfg: TaskConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (``cfg.optimizer``) at ``cfg.lr``; weight decay on weight matrices only."""
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


def one_cycle(pct_start: float = 0.25) -> Schedule:
    """torch's OneCycleLR up to the optimiser's lr, stepped once per optimiser step."""

    def schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        max_lr = [g["lr"] for g in optimizer.param_groups]
        # at least 10 steps: shorter one-cycle schedules have an empty warm-up phase
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, pct_start=pct_start, total_steps=max(total_steps, 10)
        )

    return schedule


def lambda_schedule(factor: Callable[[int, int], float]) -> Schedule:
    """torch's LambdaLR: the lr of step ``s`` (0-based) is the optimiser's lr x ``factor(s, total_steps)``."""

    def schedule(optimizer: torch.optim.Optimizer, total_steps: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: factor(s, total_steps))

    return schedule


class Stateful(Protocol):
    """Training state a task keeps beside the model (an environment, the best weights so far...)."""

    def state_dict(self) -> dict[str, Any]: ...
    def load_state_dict(self, state: dict[str, Any]) -> None: ...


@dataclass
class Recipe:
    """What a task's training differs in; :func:`train` runs it.

    ``batches(gen)``: an iterable of one epoch's batches (tensors, tuples, lists or dicts of
    them), drawing every random number from ``gen`` (the engine's data generator, saved in the
    checkpoint) or from the task's own ``generators``. It is iterated lazily, one batch per
    step, and never beyond ``steps_per_epoch`` (capped by ``cfg.max_steps_per_epoch``), so a
    generator may do work between steps (PPO collects rollouts there). Tensors are moved to
    the device by the engine (batches already there are left as they are).

    ``step(batch) -> losses``: the forward pass, run under autocast; the engine calls
    ``backward`` on the first entry and updates the optimiser. Every entry is averaged over
    the epoch on the device and logged as ``train_<name>`` (name the first ``"loss"``). With
    ``manual=True`` it is ``step(batch, stepper)`` and updates the optimisers itself through
    ``stepper.update(loss, name)`` (a GAN's two alternating updates); its entries are only logged.
    """

    batches: Callable[[torch.Generator], Iterable[Any]]
    step: Callable[..., Losses]
    steps_per_epoch: int
    # model -> one optimiser or {name: optimiser}; None = make_optimizer(model, cfg)
    optimizers: Callable[[nn.Module], Optimizers] | None = None
    # (optimiser, total steps of the run) -> a per-step torch LR scheduler; None = constant lr
    schedule: Schedule | None = field(default_factory=one_cycle)
    validate: Callable[[], dict[str, float]] | None = None  # logged as val_<name>, model in eval mode
    # (epoch, metrics) after validation, before logging and the checkpoint: may add metrics
    end_epoch: Callable[[int, dict[str, float]], None] | None = None
    finish: Callable[[], None] | None = None  # after the last epoch (e.g. keep the best weights)
    generators: dict[str, torch.Generator] = field(default_factory=dict)  # the task's own, checkpointed
    state: Stateful | None = None  # anything else the task must checkpoint
    manual: bool = False
    samples: Callable[[Any], int] | None = None  # samples in a batch (throughput); default its length
    num_threads: int = 0  # torch threads while training; 0 = unchanged
    # Data-parallel only. shard(batch, rank, world) -> this rank's part of a global batch; None =
    # distributed.split_batch (every tensor and list of the batch's length, split along dim 0)
    shard: Callable[[Any, int, int], Any] | None = None
    # the module whose forward ``step`` calls, when it is not the model itself (DDP wraps that one)
    parallel_module: nn.Module | None = None


@dataclass
class TrainResult:
    """What :func:`train` (and so ``Task.fit``) returns."""

    epochs: int
    steps: int  # optimiser steps run by this call (a resumed run counts only its own)
    train_seconds: float  # pure optimisation time: no validation, no logging, no checkpoint
    samples_per_s: float


class Stepper:
    """One optimiser update: zero grads, backward, clip, step, schedule step."""

    def __init__(self, model: nn.Module, optimizers: dict[str, torch.optim.Optimizer], schedulers, clip: float):
        self.optimizers, self.schedulers, self.clip = optimizers, schedulers, clip
        self._params = {}
        for name, opt in optimizers.items():
            # in the model's own order: the clipping norm sums the same way as clip_grad_norm_(model.parameters())
            ids = {id(p) for g in opt.param_groups for p in g["params"]}
            self._params[name] = [p for p in model.parameters() if id(p) in ids]
        self._device_type = next(iter(self._params.values()))[0].device.type if self._params else "cpu"

    def update(self, loss: torch.Tensor, name: str | None = None) -> None:
        """Update optimiser ``name`` (the only one when omitted) from ``loss``."""
        name = name or next(iter(self.optimizers))
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        with torch.autocast(self._device_type, enabled=False):  # backward outside autocast
            loss.backward()
        if self.clip > 0:
            nn.utils.clip_grad_norm_(self._params[name], self.clip)
        opt.step()
        if name in self.schedulers:
            self.schedulers[name].step()


def to_device(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Tensors of ``batch`` (nested tuples, lists, dicts) on ``device``; 4-D float ones channels_last if asked."""
    if isinstance(batch, torch.Tensor):
        batch = batch.to(device, non_blocking=True)
        if channels_last and batch.ndim == 4 and batch.is_floating_point():
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, Mapping):
        return {k: to_device(v, device, channels_last) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device, channels_last) for v in batch)
    return batch


def _set_compiled(model: nn.Module, call: Any) -> None:
    """Switch ``nn.Module.compile``'s compiled call on (``call``) or off (``None``); no-op if never compiled."""
    if getattr(model, "_compiled_call_impl", None) is not None or call is not None:
        model._compiled_call_impl = call


def _set_training_call(model: nn.Module, compiled: Any, routed: nn.Module, route: Any) -> None:
    """The calls of a training step: the compiled model, or ``routed`` through DDP (data parallel)."""
    _set_compiled(model, compiled)
    if routed is not model or route is not None:
        _set_compiled(routed, route)


def _is_conv_net(model: nn.Module) -> bool:
    return any(p.ndim == 4 for p in model.parameters())


def train(
    model: nn.Module,
    recipe: Recipe,
    cfg: TaskConfig,
    log: LogFn,
    checkpoint: str | os.PathLike | None = None,
) -> TrainResult:
    """Train ``model`` in place for ``cfg.epochs`` epochs as ``recipe`` describes; leaves it in eval mode.

    ``checkpoint``: written after every epoch (atomically) and resumed from when it exists,
    so an interrupted run continues bit-exactly on CPU (same weights as an uninterrupted one).
    """
    threads = torch.get_num_threads()
    if recipe.num_threads:
        torch.set_num_threads(recipe.num_threads)
    try:
        return _train(model, recipe, cfg, log, Path(checkpoint) if checkpoint is not None else None)
    finally:
        torch.set_num_threads(threads)


def _train(model: nn.Module, recipe: Recipe, cfg: TaskConfig, log: LogFn, checkpoint: Path | None) -> TrainResult:
    gen = seed_everything(cfg.seed)
    device = pick_device()
    use_cuda = device.type == "cuda"
    model.to(device)
    channels_last = use_cuda and _is_conv_net(model)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    compiled = None
    if cfg.compile and use_cuda:
        model.compile()  # in place: the state_dict keeps its keys
        compiled = model._compiled_call_impl

    made = recipe.optimizers(model) if recipe.optimizers is not None else make_optimizer(model, cfg)
    optimizers = made if isinstance(made, dict) else {"main": made}
    spe = recipe.steps_per_epoch
    if cfg.max_steps_per_epoch:
        spe = min(spe, cfg.max_steps_per_epoch)
    spe = max(spe, 1)
    schedulers = {}
    if recipe.schedule is not None:
        schedulers = {name: recipe.schedule(opt, cfg.epochs * spe) for name, opt in optimizers.items()}
    stepper = Stepper(model, optimizers, schedulers, cfg.grad_clip)
    generators = {"data": gen, **recipe.generators}

    start_epoch, total_steps = 0, 0
    if checkpoint is not None and checkpoint.exists():
        try:
            state = load_checkpoint(checkpoint, device, generators=generators)
        except KeyError as exc:  # a generator this recipe has and the checkpoint lacks
            why = f"{checkpoint} was written by another training setup ({exc}): delete it to start over"
            raise ValueError(why) from None
        if state.get("layout") != LAYOUT:
            raise ValueError(f"{checkpoint} holds no engine state of layout {LAYOUT}: delete it to start over")
        model.load_state_dict(state["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        for name, sched in schedulers.items():
            sched.load_state_dict(state["schedulers"][name])
        if recipe.state is not None:
            recipe.state.load_state_dict(state["task"])
        start_epoch, total_steps = state["epoch"] + 1, state["steps"]

    rank, world = distributed.rank_and_world()
    parallel, routed, route = None, model, None
    if world > 1:
        if recipe.manual:
            raise ValueError(
                "a recipe with manual=True (its own optimiser updates, e.g. a GAN) cannot train data-parallel: "
                "train it in one process"
            )
        routed = recipe.parallel_module if recipe.parallel_module is not None else model
        parallel = distributed.DataParallel(routed, device, compiled if routed is model else None)
        route = parallel.route
        _set_training_call(model, compiled, routed, route)

    count = recipe.samples or distributed.batch_size
    steps, seen, train_seconds = 0, 0, 0.0
    for epoch in range(start_epoch, cfg.epochs):
        if parallel is not None:
            # each rank its own dropout masks, a function of (seed, epoch, rank) alone: a resumed run
            # draws what the interrupted one would have (the data and task generators are shared)
            torch.manual_seed((cfg.seed * 1_000_003 + epoch) * 1_009 + rank)
        model.train()
        sums: dict[str, torch.Tensor] = {}
        n = 0
        t0 = time.perf_counter()
        for batch in itertools.islice(recipe.batches(gen), spe):  # islice never pulls a batch too many
            seen += count(batch)  # the global batch: throughput counts every rank's samples
            if parallel is not None:
                batch, part = parallel.shard(batch, recipe.shard)
            batch = to_device(batch, device, channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_cuda):
                losses = recipe.step(batch, stepper) if recipe.manual else recipe.step(batch)
            if parallel is not None:
                # DDP averages the ranks' gradients; weighting each rank's mean loss by its share of
                # the batch makes that average the gradient of the whole batch's mean loss
                losses = {k: v * part for k, v in losses.items()}
            if not recipe.manual:
                loss = next(iter(losses.values()))
                stepper.update(loss * world if parallel is not None else loss)
            for k, v in losses.items():
                v = v.detach().float()  # stays on the device: no host sync per step
                sums[k] = sums[k] + v if k in sums else v
            n += 1
        if use_cuda:
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        steps += n
        total_steps += n
        totals = torch.stack(list(sums.values())).tolist() if sums else []  # the epoch's one sync
        if parallel is not None:
            # the ranks' shares of each batch's mean loss add up to the whole batch's
            totals = parallel.all_sum(totals).tolist() if totals else []
            parallel.check_in_sync(epoch)
        metrics = {f"train_{k}": v / max(n, 1) for k, v in zip(sums, totals, strict=True)}
        for name, opt in optimizers.items():
            lr = schedulers[name].get_last_lr()[0] if name in schedulers else opt.param_groups[0]["lr"]
            metrics["lr" if len(optimizers) == 1 else f"lr_{name}"] = lr
        if recipe.validate is not None:
            val = None
            if rank == 0:  # the replicas hold the same weights: one validation serves all
                model.eval()
                _set_training_call(model, None, routed, None)  # validation shapes differ: run it eagerly
                with torch.no_grad():
                    val = recipe.validate()
                _set_training_call(model, compiled, routed, route)
            if parallel is not None:
                val = parallel.broadcast(val)
            metrics.update({f"val_{k}": v for k, v in val.items()})
        if recipe.end_epoch is not None:
            recipe.end_epoch(epoch, metrics)
        if rank == 0:
            log(metrics, epoch)
        if checkpoint is not None and rank == 0:
            state = {
                "layout": LAYOUT,
                "model": model.state_dict(),
                "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
                "schedulers": {name: s.state_dict() for name, s in schedulers.items()},
                "epoch": epoch,  # the last finished epoch
                "steps": total_steps,  # optimiser steps of the run so far
                "task": recipe.state.state_dict() if recipe.state is not None else {},
            }
            save_checkpoint(checkpoint, state, generators=generators)
    _set_training_call(model, None, routed, None)  # eager from here on (evaluation, serving)
    if channels_last:
        model.to(memory_format=torch.contiguous_format)
    model.eval()
    if recipe.finish is not None:
        recipe.finish()
    return TrainResult(
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
