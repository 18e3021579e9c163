"""Fault injection at the flow's step boundaries, for crash-consistency tests.

``MLZOO_FAULT=train`` makes the process die at that boundary the way a SIGKILL or a
power cut would: ``os._exit`` runs no ``finally`` block, no ``atexit`` hook and no
Prefect state hook, so nothing gets the chance to tidy up. The boundaries, in flow
order, are :data:`BOUNDARIES`. Unset (always, outside tests) a boundary costs one
dictionary lookup.

In-process tests can instead attach a callback to a boundary (:func:`on`), e.g. to
stop a real server at exactly that point of a real run.
"""

from __future__ import annotations

import os
from collections.abc import Callable

BOUNDARIES = (
    "prepare",  # after the run's data is written
    "validate",  # after Great Expectations passed
    "version",  # after dvc commit + push
    "train",
    "evaluate",
    "log",  # after params, metrics, artifacts and the model are logged
    "register",  # after the model version exists
    "package",  # in the middle of building the challenger's Bento (model imported, Bento not built)
    "aliases",  # between the @champion and the @previous writes
    "promote",  # after the decision is recorded
)
KILLED_EXIT_CODE = 137  # what a shell reports for a SIGKILLed process

_callbacks: dict[str, Callable[[], None]] = {}


def on(boundary: str, callback: Callable[[], None] | None) -> None:
    """Run ``callback`` when a flow in this process reaches ``boundary`` (None removes it)."""
    if boundary not in BOUNDARIES:
        raise ValueError(f"unknown boundary '{boundary}'; choose one of {BOUNDARIES}")
    if callback is None:
        _callbacks.pop(boundary, None)
    else:
        _callbacks[boundary] = callback


def reached(boundary: str) -> None:
    """Mark that the flow reached ``boundary``: die here if ``MLZOO_FAULT`` names it."""
    if os.environ.get("MLZOO_FAULT") == boundary:
        os.write(2, f"MLZOO_FAULT: killed at boundary '{boundary}'\n".encode())
        os._exit(KILLED_EXIT_CODE)
    callback = _callbacks.get(boundary)
    if callback is not None:
        callback()
