"""Typed requests and answers: the pydantic models a task's HTTP API is documented and checked by.

A task's request model is derived from its ``request_fields`` (:data:`FIELD_TYPES`), with its
``options_model`` for the ``options`` field when it declares one; its answer model is its
``answer_model`` (one per task, declared next to ``postprocess``). Serving validates every
request against the request model before the task's ``parse_request`` runs, and turns the
validation errors into messages naming the field (:func:`describe_errors`).

File fields (``image``, ``image2``, ``audio``) are strict bytes: only a multipart file part
fills them, so a string where a file belongs is a 422, never a decode attempt.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, Strict, ValidationError, create_model

if TYPE_CHECKING:
    from tasks_lib.core.task import Task

StrictBytes = Annotated[bytes, Strict()]
StrictStr = Annotated[str, Strict()]
StrictInt = Annotated[int, Strict()]

FIELD_TYPES: dict[str, Any] = {
    "image": StrictBytes,
    "image2": StrictBytes,
    "audio": StrictBytes,
    "text": StrictStr,
    "texts": Annotated[list[StrictStr], Strict()],
    "array": Annotated[list[Any], Strict()],  # a nested list of numbers; its shape is the task's to check
    "options": Annotated[dict[str, Any], Strict()],
}


class Options(BaseModel):
    """Base of a task's ``options_model``: unknown options are refused, numbers must be finite."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class Answer(BaseModel):
    """Base of a task's ``answer_model`` (documentation of what ``/predict`` returns)."""

    model_config = ConfigDict(extra="forbid")


def _camel(name: str) -> str:
    return "".join(part.title() for part in name.split("_"))


@cache
def request_model(task_cls: type[Task]) -> type[BaseModel]:
    """The pydantic model of one ``/predict`` request of ``task_cls`` (fields from ``request_fields``)."""
    from tasks_lib.core.task import REQUEST_FIELDS

    fields: dict[str, Any] = {}
    for name in task_cls.request_fields:
        typ = FIELD_TYPES[name]
        if name == "options" and task_cls.options_model is not None:
            typ = task_cls.options_model
        fields[name] = (typ | None, Field(None, description=REQUEST_FIELDS[name]))
    config = ConfigDict(extra="forbid", allow_inf_nan=False, title=f"{_camel(task_cls.name)}Request")
    return create_model(f"{_camel(task_cls.name)}Request", __config__=config, **fields)


def answer_model(task_cls: type[Task]) -> type[BaseModel] | None:
    """The task's declared answer model, or None when it declares none."""
    return task_cls.answer_model


_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bytes_type": "a file (a multipart/form-data file part)",
    "list_type": "a JSON array",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "bool_type": "true or false",
    "missing": "given",
}


def describe_errors(exc: ValidationError, task_name: str, accepted: tuple[str, ...]) -> tuple[str | None, str]:
    """(field, message) for the first problem of a failed request validation, in plain words."""
    err = exc.errors(include_url=False)[0]
    loc = [str(p) for p in err["loc"]]
    field = loc[0] if loc else None
    where = f"option {'.'.join(loc[1:])}" if loc[:1] == ["options"] and len(loc) > 1 else f"field '{'.'.join(loc)}'"
    if err["type"] == "extra_forbidden":
        if loc[:1] == ["options"]:
            return field, f"unknown option '{'.'.join(loc[1:])}'"
        return field, f"field '{field}' is not used: task '{task_name}' takes {', '.join(accepted)}"
    got = repr(err.get("input"))
    got = got if len(got) <= 40 else got[:37] + "..."
    expected = _EXPECTED.get(err["type"])
    if expected:
        return field, f"{where} must be {expected}, got {got}"
    msg = err["msg"]
    if msg.startswith("Input should be"):
        return field, f"{where} must be{msg[len('Input should be') :]}, got {got}"
    return field, f"{where}: {msg}"


# -- answers shared by several tasks ---------------------------------------------------------
MEDIA = Field(description="the media (PNG or WAV) base64-encoded; POST /render returns it as is")


class ClassAnswer(Answer):
    """A classifier's answer: the likeliest class and every class's probability."""

    label: str
    probabilities: dict[str, float]


class PhotoAnswer(Answer):
    """A restored photo (PNG) and its size."""

    media_base64: str = MEDIA
    width: int
    height: int


class AudioAnswer(Answer):
    """Audio out (16-bit WAV)."""

    media_base64: str = MEDIA
    sample_rate: int
    seconds: float
