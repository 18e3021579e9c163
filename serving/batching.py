"""In-process adaptive batching: concurrent requests share one ``forward`` call.

Why hand-written: BentoML's adaptive batching only applies at the boundary of a batchable
``@bentoml.api``, i.e. to whatever the HTTP client sends. A client here sends a PNG, a WAV or
a string, and the model-ready arrays exist only after the task's ``parse_request``, inside
the service. Calling a batchable API from inside the service is a second HTTP round trip
per request (BentoML's internal client, recycled every 100 calls, which broke calls in
flight), and exposing it as a route lets anyone skip validation. So requests are parsed
first, then their items are merged here, in process, with no hop.

The policy is greedy: the first waiting item starts a batch at once (no added latency at
concurrency 1); items that arrive while a batch runs wait, and the next batch takes all of
them up to ``max_batch_size``. ``max_wait_s`` (default 0) optionally holds a batch that is
not full a little longer to gather more. ``forward`` runs in one dedicated thread, so the
event loop keeps answering and the model never runs twice at once (torch's intra-op threads
parallelise one batch). A request cancelled (timed out) while waiting is dropped from the
queue and never reaches the model.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass
class _Pending:
    items: Sequence[Any]
    future: asyncio.Future
    after: Callable[[list[Any]], Any] | None = None


class MicroBatcher:
    """``await submit(items)`` -> ``forward(np.stack(items of many requests))`` rows for ``items``."""

    def __init__(
        self,
        forward: Callable[[np.ndarray], Any],
        executor: Executor,
        max_batch_size: int = 64,
        max_wait_s: float = 0.0,
    ) -> None:
        self.forward = forward
        self.executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None
        self._carry: _Pending | None = None
        self.batches = 0  # how many forward calls ran (tests and /metadata read it)
        self.batched_items = 0

    async def submit(self, items: Sequence[Any], after: Callable[[list[Any]], Any] | None = None) -> Any:
        """The model's output rows for ``items`` (one request's parsed items), batched with others.

        ``after(rows)``, when given, runs in the model thread right after the batch (one thread
        hop less per request) and its result is returned instead of the rows.
        """
        if self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(items, future, after))
        return await future

    async def _gather(self, first: _Pending) -> list[_Pending]:
        batch, size = [first], len(first.items)
        deadline = asyncio.get_running_loop().time() + self.max_wait_s
        while size < self.max_batch_size:
            try:
                nxt = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - asyncio.get_running_loop().time()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if size + len(nxt.items) > self.max_batch_size:
                self._carry = nxt  # starts the next batch
                break
            batch.append(nxt)
            size += len(nxt.items)
        return [p for p in batch if not p.future.done()]  # drop the cancelled (timed out) ones

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first, self._carry = self._carry or await self._queue.get(), None
            if first.future.done():
                continue
            batch = await self._gather(first)
            if not batch:
                continue
            try:
                results = await loop.run_in_executor(self.executor, self._forward, batch)
            except Exception as exc:  # noqa: BLE001 (the callers answer it)
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(exc)
                continue
            for p, result in zip(batch, results, strict=True):
                if p.future.done():
                    continue
                if isinstance(result, BaseException):
                    p.future.set_exception(result)
                else:
                    p.future.set_result(result)

    def _forward(self, batch: list[_Pending]) -> list[Any]:
        """In the model thread: one forward call for the batch, then each request's ``after``."""
        outputs = self.forward(np.stack([item for p in batch for item in p.items]))
        self.batches += 1
        self.batched_items += sum(len(p.items) for p in batch)
        results, start = [], 0
        for p in batch:
            rows = list(outputs[start : start + len(p.items)])
            start += len(p.items)
            try:
                results.append(p.after(rows) if p.after else rows)
            except Exception as exc:  # noqa: BLE001 (that request's caller answers it)
                results.append(exc)
        return results
