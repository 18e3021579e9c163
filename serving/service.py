"""The BentoML service that serves any task's champion.

The Bento's ``serving/model.json`` names the model in the Bento model store
(``MLZOO_MODEL_TAG`` overrides it); the model's bundle names its task, and the task's
``preprocess`` / ``forward`` / ``postprocess`` do the rest. ``forward`` is a batchable
API, so concurrent ``/predict`` requests are merged by BentoML's adaptive batching.
Bad input is answered with a 4xx that names the problem; the server keeps serving.
"""

from __future__ import annotations

import json
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import bentoml
import numpy as np
from bentoml.exceptions import BentoMLException
from fastapi import FastAPI

from tasks_lib.core.bundle import load_bundle
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.images import array_to_image, decode_image

FORWARD_ATTEMPTS = 3
metadata_app = FastAPI(title="mlzoo metadata")


class BadRequest(BentoMLException):
    """A 4xx whose message says what was wrong with the request."""


def _reject(exc: InvalidInput) -> BadRequest:
    return BadRequest(str(exc), error_code=HTTPStatus(exc.status))


@metadata_app.get("/metadata")
def metadata() -> dict[str, Any]:
    """Provenance of the served model: task, MLflow model and version, run, data, code, metrics."""
    return bentoml.get_current_service().metadata_dict


@bentoml.asgi_app(metadata_app)
@bentoml.service(name="mlzoo", traffic={"timeout": 60}, workers=1)
class MLZooService:
    def __init__(self) -> None:
        model = bentoml.models.get(os.environ.get("MLZOO_MODEL_TAG") or self._bento_model_tag())
        self.loaded = load_bundle(Path(model.path))
        self.task = self.loaded.task
        self.metadata_dict = {
            "task": self.task.name,
            "bento_model": str(model.tag),
            **model.info.labels,
            **model.info.metadata,
        }

    @staticmethod
    def _bento_model_tag() -> str:
        path = Path(__file__).with_name("model.json")
        if not path.exists():
            raise RuntimeError("no serving/model.json in this Bento and MLZOO_MODEL_TAG is not set")
        return json.loads(path.read_text())["model_tag"]

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=2000)
    def forward(self, batch: np.ndarray) -> np.ndarray:
        """Model-ready inputs stacked on axis 0 -> raw outputs (batched adaptively)."""
        return self.task.forward(self.loaded, batch)

    @bentoml.api
    async def predict(self, image: Path = None, array: list = None) -> dict[str, Any]:  # noqa: RUF013 (BentoML reads a bare Path as a file field; Optional breaks that)
        """Image tasks: multipart field ``image`` (PNG/JPEG) or JSON ``{"array": [[...]]}`` (0-255)."""
        try:
            if self.task.modality != "image":
                raise InvalidInput(f"task '{self.task.name}' does not take images", status=422)
            if (image is None) == (array is None):
                raise InvalidInput("send exactly one of: multipart field 'image', JSON field 'array'", status=422)
            img = decode_image(image.read_bytes()) if image is not None else array_to_image(array)
            x = self.task.preprocess(self.loaded, img)
        except InvalidInput as exc:
            raise _reject(exc) from None
        return self.task.postprocess(self.loaded, np.asarray(await self._batched_forward(x[None]))[0])

    async def _batched_forward(self, batch: np.ndarray) -> np.ndarray:
        """Call the batchable ``forward`` API (so BentoML merges concurrent requests).

        BentoML 1.4.40 recycles the client behind this internal call every 100 calls,
        closing it under calls still in flight (aiohttp "Cannot write to closing
        transport"); ``forward`` is a pure function, so those calls are simply retried.
        """
        for attempt in range(FORWARD_ATTEMPTS):
            try:
                return await self.to_async.forward(batch)
            except aiohttp.ClientError:
                if attempt == FORWARD_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
