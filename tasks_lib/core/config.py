"""Typed, strict configuration: one frozen dataclass per task, unknown keys fail loudly.

Precedence, lowest first: dataclass defaults < the profile (code) < the task's
``params.yaml`` section < explicit overrides (CLI ``--set key=value``).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, TypeVar

C = TypeVar("C", bound="BaseConfig")


@dataclass(frozen=True)
class BaseConfig:
    """Base of every config dataclass: strict construction from plain dicts."""

    @classmethod
    def from_dict(cls: type[C], values: dict[str, Any] | None = None) -> C:
        values = dict(values or {})
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ValueError(f"{cls.__name__} got unknown key(s) {unknown}; known keys: {sorted(fields)}")
        hints = typing.get_type_hints(cls)
        return cls(**{k: _coerce(hints[k], v, k) for k, v in values.items()})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: C, **changes: Any) -> C:
        return self.from_dict({**self.to_dict(), **changes})


def _coerce(hint: Any, value: Any, key: str) -> Any:
    """Accept YAML/CLI scalars for int/float/bool/str fields; reject the rest clearly."""
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(hint) if a is not type(None)]
        return _coerce(inner[0], value, key) if len(inner) == 1 else value
    if hint is bool:
        if isinstance(value, str):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError(f"{key}: expected a boolean, got {value!r}")
        return bool(value)
    if hint in (int, float):
        try:
            out = hint(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key}: expected {hint.__name__}, got {value!r}") from None
        if hint is int and isinstance(value, float) and value != out:
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return out
    if hint is str:
        return str(value)
    return value


@dataclass(frozen=True)
class TaskConfig(BaseConfig):
    """Training configuration shared by every task; tasks subclass and add fields."""

    epochs: int = 1
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"  # "adamw" or "sgd" (momentum 0.9, nesterov)
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping
    max_steps_per_epoch: int = 0  # 0 = whole epoch; the smoke profile caps it
    compile: bool = False  # torch.compile on CUDA only; pays off on long GPU runs
    seed: int = 0


@dataclass(frozen=True)
class DataConfig(BaseConfig):
    """What ``prepare`` builds. Everything here changes the data version."""

    source: str = ""  # empty = the task's default source
    path: str = ""  # local folder or URL for sources that read one
    split_seed: int = 0  # salt of the content-hash split (data.hash_split); also seeds max_samples picks
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    max_samples: int = 0  # 0 = all; the smoke profile shrinks the data
