"""Data-parallel training on one machine: N processes, one model replica each.

:func:`launch` starts ``nproc`` processes through torch's elastic launcher (what ``torchrun
--standalone`` runs: a c10d rendezvous on a free local port, then ``RANK``, ``WORLD_SIZE``,
``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` set in each process) and calls a function
in every one of them inside a process group: NCCL when the device is CUDA (one GPU per
process), gloo on CPU. The engine (:func:`tasks_lib.core.engine.train`) notices the process
group and trains data-parallel through :class:`DataParallel`: the model wrapped in
``DistributedDataParallel``, every global batch split between the ranks, the epoch's losses
reduced across them, and only rank 0 logging and checkpointing.

Nothing here imports an MLOps tool; the flow passes what rank 0 must do (log to MLflow,
write the bundle) as the launched function.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


class DistributedTrainingError(RuntimeError):
    """A rank of a data-parallel run failed; the message is that rank's error."""


def rank_and_world() -> tuple[int, int]:
    """(this process's rank, number of processes); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main_process() -> bool:
    """True on rank 0 (and in a plain, single-process run): the process that logs and writes."""
    return rank_and_world()[0] == 0


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``, set by the launcher; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA devices, gloo for everything else."""
    return "nccl" if device.type == "cuda" else "gloo"


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _rank_main(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    """What each launched process runs: join the process group, call ``fn(*args)``, leave."""
    from tasks_lib.core.engine import pick_device

    nproc = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    device = pick_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    else:  # the machine's cores shared between the ranks instead of each rank taking them all
        torch.set_num_threads(max(1, _cpus() // nproc))
    kwargs = {"device_id": device} if device.type == "cuda" else {}
    dist.init_process_group(backend_for(device), **kwargs)
    try:
        return fn(*args)
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], nproc: int, *args: Any, log_dir: str | os.PathLike | None = None) -> list[Any]:
    """Run ``fn(*args)`` in ``nproc`` new processes on this machine, each a rank of one process group.

    ``fn`` and ``args`` must be picklable (a module-level function: the processes are spawned,
    so CUDA works in them). Returns each rank's return value, by rank. A failing rank stops
    them all and raises :class:`DistributedTrainingError` with its error. ``log_dir`` holds the
    launcher's per-rank error files (default: a temporary folder).
    """
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",  # torchrun --standalone: a rendezvous store on a free local port
        rdzv_endpoint="localhost:0",
        max_restarts=0,  # a failed rank fails the step; the flow's retry resumes from the checkpoint
        monitor_interval=0.1,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir) if log_dir is not None else None),
    )
    # the launcher installs its own handlers (to stop the ranks) and leaves them: put ours back after
    main_thread = threading.current_thread() is threading.main_thread()
    handlers = {sig: signal.getsignal(sig) for sig in _SIGNALS} if main_thread else {}
    try:
        results = elastic_launch(config, _recorded_rank_main)(fn, args)
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise DistributedTrainingError(f"rank {rank} of {nproc} failed: {failure.message}") from None
    finally:
        for sig, handler in handlers.items():
            if handler is not None:  # None: set outside Python, nothing to put back
                signal.signal(sig, handler)
    return [results[r] for r in sorted(results)]


_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT)


def _recorded_rank_main(fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    from torch.distributed.elastic.multiprocessing.errors import record

    return record(_rank_main)(fn, args)


# -- inside the engine --------------------------------------------------------------------


def split_batch(batch: Any, rank: int, world: int) -> Any:
    """Rank ``rank``'s contiguous share of ``batch``, split along its first dimension.

    Every tensor and list whose length is the batch's (that of its first tensor or list) is
    sliced; anything else (a scalar, a tensor of another length) is passed whole.
    """
    n = batch_size(batch)
    lo, hi = share(n, rank, world)

    def cut(x: Any) -> Any:
        if isinstance(x, torch.Tensor):
            return x[lo:hi] if x.ndim and len(x) == n else x
        if isinstance(x, Mapping):
            return {k: cut(v) for k, v in x.items()}
        if isinstance(x, tuple):
            return type(x)(*(cut(v) for v in x)) if hasattr(x, "_fields") else tuple(cut(v) for v in x)
        if isinstance(x, list):
            return x[lo:hi] if len(x) == n else [cut(v) for v in x]
        return x

    return cut(batch)


def batch_size(batch: Any) -> int:
    """Samples in a batch: a tensor's or list's length; a tuple's or a dict's first field's."""
    if isinstance(batch, torch.Tensor):
        return len(batch) if batch.ndim else 1
    if isinstance(batch, list):
        return len(batch)
    if isinstance(batch, Mapping) and batch:
        return batch_size(next(iter(batch.values())))
    if isinstance(batch, tuple) and batch:
        return batch_size(batch[0])
    return 1


def share(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of rank ``rank``'s share of ``n`` samples: sizes differ by at most one."""
    if n < world:
        raise ValueError(
            f"a batch of {n} sample(s) cannot be shared by {world} processes: "
            "raise batch_size (it is the global batch, split between the processes) or lower --nproc"
        )
    return n * rank // world, n * (rank + 1) // world


class _Forward(nn.Module):
    """What DDP wraps: the model's own call, past the routing that sends ``model(...)`` to DDP."""

    def __init__(self, module: nn.Module, call: Callable[..., Any]):
        super().__init__()
        self.module = module
        self.call = call

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.call(*args, **kwargs)


class DataParallel:
    """One rank's side of data-parallel training, as the engine uses it.

    Recipes call their model directly (``model(x)`` in a closure), so the engine cannot hand
    them a wrapper. Instead ``model(...)`` is routed through ``DistributedDataParallel`` by the
    hook ``nn.Module.compile`` uses (``_compiled_call_impl``): every forward of a training step
    goes through DDP (buffers broadcast from rank 0, gradients all-reduced during backward),
    while the weights, their names and the state_dict stay the model's own.
    """

    def __init__(self, module: nn.Module, device: torch.device, compiled: Callable[..., Any] | None = None):
        from torch.nn.parallel import DistributedDataParallel

        self.rank, self.world = rank_and_world()
        self.module = module
        self.device = device
        inner = compiled if compiled is not None else module._call_impl
        # DDP broadcasts rank 0's weights and buffers here: every replica starts identical
        self.ddp = DistributedDataParallel(
            _Forward(module, inner),
            device_ids=[device] if device.type == "cuda" else None,
        )  # buffers (BatchNorm statistics) go from rank 0 to the others at every forward: DDP's default
        ddp = self.ddp
        self.route: Callable[..., Any] = lambda *args, **kwargs: ddp(*args, **kwargs)

    def shard(self, batch: Any, split: Callable[[Any, int, int], Any] | None) -> tuple[Any, float]:
        """This rank's part of ``batch`` and its fraction of the global batch's samples."""
        n = batch_size(batch)
        lo, hi = share(n, self.rank, self.world)
        part = (split or split_batch)(batch, self.rank, self.world)
        return part, (hi - lo) / n

    def all_sum(self, values: list[float] | torch.Tensor) -> torch.Tensor:
        """The element-wise sum over ranks (one collective)."""
        t = torch.as_tensor(values, dtype=torch.float64, device=self._comm_device()).clone()
        dist.all_reduce(t)
        return t.cpu()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        box = [obj if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def sync_buffers(self) -> None:
        """Rank 0's buffers (e.g. BatchNorm running statistics) on every rank."""
        for b in self.module.buffers():
            dist.broadcast(b.data, src=0)

    def check_in_sync(self, epoch: int) -> None:
        """Raise if the replicas' weights differ: a step that bypasses the wrapped forward."""
        with torch.no_grad():
            s = torch.stack([p.detach().double().sum() for p in self.module.parameters()]).sum()
        both = torch.stack([s, -s]).to(self._comm_device())
        dist.all_reduce(both, op=dist.ReduceOp.MAX)
        hi, lo = float(both[0]), -float(both[1])
        if abs(hi - lo) > 1e-9 * max(1.0, abs(hi)):
            raise RuntimeError(
                f"the {self.world} processes' weights differ after epoch {epoch} (sums {lo!r} .. {hi!r}): "
                "the recipe's step must compute its losses through the model's forward (or the "
                "module named in Recipe.parallel_module), so that DDP averages the gradients"
            )

    def _comm_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")
