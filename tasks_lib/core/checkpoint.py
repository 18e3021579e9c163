"""The one training-checkpoint format: the loop's own state plus every RNG, loadable with
``torch.load(weights_only=True)`` (nothing is unpickled beyond tensors and plain containers),
written atomically.

RNG states are stored weights_only-safe and restored bit-exactly:

- torch CPU and CUDA default generators, and each named ``torch.Generator``: their
  ``get_state()`` ByteTensors as they are;
- NumPy's legacy global ``RandomState`` (``np.random.get_state()`` holds an ndarray, which
  weights_only refuses): ``{"name": str, "key": int64 tensor of the 624 uint32 words,
  "pos": int, "has_gauss": int, "cached_gaussian": float}``;
- Python's ``random`` (``random.getstate()``): ``{"version": int, "internal": int64 tensor of
  the 625 words, "gauss_next": float | None}``.
"""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tasks_lib.core.atomic import atomic_path

FORMAT = 1  # bump when the layout below changes


def get_rng_states(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """Every global RNG's state (Python, NumPy, torch CPU, CUDA once used) and each named generator's."""
    py_version, py_internal, py_gauss = random.getstate()
    np_name, np_key, np_pos, np_has_gauss, np_cached = np.random.get_state()
    states: dict[str, Any] = {
        "python": {
            "version": int(py_version),
            "internal": torch.tensor(py_internal, dtype=torch.int64),
            "gauss_next": py_gauss,
        },
        "numpy": {
            "name": str(np_name),
            "key": torch.from_numpy(np.asarray(np_key, dtype=np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "cached_gaussian": float(np_cached),
        },
        "torch": torch.get_rng_state(),
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }
    # Not initialised means no CUDA random number was drawn: seeding alone restores it then.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`get_rng_states` captured, globals and the named ``generators``."""
    py = states["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["internal"].tolist()), py["gauss_next"]))
    npy = states["numpy"]
    key = np.asarray(npy["key"].cpu().numpy(), dtype=np.uint32)
    np.random.set_state((npy["name"], key, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    torch.set_rng_state(states["torch"].cpu())  # set_state takes CPU ByteTensors only
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])
    saved = states["generators"]
    for name, g in (generators or {}).items():
        if name not in saved:
            raise KeyError(f"checkpoint has no state for generator '{name}' (it has: {sorted(saved)})")
        g.set_state(saved[name].cpu())


def save_checkpoint(
    path: str | os.PathLike,
    state: Mapping[str, Any],
    generators: Mapping[str, torch.Generator] | None = None,
) -> None:
    """Atomically write ``state`` (state_dicts, tensors, numbers, strings, lists, dicts) with every RNG.

    ``generators``: the loop's own ``torch.Generator``s by name (data order, augmentation ...),
    restored by :func:`load_checkpoint` when given the same names.
    """
    payload = {"format": FORMAT, "state": dict(state), "rng": get_rng_states(generators)}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    generators: Mapping[str, torch.Generator] | None = None,
) -> dict[str, Any]:
    """Load a :func:`save_checkpoint` file (``weights_only=True``), restore every RNG, return the state.

    Call it where the interrupted run wrote it: after seeding and building the loop, right
    before the first epoch, so the random streams continue exactly where they stopped.
    Tensors are mapped to ``device``; RNG states go back as CPU tensors wherever they load.
    """
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a checkpoint of format {FORMAT} written by save_checkpoint")
    set_rng_states(payload["rng"], generators)
    return payload["state"]
