"""Models of other tasks that a task builds on (a backbone, an evaluator).

A task config field holds a reference: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``
(the platform's own MLflow registry) or a local bundle folder. Task code never talks
to MLflow: before training, the flow resolves every ``models:/`` reference in the
config, pins it to a version (recorded in the run as lineage) and registers the
downloaded bundle here; the task then calls :func:`load`.

Rule for tasks: ``build_model`` never reads a reference (a served bundle must rebuild
without the registry); upstream weights are read in ``fit`` (or ``evaluate``) only.
"""

from __future__ import annotations

from pathlib import Path

from tasks_lib.core.task import LoadedModel

PREFIX = "models:/"
_resolved: dict[str, Path] = {}


class UpstreamMissing(RuntimeError):
    """A referenced model is neither resolved by the flow nor a local bundle folder."""


def is_registry_ref(value: object) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX)


def registered_name(ref: str) -> str:
    """``models:/NAME@alias`` or ``models:/NAME/3`` -> ``NAME``."""
    return ref.removeprefix(PREFIX).split("@")[0].split("/")[0]


def register(ref: str, bundle_dir: Path) -> None:
    """Make ``ref`` resolve to ``bundle_dir`` in this process (the flow calls this)."""
    _resolved[ref] = Path(bundle_dir)


def bundle_dir(ref: str) -> Path:
    if ref in _resolved:
        return _resolved[ref]
    if not is_registry_ref(ref) and (Path(ref) / "config.json").exists():
        return Path(ref)
    raise UpstreamMissing(
        f"model reference '{ref}' is not available: run through the flow (`mlzoo run`), which resolves "
        "models:/ references from the registry, or give a local bundle folder"
    )


def load(ref: str) -> LoadedModel:
    """The model ``ref`` names, rebuilt from its bundle on the CPU."""
    from tasks_lib.core.bundle import load_bundle

    return load_bundle(bundle_dir(ref))


def find(name: str) -> LoadedModel | None:
    """A model of registered task ``name`` resolved in this process (e.g. an evaluator), or None."""
    for ref in _resolved:
        if registered_name(ref) == name:
            return load(ref)
    return None
