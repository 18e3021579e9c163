"""The task registry: one name per task, used as the key everywhere.

The name keys the task module, its ``params.yaml`` section, its DVC stage item,
its MLflow experiment and registered model, and its Bento service.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tasks_lib.core.task import Task

_REGISTRY: dict[str, type[Task]] = {}


def register(cls: type[Task]) -> type[Task]:
    """Class decorator adding a task under its ``name``; a duplicate name is refused."""
    key = cls.name
    if key in _REGISTRY:
        raise ValueError(f"An entry is already registered under the name '{key}'.")
    _REGISTRY[key] = cls
    return cls


def unregister(name: str) -> None:
    """Remove a task (tests register throw-away tasks)."""
    _REGISTRY.pop(name, None)


def _builtin_names() -> list[str]:
    """The built-in tasks, named by their module in ``tasks_lib/tasks/`` (found without importing them)."""
    import pkgutil

    import tasks_lib.tasks

    return [m.name for m in pkgutil.iter_modules(tasks_lib.tasks.__path__)]


def get_task(name: str) -> Task:
    """Return a fresh instance of the task registered under ``name``.

    Only that task's module is imported: a server or worker for one task does not pay
    for importing the other twenty-two (and their libraries).
    """
    if name not in _REGISTRY and name in _builtin_names():
        importlib.import_module(f"tasks_lib.tasks.{name}")
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(task_names()) or "none"
        raise KeyError(f"Unknown task '{name}'. Registered tasks: {known}.") from None


def task_names() -> list[str]:
    """Names of every registered task (built-in and registered at run time), sorted."""
    return sorted(set(_REGISTRY) | set(_builtin_names()))
