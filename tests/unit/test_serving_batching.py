"""The in-process micro-batcher and the typed request models, without a server."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pydantic import ValidationError

from serving.batching import MicroBatcher
from tasks_lib.core.registry import get_task, task_names
from tasks_lib.core.schema import describe_errors, request_model


def test_concurrent_requests_share_forward_calls_and_get_their_own_rows():
    sizes, threads = [], set()

    def forward(batch: np.ndarray) -> np.ndarray:
        sizes.append(len(batch))
        threads.add(threading.current_thread().name)
        time.sleep(0.01)
        return batch * 2

    async def main():
        batcher = MicroBatcher(forward, ThreadPoolExecutor(1, thread_name_prefix="model"), max_batch_size=16)
        requests = [[np.full(3, i), np.full(3, -i)] if i % 5 == 0 else [np.full(3, i)] for i in range(60)]
        answers = await asyncio.gather(*(batcher.submit(r) for r in requests))
        for r, a in zip(requests, answers, strict=True):
            assert [row.tolist() for row in a] == [(item * 2).tolist() for item in r]
        return batcher

    batcher = asyncio.run(main())
    assert sum(sizes) == 72 and max(sizes) <= 16 and len(sizes) < 60  # merged, never over the limit
    assert batcher.batches == len(sizes) and threads == {"model_0"}


def test_a_cancelled_request_never_reaches_the_model():
    seen = []

    def forward(batch: np.ndarray) -> np.ndarray:
        seen.extend(batch[:, 0].tolist())
        time.sleep(0.05)
        return batch

    async def main():
        batcher = MicroBatcher(forward, ThreadPoolExecutor(1), max_batch_size=1)
        first = asyncio.ensure_future(batcher.submit([np.array([1])]))
        await asyncio.sleep(0.01)  # the first is in the model now
        second = asyncio.ensure_future(batcher.submit([np.array([2])]))
        await asyncio.sleep(0)
        second.cancel()
        third = await batcher.submit([np.array([3])])
        await first
        return third

    assert asyncio.run(main())[0].tolist() == [3]
    assert seen == [1, 3]


def test_an_error_in_forward_reaches_every_request_of_its_batch_and_the_batcher_goes_on():
    calls = []

    def forward(batch: np.ndarray) -> np.ndarray:
        calls.append(len(batch))
        if len(calls) == 1:
            raise RuntimeError("boom")
        return batch

    async def main():
        batcher = MicroBatcher(forward, ThreadPoolExecutor(1))
        with pytest.raises(RuntimeError):
            await batcher.submit([np.zeros(1)])
        return await batcher.submit([np.ones(1)])

    assert asyncio.run(main())[0].tolist() == [1.0]


@pytest.mark.parametrize("name", task_names())
def test_every_task_has_a_typed_request_and_answer(name):
    cls = type(get_task(name))
    model = request_model(cls)
    assert set(model.model_fields) == set(cls.request_fields)
    assert cls.answer_model is not None, f"{name} declares no answer_model"
    with pytest.raises(ValidationError) as exc:
        model.model_validate({"nope": 1})
    field, message = describe_errors(exc.value, name, cls.request_fields)
    assert field == "nope" and ", ".join(cls.request_fields) in message


def test_file_fields_take_bytes_only():
    model = request_model(type(get_task("image_classification")))
    assert model.model_validate({"image": b"\x89PNG"}).image == b"\x89PNG"
    with pytest.raises(ValidationError):
        model.model_validate({"image": "a string"})
