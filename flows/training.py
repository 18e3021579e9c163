"""The train step's work: in the flow's own process, or in each of ``--nproc N`` data-parallel
processes (:mod:`tasks_lib.core.distributed`: DDP over gloo on CPU, NCCL on GPUs).

Every rank loads the data, builds the model from the same seed and trains its share of each
batch; rank 0 alone logs the epochs to the MLflow run and writes the bundle, which the flow
then evaluates, logs and registers as for a one-process run.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from flows.settings import Settings
from tasks_lib.core import distributed, refs
from tasks_lib.core.bundle import WEIGHTS, save_bundle
from tasks_lib.core.engine import seed_everything
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import LoadedModel

CHECKPOINT = "checkpoint.pt"


@dataclass
class Trained:
    bundle_dir: Path
    train_seconds: float
    samples_per_s: float
    epochs: int
    weights_sha256: str
    nproc: int = 1  # processes that trained it (data parallel when > 1)


def check_nproc(task: str, nproc: int) -> None:
    """Refuse ``nproc`` < 1, and ``nproc`` > 1 for a task that trains in one process only."""
    if nproc < 1:
        raise ValueError(f"--nproc must be at least 1, got {nproc}")
    reason = get_task(task).single_process_reason
    if nproc > 1 and reason:
        raise ValueError(f"task '{task}' cannot train data-parallel (--nproc {nproc}): {reason}")


def nproc_for(task: str, nproc: int) -> int:
    """``nproc``, or 1 for a task that trains in one process only (``Task.single_process_reason``)."""
    return 1 if get_task(task).single_process_reason else nproc


def fit(s: Settings, p, data_dir: Path, work: Path, run_id: str | None) -> Trained | None:
    """Train plan ``p`` on ``data_dir`` (checkpointing in ``work``); the bundle and its facts on
    rank 0 (or in a plain run), None on the other ranks."""
    t = get_task(p.task)
    _, tcfg = p.configs()
    data = t.load(data_dir)
    seed_everything(tcfg.seed)  # weights are initialised from the seed too
    model = t.build_model(tcfg, data.info)

    def log(metrics: dict[str, float], step: int) -> None:
        if run_id:
            from flows import tracking

            tracking.log_metrics(s, run_id, metrics, step)

    result = t.fit(model, data, tcfg, log, checkpoint=work / CHECKPOINT)
    if not distributed.is_main_process():
        return None
    bundle = save_bundle(LoadedModel(t, tcfg, data.info, model), work / "bundle")
    return Trained(
        bundle_dir=bundle,
        train_seconds=result.train_seconds,
        samples_per_s=result.samples_per_s,
        epochs=result.epochs,
        weights_sha256=hashlib.sha256((bundle / WEIGHTS).read_bytes()).hexdigest(),
        nproc=distributed.rank_and_world()[1],
    )


def train_rank(s: Settings, p, data_dir: Path, work: Path, run_id: str | None, upstream: dict[str, str]):
    """One data-parallel rank (run by :func:`tasks_lib.core.distributed.launch`)."""
    s.apply()  # the same stores as the flow's process
    for ref, bundle in upstream.items():  # pinned upstream models, downloaded by the flow already
        refs.register(ref, Path(bundle))
    return fit(s, p, data_dir, work, run_id)


def train_parallel(s: Settings, p, data_dir: Path, work: Path, run_id: str | None, upstream: dict[str, str]) -> Trained:
    """``p.nproc`` ranks on this machine; rank 0's result."""
    check_nproc(p.task, p.nproc)
    results = distributed.launch(train_rank, p.nproc, s, p, data_dir, work, run_id, upstream, log_dir=work / "launcher")
    return results[0]
