"""One task's HTTP API as an ASGI app: ``POST /predict``, ``POST /render``, ``GET /metadata``.

The Bento (``serving/service.py``) mounts it at ``/``, or at ``/TASK`` for ``mlzoo serve all``;
it is plain ASGI, so it also runs alone under any ASGI server. What every request goes through,
in order:

1. admission: at most ``max_in_flight`` requests are read and worked on at once; up to
   ``max_queued`` more wait (at most ``queue_timeout_s``) with their bodies unread, costing
   nothing; past that, 503 with ``Retry-After`` at once (no pile-up);
2. the body, capped: a ``Content-Length`` over ``max_body_bytes`` is 413 at once, and a body
   that streams past it is cut off with 413 (never buffered beyond the cap);
3. off the event loop (a worker thread): JSON or multipart decoding (NaN/Infinity are not
   JSON), validation against the task's pydantic request model (``tasks_lib.core.schema``),
   the task's ``check_request`` and ``parse_request``;
4. the model: batchable tasks through the in-process :class:`~serving.batching.MicroBatcher`,
   the others one request at a time, both on one model thread, which also runs ``postprocess``
   and ``combine`` right after (one thread hop there and back).

The whole request is bounded by ``timeout_s`` (503 with ``Retry-After``; a request still
waiting for the model is dropped from its queue).

Every error, on every route, has one shape (``ERROR_SCHEMA``)::

    {"error": {"status": 422, "field": "image" | null, "message": "...", "fields": ["image", "array"]}}

``field`` is the request field at fault when there is one; ``fields`` lists the fields the
task takes (empty outside a task's routes). :class:`ErrorShape` rewrites the error answers of
BentoML's own routes (404, 405, 503 of ``/readyz``...) into it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request

from serving.batching import MicroBatcher
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.schema import answer_model, describe_errors, request_model
from tasks_lib.core.task import FILE_FIELDS, REQUEST_FIELDS, LoadedModel, Task

log = logging.getLogger("mlzoo.serving")
ERROR_HEADER = "x-mlzoo-error"  # set on answers already in the error shape (ErrorShape passes them through)
JSON_FIELDS = ("texts", "array", "options")  # multipart values of these are JSON text


@dataclass(frozen=True)
class Limits:
    """What one request may cost; every field is a service argument (``--arg max_in_flight=8``)."""

    max_body_bytes: int = 16 * 1024 * 1024  # 413 past it (each file field has its own, smaller limit)
    max_in_flight: int = 64  # requests being read or worked on at once
    max_queued: int = 256  # requests waiting (body unread, so costing nothing) for one of those slots; past it 503
    queue_timeout_s: float = 5.0  # longest wait for a slot; past it 503 + Retry-After
    timeout_s: float = 30.0  # a request's whole life; past it 503 + Retry-After, its queued work dropped
    max_batch_size: int = 64  # items per forward call
    max_wait_ms: float = 0.0  # extra wait to fill a batch (0: greedy, no added latency)
    retry_after_s: int = 1


class ApiError(Exception):
    """An answer in the error shape."""

    def __init__(self, status: int, message: str, field: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.field, self.headers = status, message, field, headers or {}


def error_body(status: int, message: str, field: str | None = None, fields: tuple[str, ...] = ()) -> dict:
    return {"error": {"status": status, "field": field, "message": message, "fields": list(fields)}}


def error_response(
    status: int, message: str, field: str | None = None, fields: tuple[str, ...] = (), headers: dict | None = None
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, field, fields), status_code=status, headers={ERROR_HEADER: "1", **(headers or {})}
    )


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["status", "field", "message", "fields"],
            "properties": {
                "status": {"type": "integer", "description": "the HTTP status"},
                "field": {"type": "string", "nullable": True, "description": "the request field at fault"},
                "message": {"type": "string", "description": "what was wrong, in plain words"},
                "fields": {"type": "array", "items": {"type": "string"}, "description": "the fields the task takes"},
            },
        }
    },
}


class TaskRuntime:
    """A loaded model and what serving it needs: limits, the model thread, the batcher, counters."""

    def __init__(self, loaded: LoadedModel, metadata: dict[str, Any], limits: Limits, batching: bool = True):
        self.loaded, self.task, self.metadata, self.limits = loaded, loaded.task, metadata, limits
        self.fields = tuple(self.task.request_fields)
        self.model = request_model(type(self.task))
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"model-{self.task.name}")
        self.batcher = None
        if batching and self.task.batchable:
            self.batcher = MicroBatcher(
                lambda batch: self.task.forward(self.loaded, batch),
                self.executor,
                limits.max_batch_size,
                limits.max_wait_ms / 1000,
            )
        self.in_flight = 0
        self.queued = 0
        self.slots = asyncio.Semaphore(limits.max_in_flight)

    async def admit(self) -> None:
        """Take a work slot, waiting in the bounded queue if need be, or ApiError 503."""
        busy = {"Retry-After": str(self.limits.retry_after_s)}
        if self.slots.locked():
            if self.queued >= self.limits.max_queued:
                raise ApiError(
                    503,
                    f"busy: {self.in_flight} requests in flight and {self.queued} waiting "
                    f"(limits {self.limits.max_in_flight} and {self.limits.max_queued})",
                    headers=busy,
                )
            self.queued += 1
            try:
                async with asyncio.timeout(self.limits.queue_timeout_s):
                    await self.slots.acquire()
            except TimeoutError:
                raise ApiError(
                    503, f"busy: no slot freed within {self.limits.queue_timeout_s:g} s", headers=busy
                ) from None
            finally:
                self.queued -= 1
        else:
            await self.slots.acquire()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self.slots.release()

    # -- step 3: bytes -> model-ready items (in a worker thread) ---------------------------
    def decode(self, body: bytes, content_type: str) -> dict[str, Any]:
        """The request's fields from a JSON object or a multipart form."""
        kind = content_type.split(";")[0].strip().lower()
        if kind == "multipart/form-data":
            return self._multipart(body, content_type)
        if kind == "application/x-www-form-urlencoded":
            return self._urlencoded(body)
        if kind not in ("application/json", ""):
            raise ApiError(415, f"unsupported content type '{kind}': send application/json or multipart/form-data")
        if not body:
            raise ApiError(422, f"the request is empty: task '{self.task.name}' takes {', '.join(self.fields)}")
        fields = _json(body, "the request body")
        if not isinstance(fields, dict):
            raise ApiError(422, "the request body must be a JSON object (or a multipart form)")
        for name in FILE_FIELDS:
            if name in fields and name in self.fields:
                raise ApiError(422, f"field '{name}' is a file: send it as a multipart/form-data file part", name)
        return fields

    def _urlencoded(self, body: bytes) -> dict[str, Any]:
        """A plain HTML form (``curl -d``): text values only, so no file field can be filled."""
        from urllib.parse import parse_qsl

        try:
            pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
        except (UnicodeDecodeError, ValueError) as exc:
            raise ApiError(400, f"the form could not be parsed: {exc}") from None
        fields: dict[str, Any] = {}
        for name, value in pairs:
            if name in fields:
                raise ApiError(422, f"field '{name}' is given more than once", name)
            fields[name] = _json(value, f"field '{name}'", name) if name in JSON_FIELDS else value
        if not fields:
            raise ApiError(422, f"the request is empty: task '{self.task.name}' takes {', '.join(self.fields)}")
        return fields

    def _multipart(self, body: bytes, content_type: str) -> dict[str, Any]:
        from python_multipart.exceptions import FormParserError
        from python_multipart.multipart import create_form_parser

        fields: dict[str, Any] = {}

        def put(name: str, value: Any) -> None:
            if name in fields:
                raise ApiError(422, f"field '{name}' is given more than once", name)
            fields[name] = value

        def on_field(f) -> None:
            name = (f.field_name or b"").decode("utf-8", "replace")
            raw = f.value or b""
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"field '{name}' is not UTF-8 text", name) from None
            put(name, _json(raw, f"field '{name}'", name) if name in JSON_FIELDS else text)

        def on_file(f) -> None:
            f.file_object.seek(0)
            put((f.field_name or b"").decode("utf-8", "replace"), f.file_object.read())

        config = {"MAX_MEMORY_FILE_SIZE": self.limits.max_body_bytes + 1}  # never spill to disk: the body is capped
        try:
            parser = create_form_parser({"Content-Type": content_type.encode()}, on_field, on_file, config)
            parser.write(body)
            parser.finalize()
        except ApiError:
            raise
        except (FormParserError, ValueError, AttributeError) as exc:
            raise ApiError(400, f"the multipart form could not be parsed: {exc}") from None
        if not fields:
            raise ApiError(422, f"the request is empty: task '{self.task.name}' takes {', '.join(self.fields)}")
        return fields

    def prepare(self, body: bytes, content_type: str) -> tuple[dict[str, Any], list[Any]]:
        """decode -> validate (pydantic) -> check_request -> parse_request, or ApiError naming the field."""
        fields = self.decode(body, content_type)
        try:
            typed = self.model.model_validate(fields)
        except ValidationError as exc:
            field, message = describe_errors(exc, self.task.name, self.fields)
            raise ApiError(422, message, field) from None
        request = {k: v for k, v in typed.model_dump(exclude_unset=True).items() if v is not None}
        try:
            self.task.check_request(request)
            items = self.task.parse_request(self.loaded, request)
        except InvalidInput as exc:
            raise ApiError(exc.status, str(exc), exc.field or _only(request)) from None
        except (ValueError, TypeError, OverflowError, RecursionError, IndexError, KeyError, MemoryError) as exc:
            # hostile input the task's checks did not foresee: the client's problem, never a 5xx
            log.warning("unforeseen bad input for %s: %r", self.task.name, exc)
            raise ApiError(422, f"the request could not be used: {type(exc).__name__}: {exc}", _only(request)) from None
        if not items:
            raise ApiError(422, "the request holds nothing to predict", _only(request))
        return request, items

    # -- steps 4-5 ---------------------------------------------------------------------------
    async def run(self, request: dict[str, Any], items: list[Any]) -> dict[str, Any]:
        """forward (batched with other requests when the task allows), then postprocess and combine,
        all on the model thread (one hop there and back)."""

        def finish(outputs: list[Any]) -> dict[str, Any]:
            return self.task.combine(request, [self.task.postprocess(self.loaded, out) for out in outputs])

        if self.batcher is not None:
            return await self.batcher.submit(items, finish)

        def alone() -> dict[str, Any]:
            return finish(list(self.task.forward(self.loaded, self.task.collate(items))))

        return await asyncio.get_running_loop().run_in_executor(self.executor, alone)

    async def answer(self, body: bytes, content_type: str) -> dict[str, Any]:
        """One request's answer (media as bytes), or ApiError."""
        request, items = await asyncio.to_thread(self.prepare, body, content_type)
        try:
            return await self.run(request, items)
        except InvalidInput as exc:  # a task may find a problem only while running (e.g. a clip too long to track)
            raise ApiError(exc.status, str(exc), exc.field or _only(request)) from None


def _only(request: dict[str, Any]) -> str | None:
    """The request's one field, when it has exactly one (the field an error is about)."""
    return next(iter(request)) if len(request) == 1 else None


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not valid JSON")


def _json(raw: bytes | str, what: str, field: str | None = None) -> Any:
    try:
        return json.loads(raw, parse_constant=_reject_constant)
    except RecursionError:
        raise ApiError(400, f"{what} is nested too deeply", field) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {exc}", field) from None


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, or 413 as soon as it passes ``limit`` bytes (declared or streamed)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            declared_n = int(declared)
        except ValueError:
            raise ApiError(400, "Content-Length is not a number") from None
        if declared_n > limit:
            raise ApiError(413, f"the request is too large: {declared_n} bytes, the limit is {limit}")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise ApiError(413, f"the request is too large: over {limit} bytes, the limit is {limit}")
    return bytes(buf)


def _inline(schema: dict) -> dict:
    """A JSON schema with its ``$defs`` references inlined (OpenAPI operations hold no $defs)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref and ref.startswith("#/$defs/"):
                return walk(dict(defs[ref.split("/")[-1]]))
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def openapi_for(task_cls: type[Task]) -> tuple[dict, dict]:
    """(``/predict`` operation extras, ``/render`` operation extras) from the task's pydantic models."""
    schema = _inline(request_model(task_cls).model_json_schema())
    props = schema.get("properties", {})
    json_props = {k: v for k, v in props.items() if k not in FILE_FIELDS}
    form_props = {
        k: (
            {"type": "string", "format": "binary", "description": REQUEST_FIELDS[k]}
            if k in FILE_FIELDS
            else {**v, "description": f"{REQUEST_FIELDS[k]} (as form text{', JSON' if k in JSON_FIELDS else ''})"}
            if k in JSON_FIELDS
            else v
        )
        for k, v in props.items()
    }
    content: dict[str, Any] = {}
    if json_props:
        content["application/json"] = {"schema": {**schema, "properties": json_props, "additionalProperties": False}}
    if any(k in FILE_FIELDS for k in props) or json_props:
        content["multipart/form-data"] = {"schema": {**schema, "properties": form_props, "additionalProperties": False}}
    errors = {
        str(code): {"description": what, "content": {"application/json": {"schema": ERROR_SCHEMA}}}
        for code, what in (
            (400, "undecodable input"),
            (413, "too large"),
            (415, "unsupported media type"),
            (422, "a field missing, unknown or unusable (the message lists the task's fields)"),
            (503, "busy or timed out: retry after Retry-After seconds"),
        )
    }
    answer = answer_model(task_cls)
    answer_schema = _inline(answer.model_json_schema()) if answer is not None else {"type": "object"}
    if "texts" in props:  # a list request is answered {"predictions": [answer, ...]}
        many = {"type": "object", "properties": {"predictions": {"type": "array", "items": answer_schema}}}
        answer_schema = {"anyOf": [answer_schema, many]}
    predict = {
        "requestBody": {"required": True, "content": content},
        "responses": {"200": {"description": "the answer", "content": {"application/json": {"schema": answer_schema}}}}
        | errors,
    }
    media = task_cls.output_media
    render = {
        "requestBody": {"required": True, "content": content},
        "responses": (
            {
                "200": {
                    "description": "the media itself",
                    "content": {media: {"schema": {"type": "string", "format": "binary"}}},
                }
            }
            if media
            else {}
        )
        | errors
        | {
            "404": {
                "description": "the task answers JSON only",
                "content": {"application/json": {"schema": ERROR_SCHEMA}},
            }
        },
    }
    return predict, render


def build_app(
    task_cls: type[Task], runtime: Callable[[], TaskRuntime | None], limits: Limits, title: str | None = None
) -> FastAPI:
    """The FastAPI app serving ``task_cls``; ``runtime()`` gives the loaded model (None: not loaded yet)."""
    fields = tuple(task_cls.request_fields)
    app = FastAPI(
        title=title or f"mlzoo: {task_cls.name}",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # the Bento's /docs shows these routes (BentoML merges a mounted FastAPI app's spec)
    )
    predict_doc, render_doc = openapi_for(task_cls)

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.field, fields, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), None, fields)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, str(exc), None, fields)

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error in %s", task_cls.name)
        return error_response(500, f"internal error: {type(exc).__name__}", None, fields)

    async def handle(request: Request) -> dict[str, Any]:
        rt = runtime()
        if rt is None:
            raise ApiError(503, "the model is still loading", headers={"Retry-After": str(limits.retry_after_s)})
        busy = {"Retry-After": str(limits.retry_after_s)}
        await rt.admit()
        try:
            async with asyncio.timeout(limits.timeout_s):
                body = await read_body(request, limits.max_body_bytes)
                return await rt.answer(body, request.headers.get("content-type", ""))
        except TimeoutError:
            raise ApiError(503, f"timed out after {limits.timeout_s:g} s", headers=busy) from None
        finally:
            rt.release()

    @app.post(
        "/predict", openapi_extra=predict_doc, operation_id=f"{task_cls.name}__predict", summary=_summary(task_cls)
    )
    async def predict(request: Request) -> Response:
        """One request -> the task's answer as JSON; media (images, audio) base64 under ``media_base64``."""
        answer = await handle(request)
        out = {k: v for k, v in answer.items() if not isinstance(v, bytes)}
        out |= {f"{k}_base64": base64.b64encode(v).decode() for k, v in answer.items() if isinstance(v, bytes)}
        return JSONResponse(out, media_type="application/json")

    @app.post("/render", openapi_extra=render_doc, operation_id=f"{task_cls.name}__render")
    async def render(request: Request) -> Response:
        """Like ``/predict``, but answers with the media itself (PNG, WAV) for tasks that output media."""
        if task_cls.output_media is None:
            raise ApiError(404, f"task '{task_cls.name}' answers JSON only: use /predict")
        answer = await handle(request)
        return Response(content=answer["media"], media_type=task_cls.output_media)

    @app.get("/metadata", operation_id=f"{task_cls.name}__metadata")
    async def metadata() -> dict[str, Any]:
        """Provenance of the served model: task, MLflow model and version, run, data, code, metrics."""
        rt = runtime()
        if rt is None:
            raise ApiError(503, "the model is still loading")
        stats = {"batches": rt.batcher.batches, "batched_items": rt.batcher.batched_items} if rt.batcher else {}
        return {**rt.metadata, "limits": limits.__dict__, "batching": stats}

    return app


def _summary(task_cls: type[Task]) -> str:
    return f"{task_cls.name}: " + ", ".join(task_cls.request_fields) + " -> answer"


class ErrorShape:
    """ASGI middleware: any 4xx/5xx not already in the error shape is rewritten into it.

    Error bodies are small; only they are buffered (2xx answers stream through untouched).
    """

    def __init__(self, app, max_error_bytes: int = 64 * 1024) -> None:
        self.app, self.max_error_bytes = app, max_error_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        state: dict[str, Any] = {"rewrite": False, "start": None, "body": b""}

        async def wrapped(message) -> None:
            if message["type"] == "http.response.start":
                headers = {k.decode().lower(): v.decode() for k, v in message.get("headers", [])}
                if message["status"] >= 400 and ERROR_HEADER not in headers:
                    state.update(rewrite=True, start=message)
                    return
                return await send(message)
            if message["type"] == "http.response.body" and state["rewrite"]:
                if len(state["body"]) < self.max_error_bytes:
                    state["body"] += message.get("body", b"")
                if message.get("more_body"):
                    return
                start = state["start"]
                status = start["status"]
                body = json.dumps(error_body(status, _error_text(state["body"], status))).encode()
                keep = [
                    (k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-length", b"content-type")
                ]
                await send(
                    {
                        **start,
                        "headers": [
                            *keep,
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                            (ERROR_HEADER.encode(), b"1"),
                        ],
                    }
                )
                return await send({"type": "http.response.body", "body": body})
            return await send(message)

        await self.app(scope, receive, wrapped)


def _error_text(body: bytes, status: int) -> str:
    """The message of a foreign error body (BentoML's ``{"error": ...}``, FastAPI's ``{"detail": ...}``, text)."""
    from http import HTTPStatus

    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "detail", "message"):
            if isinstance(data.get(key), str):
                return data[key]
        text = json.dumps(data)[:500]
    try:
        default = HTTPStatus(status).phrase
    except ValueError:
        default = "error"
    return text[:500] or default
