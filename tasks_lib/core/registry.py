"""The task registry: one name per task, used as the key everywhere.

The name keys the task module, its ``params.yaml`` section, its DVC stage item,
its MLflow experiment and registered model, and its Bento service.
"""

from __future__ import annotations

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


def _load_builtin_tasks() -> None:
    import tasks_lib.tasks  # noqa: F401  (importing the package registers its tasks)


def get_task(name: str) -> Task:
    """Return a fresh instance of the task registered under ``name``."""
    _load_builtin_tasks()
    try:
        return _REGISTRY[name]()
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise KeyError(f"Unknown task '{name}'. Registered tasks: {known}.") from None


def task_names() -> list[str]:
    """Names of every registered task, sorted."""
    _load_builtin_tasks()
    return sorted(_REGISTRY)
