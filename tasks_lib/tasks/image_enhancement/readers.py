"""The LOL layout: ``low/NAME.png`` + ``high/NAME.png`` pairs, optionally one such pair of folders
per split (``our485/`` for training, ``eval15/`` for test in the LOL release)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tasks_lib.core.data import SPLITS
from tasks_lib.core.photos import read_photo_folder, split_photos

TEST_DIRS = {"eval15", "eval", "test"}
VAL_DIRS = {"val", "valid"}


def _pairs(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    low, high = read_photo_folder(folder / "low"), read_photo_folder(folder / "high")
    missing = sorted(set(low) ^ set(high))
    if missing:
        raise ValueError(f"{folder}: images without a partner in low/ or high/: {missing[:5]}")
    out = {}
    for name in sorted(low):
        if low[name].shape != high[name].shape:
            raise ValueError(f"{folder}: {name} differs in size between low/ and high/")
        out[name] = (low[name], high[name])
    return out


def read_pair_folder(
    root: Path, val_fraction: float, test_fraction: float, seed: int
) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """split -> {name: (low, high)}. ``root/low`` + ``root/high``: split by the hash of the high image;
    ``root/<part>/low`` + ``root/<part>/high``: part eval15/eval/test -> test, val -> val, others train
    (validation carved out of train when no part is named val)."""
    root = Path(root)
    if (root / "low").is_dir():
        pairs = _pairs(root)
        names = split_photos({n: high for n, (_, high) in pairs.items()}, val_fraction, test_fraction, seed)
        return {s: {n: pairs[n] for n in names[s]} for s in SPLITS}
    parts = sorted(p for p in root.iterdir() if (p / "low").is_dir() and (p / "high").is_dir())
    if not parts:
        raise ValueError(f"{root} has no low/ + high/ folders (LOL layout)")
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {s: {} for s in SPLITS}
    for part in parts:
        split = "test" if part.name.lower() in TEST_DIRS else "val" if part.name.lower() in VAL_DIRS else "train"
        out[split] |= {f"{part.name}/{n}": v for n, v in _pairs(part).items()}
    if not out["val"]:
        names = split_photos({n: high for n, (_, high) in out["train"].items()}, val_fraction, 0.0, seed)
        out["val"] = {n: out["train"].pop(n) for n in names["val"]}
    return out
