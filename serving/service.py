"""The BentoML service that serves any task's champion.

The Bento's ``serving/model.json`` names the model in the Bento model store
(``MLZOO_MODEL_TAG`` overrides it); the model's bundle names its task, and the task's
``preprocess`` / ``forward`` / ``postprocess`` do the rest. ``forward`` is a batchable
API, so concurrent ``/predict`` requests are merged by BentoML's adaptive batching.
Bad input is answered with a 4xx that names the problem; the server keeps serving.
"""

from __future__ import annotations

import asyncio
import base64
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
from fastapi.responses import JSONResponse, Response
from starlette.requests import Request as StarletteRequest

from tasks_lib.core.bundle import load_bundle
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.task import REQUEST_FIELDS, Request

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


@metadata_app.post("/render")
async def render(request: StarletteRequest) -> Response:
    """Like ``/predict`` but answers with the media itself (PNG, WAV) for tasks that output media."""
    svc = bentoml.get_current_service()
    if svc.task.output_media is None:
        return JSONResponse({"error": f"task '{svc.task.name}' answers JSON only: use /predict"}, status_code=404)
    try:
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form()
            fields = {k: (await v.read()) if hasattr(v, "read") else v for k, v in form.items()}
            if isinstance(fields.get("options"), str):
                fields["options"] = json.loads(fields["options"])
        else:
            fields = await request.json()
        if not isinstance(fields, dict):
            raise InvalidInput("the request body must be a JSON object or a multipart form", status=422)
        answer = await svc.answer(fields)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return JSONResponse({"error": "the request body is not valid JSON"}, status_code=400)
    except InvalidInput as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except BadRequest as exc:
        return JSONResponse({"error": exc.message}, status_code=int(exc.error_code))
    return Response(content=answer["media"], media_type=svc.task.output_media)


@bentoml.asgi_app(metadata_app)
@bentoml.service(name="mlzoo", traffic={"timeout": 60}, workers=1)
class MLZooService:
    def __init__(self) -> None:
        model = bentoml.models.get(os.environ.get("MLZOO_MODEL_TAG") or self._bento_model_tag())
        self.loaded = load_bundle(Path(model.path))
        self.task = self.loaded.task
        self.metadata_dict = {
            "task": self.task.name,
            "request_fields": {f: REQUEST_FIELDS[f] for f in self.task.request_fields},
            "output_media": self.task.output_media,
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
    async def predict(  # noqa: PLR0913 (one optional field per request kind; each task takes some)
        self,
        image: Path = None,  # BentoML reads a bare Path as a file field; Optional breaks that
        image2: Path = None,
        audio: Path = None,
        text: str = None,
        texts: list = None,
        array: list = None,
        options: dict = None,
    ) -> dict[str, Any]:
        """Answer one request; ``GET /metadata`` names the fields this task takes.

        Files go multipart (``image``, ``image2``, ``audio``); the rest as JSON. Media
        answers (images, audio) come base64-encoded under ``media_base64``; ``POST /render``
        returns the media itself.
        """
        given = {"image": image, "image2": image2, "audio": audio, "text": text, "texts": texts}
        given |= {"array": array, "options": options}
        request = {k: (v.read_bytes() if isinstance(v, Path) else v) for k, v in given.items() if v is not None}
        answer = await self.answer(request)
        media = {f"{k}_base64": base64.b64encode(v).decode() for k, v in answer.items() if isinstance(v, bytes)}
        return {k: v for k, v in answer.items() if not isinstance(v, bytes)} | media

    async def answer(self, request: Request) -> dict[str, Any]:
        """check -> parse -> (batched) forward -> postprocess -> combine; 4xx on bad input."""
        try:
            self.task.check_request(request)
            items = self.task.parse_request(self.loaded, request)
        except InvalidInput as exc:
            raise _reject(exc) from None
        if self.task.batchable:
            outputs = await self._batched_forward(np.stack(items))
        else:
            outputs = await asyncio.to_thread(self.task.forward, self.loaded, self.task.collate(items))
        rows = [self.task.postprocess(self.loaded, out) for out in outputs]
        return self.task.combine(request, rows)

    async def _batched_forward(self, batch: np.ndarray) -> np.ndarray:
        """Call the batchable ``forward`` API (so BentoML merges concurrent requests).

        BentoML 1.4.40 recycles the client behind this internal call every 100 calls,
        closing it under calls still in flight (aiohttp "Cannot write to closing
        transport"); ``forward`` is a pure function, so those calls are simply retried.
        """
        for attempt in range(FORWARD_ATTEMPTS):
            try:
                return np.asarray(await self.to_async.forward(batch))
            except aiohttp.ClientError:
                if attempt == FORWARD_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")
