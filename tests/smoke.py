"""Train a task the way the flow does, at a shrunk config: the one helper the tests share.

Lightning-Hydra's pattern: a test shrinks the config (a profile plus overrides) and calls the
real path (``prepare`` -> ``write_prepared`` -> ``load`` -> seed -> ``build_model`` -> ``fit``),
never a second copy of it. Every test that trains a task outside the flow (quality, contract,
resume, served tasks) trains through here; the flow's own tests train through ``flows.steps``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import write_prepared
from tasks_lib.core.engine import LogFn, TrainResult, seed_everything
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import Prepared, Task


@dataclass
class Smoke:
    """A prepared (and, after :func:`train`, trained) task: what the assertions look at."""

    task: Task
    dcfg: DataConfig
    cfg: TaskConfig
    data_dir: Path
    prepared: Prepared
    data: Any
    model: nn.Module | None = None
    logged: list[dict[str, float]] = field(default_factory=list)  # what ``log`` received, one dict per epoch
    result: TrainResult | None = None
    untrained: dict[str, float] | None = None  # test metrics before training, when asked for


def prepare(
    name: str | Task,
    out: Path,
    *,
    profile: str = "smoke",
    data: dict[str, Any] | None = None,
    train: dict[str, Any] | None = None,
) -> Smoke:
    """``name``'s data at ``profile`` (+ ``data`` overrides) written to ``out`` and loaded; ``train``
    overrides the training config the same way."""
    task = get_task(name) if isinstance(name, str) else name
    dcfg, cfg = task.configs(profile, data_overrides=data, train_overrides=train)
    prepared = task.prepare(dcfg, out)
    write_prepared(out, prepared)
    return Smoke(task, dcfg, cfg, Path(out), prepared, task.load(out))


def fit(
    task: Task,
    data: Any,
    cfg: TaskConfig,
    log: LogFn | None = None,
    checkpoint: Path | None = None,
    before_fit: Callable[[nn.Module], None] | None = None,
) -> tuple[nn.Module, TrainResult]:
    """What the flow's train step does: seed, build, fit (resuming from ``checkpoint`` if present)."""
    seed_everything(cfg.seed)
    model = task.build_model(cfg, data.info)
    if before_fit is not None:
        before_fit(model)
    result = task.fit(model, data, cfg, log or (lambda m, e: None), checkpoint=checkpoint)
    return model, result


def train(name: str | Task, out: Path, *, untrained: bool = False, **shrink: Any) -> Smoke:
    """:func:`prepare` (``shrink``: its ``profile``, ``data`` and ``train`` overrides), then seed, build
    and fit; ``untrained=True`` also scores the freshly built model on the test split (``Smoke.untrained``)."""
    return train_prepared(prepare(name, out, **shrink), untrained=untrained)


def train_prepared(run: Smoke, cfg: TaskConfig | None = None, *, untrained: bool = False) -> Smoke:
    """Seed, build and fit on ``run``'s prepared data (with ``cfg`` instead of ``run.cfg`` if given)."""
    cfg = cfg or run.cfg
    logged: list[dict[str, float]] = []
    scored: dict[str, dict[str, float]] = {}

    def score(model: nn.Module) -> None:
        scored["test"] = run.task.evaluate(model, run.data, "test")

    model, result = fit(run.task, run.data, cfg, lambda m, e: logged.append(m), before_fit=score if untrained else None)
    return Smoke(
        run.task, run.dcfg, cfg, run.data_dir, run.prepared, run.data, model, logged, result, scored.get("test")
    )
