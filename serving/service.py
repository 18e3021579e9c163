"""The BentoML service serving one task's champion, or several (``mlzoo serve all``).

Which model is served is a service argument, the BentoML way: ``bentoml serve
serving.service:MLZooService --arg model=TAG`` (or ``--arg-file`` with ``models: [TAG, ...]``),
and a Bento built by ``flows/packaging.py`` carries ``model=TAG`` in its ``bento.yaml``
(``bentoml.bentos.build(args=...)``), so ``bentoml serve BENTO`` serves its own model. Each
model is a ``bentoml.models.BentoModel`` attribute of the service, so the Bento declares (and
a container ships) exactly those models.

The model's bundle names its task; ``serving/app.py`` builds that task's typed API from the
task's pydantic request and answer models and mounts it: at ``/`` for one model, under
``/TASK`` for several. There is no ``@bentoml.api``: every route is the task's own app (typed,
validated, size-capped, batched in process), so no public route skips validation and no
request pays an internal HTTP hop. ``GET /docs`` shows exactly the served task's fields.
"""

from __future__ import annotations

import json
from pathlib import Path

import bentoml
from pydantic import BaseModel, ConfigDict, Field

from serving.app import ErrorShape, Limits, TaskRuntime, build_app
from tasks_lib.core.bundle import CONFIG, load_bundle
from tasks_lib.core.registry import get_task
from tasks_lib.core.task import REQUEST_FIELDS


class ServeArgs(BaseModel):
    """The service's arguments (``--arg KEY=VALUE``); the limits are :class:`serving.app.Limits`."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = Field(None, description="one Bento model tag: its task's API at /")
    models: list[str] = Field(default_factory=list, description="several tags: each task's API under /TASK")
    workers: int = Field(1, ge=1, description="server processes (each loads the models)")
    access_log: bool = Field(False, description="BentoML's per-request access log")
    # one intra-op thread: the model thread shares the CPUs with request parsing, and two torch
    # threads on two busy CPUs run 20x slower (bench/RESULTS.md, the in-process ceiling table)
    torch_threads: int = Field(1, ge=1, description="torch intra-op threads of each worker")
    max_body_bytes: int = Limits.max_body_bytes
    max_in_flight: int = Limits.max_in_flight
    max_queued: int = Limits.max_queued
    queue_timeout_s: float = Limits.queue_timeout_s
    timeout_s: float = Limits.timeout_s
    max_batch_size: int = Limits.max_batch_size
    max_wait_ms: float = Limits.max_wait_ms

    def tags(self) -> list[str]:
        if bool(self.model) == bool(self.models):
            raise bentoml.exceptions.InvalidArgument(
                "serve one model (--arg model=TAG, a Bento model tag, its API at /) or several "
                "(--arg-file with models: [TAG, ...], each under /TASK), not both or neither"
            )
        return [self.model] if self.model else list(self.models)

    def limits(self) -> Limits:
        return Limits(**{k: getattr(self, k) for k in Limits.__dataclass_fields__ if hasattr(self, k)})


ARGS = bentoml.use_arguments(ServeArgs)
LIMITS = ARGS.limits()
MODELS = {tag: bentoml.models.BentoModel(tag) for tag in ARGS.tags()}
SHARED_PREFIX = bool(ARGS.models)  # `models` (mlzoo serve all): each task under /TASK, even a single one


def _task_of(ref: bentoml.models.BentoModel) -> str:
    stored = ref.stored
    if stored is None:
        raise bentoml.exceptions.NotFound(f"model {ref.tag} is not in the Bento model store")
    return json.loads((Path(stored.path) / CONFIG).read_text())["task"]


TASKS = {tag: _task_of(ref) for tag, ref in MODELS.items()}
if len(set(TASKS.values())) < len(TASKS):
    raise bentoml.exceptions.InvalidArgument(f"two models of one task: {TASKS}")
RUNTIMES: dict[str, TaskRuntime] = {}  # task -> loaded model, filled in each worker by the service's __init__
APPS = {
    task: build_app(type(get_task(task)), lambda task=task: RUNTIMES.get(task), LIMITS, title=f"mlzoo: {task}")
    for task in TASKS.values()
}


class MLZooService:
    """Loads each model (``BentoModel`` attributes ``model_0``, ...) into its task's runtime."""

    def __init__(self) -> None:
        import torch

        torch.set_num_threads(ARGS.torch_threads)
        for i in range(len(MODELS)):
            stored = getattr(self, f"model_{i}")  # BentoModel resolves to the stored model
            loaded = load_bundle(Path(stored.path))
            metadata = {
                "task": loaded.task.name,
                "request_fields": {f: REQUEST_FIELDS[f] for f in loaded.task.request_fields},
                "output_media": loaded.task.output_media,
                "bento_model": str(stored.tag),
                **stored.info.labels,
                **stored.info.metadata,
            }
            RUNTIMES[loaded.task.name] = TaskRuntime(loaded, metadata, LIMITS)


for _i, _ref in enumerate(MODELS.values()):
    setattr(MLZooService, f"model_{_i}", _ref)
MLZooService = bentoml.service(
    name="mlzoo",
    # BentoML's own timeout/concurrency sit above ours, so ours (503 + Retry-After, error shape) answer first
    traffic={"timeout": LIMITS.timeout_s + 30},
    workers=ARGS.workers,
    logging={"access": {"enabled": ARGS.access_log}},
)(MLZooService)
for _task, _app in APPS.items():
    MLZooService.mount_asgi_app(_app, path=f"/{_task}" if SHARED_PREFIX else "/", name=_task)
MLZooService.add_asgi_middleware(ErrorShape)
