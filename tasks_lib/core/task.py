"""The task interface every task module implements: exactly what flows and serving call.

A task owns everything specific to one deep-learning problem: where its data comes from,
how it is laid out on disk, what must hold of it, the model, how it trains (a
:class:`~tasks_lib.core.engine.Recipe` the shared engine runs), metrics, a non-learned
baseline, review examples and the predict adapter used by serving. Flows and serving only
ever talk to this interface.

Rules every task keeps (the contract tests check them over the whole registry):

- ``info`` (``Prepared.info``, the ``info`` of what ``load`` returns, ``LoadedModel.info``)
  is JSON-serialisable: plain dicts, lists, strings, numbers, booleans, ``None``. It is
  written to ``info.json`` beside the data and to the bundle's ``config.json``, and
  ``build_model(cfg, info)`` must rebuild the same architecture from it alone.
- ``profiles`` holds ``"smoke"`` (tests: seconds on a CPU, tiny data), ``"quick"`` (the CPU
  demo: about a minute of training, the figures in the README) and ``"full"`` (a GPU worker);
  each is ``{"data": {...}, "train": {...}}`` of config overrides, every one valid.
- Training goes through the engine only: a task writes :meth:`Task.training` (its batches and
  a step returning losses) and never its own loop; :meth:`Task.fit` is not overridden. The
  run is deterministic on CPU from ``cfg.seed`` and resumable bit-exactly from its checkpoint.
- Data-parallel (``--nproc N``) comes free when the step computes its losses through the
  model's forward on a batch the engine can split along its first dimension; otherwise the
  recipe gives ``shard`` / ``parallel_module``, or the task sets ``single_process_reason``.
- Nothing happens at import time: no folder created, no network, no heavy optional import.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from torch import nn

from tasks_lib.core import engine
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.engine import LogFn, Recipe, TrainResult
from tasks_lib.core.errors import InvalidInput

if TYPE_CHECKING:  # pandas costs ~2 s to import, and serving never needs it
    import pandas as pd

__all__ = ["LogFn", "Recipe", "TrainResult"]  # re-exported: what a task module needs to train

Request = dict[str, Any]
"""What one HTTP request to ``/predict`` carries: field name -> value.

File fields arrive as ``bytes``; the others as the JSON values below. A task names the
fields it accepts in ``Task.request_fields``; serving is the same for every task.
"""

REQUEST_FIELDS: dict[str, str] = {
    "image": "file: PNG or JPEG",
    "image2": "file: PNG or JPEG (a second image, e.g. for pair tasks)",
    "audio": "file: WAV",
    "text": "string",
    "texts": "list of strings (answered as {'predictions': [...]})",
    "array": "JSON nested list (e.g. image pixels 0-255, an observation)",
    "options": "JSON object of task options (e.g. {'n': 4, 'seed': 0})",
}
FILE_FIELDS = ("image", "image2", "audio")


@dataclass(frozen=True)
class DataSource:
    """One place a task's data can come from."""

    name: str
    description: str
    origin: str  # "package", "mirror", "url", "folder" or "generator"
    needs_path: bool = False  # True when the user must give --path (a folder or URL)


@dataclass(frozen=True)
class Expectation:
    """One data expectation, by its Great Expectations name, without importing GX.

    ``kind`` is the snake_case name of a GX 1.x expectation class (for example
    ``expect_column_values_to_be_between``); ``kwargs`` are its arguments; ``where``
    restricts it to rows whose columns equal the given values; ``why`` is shown in the
    validation report next to a failure.
    """

    kind: str
    kwargs: dict[str, Any]
    why: str = ""
    where: dict[str, Any] = field(default_factory=dict)  # only rows where column == value


@dataclass
class LoadedModel:
    """A trained model together with everything needed to use it (what serving holds)."""

    task: Task
    cfg: TaskConfig
    info: dict[str, Any]  # JSON-serialisable dataset facts the model depends on (classes, input shape, ...)
    module: nn.Module


@dataclass
class Prepared:
    """What ``prepare`` returns: the per-sample manifest plus dataset-level facts."""

    manifest: pd.DataFrame
    info: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable; written to info.json


class Task(ABC):
    """Base class of every task. Subclass, fill the class variables, register."""

    name: ClassVar[str]
    seed_sections: ClassVar[tuple[int, ...]]
    metric: ClassVar[str]  # primary metric used for promotion
    greater_is_better: ClassVar[bool] = True
    request_fields: ClassVar[tuple[str, ...]]  # which REQUEST_FIELDS its endpoint accepts
    output_media: ClassVar[str | None] = None  # "image/png" or "audio/wav": answers carry bytes under "media"
    batchable: ClassVar[bool] = True  # parsed items share one shape, so requests can be stacked into a batch
    # pydantic models (tasks_lib.core.schema): the ``options`` field's keys, and one answer of ``/predict``;
    # the request model itself is derived from ``request_fields`` (schema.request_model)
    options_model: ClassVar[type | None] = None
    answer_model: ClassVar[type | None] = None
    config_cls: ClassVar[type[TaskConfig]] = TaskConfig
    data_config_cls: ClassVar[type[DataConfig]] = DataConfig
    default_source: ClassVar[str]
    # why ``--nproc N`` (data-parallel training) is refused, "" when the engine can split this
    # task's batches between processes (see tasks_lib.core.distributed)
    single_process_reason: ClassVar[str] = ""
    # profile -> {"data": {...}, "train": {...}}: "smoke" (tests, seconds), "quick" (CPU demo,
    # about a minute), "full" (GPU worker); all three present, each a valid config
    profiles: ClassVar[dict[str, dict[str, dict[str, Any]]]]

    # -- data ---------------------------------------------------------------
    @abstractmethod
    def sources(self) -> dict[str, DataSource]:
        """The data sources this task can prepare from, by name."""

    @abstractmethod
    def prepare(self, dcfg: DataConfig, out: Path) -> Prepared:
        """Read or generate the data described by ``dcfg`` and write it under ``out``."""

    @abstractmethod
    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        """Expectations on the manifest, given the dataset-level facts of ``prepare``."""

    @abstractmethod
    def load(self, data_dir: Path) -> Any:
        """Load a prepared data folder into what ``training``/``evaluate`` consume.

        The result has an ``info`` attribute: the folder's ``info.json`` (JSON-serialisable),
        which the flow passes to ``build_model`` and stores in the bundle.
        """

    # -- model --------------------------------------------------------------
    @abstractmethod
    def build_model(self, cfg: TaskConfig, info: dict[str, Any]) -> nn.Module:
        """A freshly initialised model for data described by ``info`` (the caller seeds first).

        Everything the trained model needs at serving time must be in its ``state_dict``
        (parameters and persistent buffers): the bundle stores only that, ``cfg`` and ``info``.
        """

    @abstractmethod
    def training(self, model: nn.Module, data: Any, cfg: TaskConfig) -> Recipe:
        """How ``model`` trains on ``data``'s train split: batches, a step returning losses, validation.

        Called once per ``fit``, before the engine seeds (``cfg.seed``) and moves the model to
        its device: anything random belongs in the recipe's ``batches``/``step``, drawing from
        the generators the engine checkpoints. May prepare the model first (load upstream
        weights, install a judge). See :class:`~tasks_lib.core.engine.Recipe`.
        """

    def fit(
        self,
        model: nn.Module,
        data: Any,
        cfg: TaskConfig,
        log: LogFn,
        checkpoint: Path | None = None,
    ) -> TrainResult:
        """Train ``model`` in place on ``data``'s train split through the engine (tasks do not override this).

        ``log(metrics, epoch)`` is called once per epoch (``train_loss``, ``lr``, ``val_*``...).
        ``checkpoint``: written after every epoch and resumed from when it exists (the flow's
        retried train step continues where it stopped, bit-exactly on CPU). Returns epochs,
        optimiser steps, pure training seconds and samples/s; ``model`` ends in eval mode.
        """
        return engine.train(model, self.training(model, data, cfg), cfg, log, checkpoint=checkpoint)

    @abstractmethod
    def evaluate(self, model: nn.Module, data: Any, split: str = "test") -> dict[str, float]:
        """Metrics on one split (floats; JSON-serialisable values only); must contain ``self.metric``."""

    @abstractmethod
    def baseline(self, data: Any, split: str = "test") -> dict[str, float]:
        """The non-learned reference on the same split, with the same metric keys (at least ``self.metric``)."""

    def examples(self, model: nn.Module, data: Any) -> dict[str, Any]:
        """Review artifacts for MLflow: file name -> matplotlib figure, text, or bytes."""
        return {}

    # -- serving ------------------------------------------------------------
    @abstractmethod
    def request_examples(self, data: Any, n: int) -> list[Request]:
        """``n`` test-split samples as the HTTP requests that carry them (e.g. ``{"image": png_bytes}``)."""

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        """Requests this task must refuse: (request, HTTP status, text the error message contains)."""
        return []

    @abstractmethod
    def parse_request(self, loaded: LoadedModel, request: Request) -> list[Any]:
        """Decode and check one request into model-ready items (usually one), or raise InvalidInput."""

    @abstractmethod
    def forward(self, loaded: LoadedModel, batch: Any) -> Any:
        """Run the model on a batch: parsed items stacked on axis 0 if ``batchable``, else a list of them."""

    @abstractmethod
    def postprocess(self, loaded: LoadedModel, output: Any) -> dict[str, Any]:
        """Turn one row of ``forward``'s output into the answer (JSON values; media as bytes under "media")."""

    def collate(self, items: list[Any]) -> Any:
        """What ``forward`` receives for ``items``."""
        return np.stack(items) if self.batchable else items

    @staticmethod
    def combine(request: Request, answers: list[dict[str, Any]]) -> dict[str, Any]:
        """One request's answer: a list request (``texts``) gets all rows, any other its single row."""
        return {"predictions": answers} if "texts" in request else answers[0]

    def check_request(self, request: Request) -> None:
        """Refuse requests that carry no field or fields this task does not take."""
        given = {k for k, v in request.items() if v is not None}
        extra = sorted(given - set(self.request_fields))
        if not given or extra:
            what = f"fields {extra} are not used" if extra else "the request is empty"
            raise InvalidInput(
                f"{what}: task '{self.name}' takes {', '.join(self.request_fields)}",
                status=422,
            )

    def predict(self, loaded: LoadedModel, requests: list[Request]) -> list[dict[str, Any]]:
        """check -> parse -> forward -> postprocess -> combine for each request, in process."""
        answers = []
        for request in requests:
            self.check_request(request)
            items = self.parse_request(loaded, request)
            rows = [self.postprocess(loaded, out) for out in self.forward(loaded, self.collate(items))]
            answers.append(self.combine(request, rows))
        return answers

    # -- config -------------------------------------------------------------
    def configs(
        self,
        profile: str,
        params: dict[str, Any] | None = None,
        data_overrides: dict[str, Any] | None = None,
        train_overrides: dict[str, Any] | None = None,
    ) -> tuple[DataConfig, TaskConfig]:
        """Build (data, train) configs: defaults < profile < params.yaml < overrides."""
        if profile not in self.profiles:
            raise ValueError(
                f"Unknown profile '{profile}' for task '{self.name}'; choose one of {sorted(self.profiles)}"
            )
        params = params or {}
        unknown = sorted(set(params) - {"data", "train"})
        if unknown:
            raise ValueError(f"params.yaml section '{self.name}' has unknown key(s) {unknown}")
        prof = self.profiles[profile]
        dcfg = self.data_config_cls.from_dict(
            {**prof.get("data", {}), **(params.get("data") or {}), **(data_overrides or {})}
        )
        if not dcfg.source:
            dcfg = dcfg.replace(source=self.default_source)
        if dcfg.source not in self.sources():
            raise ValueError(
                f"Unknown source '{dcfg.source}' for task '{self.name}'; choose one of {sorted(self.sources())}"
            )
        tcfg = self.config_cls.from_dict(
            {**prof.get("train", {}), **(params.get("train") or {}), **(train_overrides or {})}
        )
        return dcfg, tcfg
