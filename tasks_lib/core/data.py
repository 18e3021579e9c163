"""Helpers for writing and reading prepared data folders and their manifests.

A prepared folder holds the task's files plus ``manifest.csv`` (one row per sample,
validated by Great Expectations) and ``info.json`` (dataset-level facts).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from tasks_lib.core.atomic import atomic_path, atomic_write_text
from tasks_lib.core.task import Prepared

MANIFEST = "manifest.csv"
INFO = "info.json"
SPLITS = ("train", "val", "test")


def datasets_mirror() -> Path | None:
    """The local dataset mirror (``MLZOO_DATASETS``, default ``../shared/datasets``)."""
    env = os.environ.get("MLZOO_DATASETS")
    if env:
        return Path(env)
    default = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
    return default if default.is_dir() else None


def sha1_bytes(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def write_prepared(out: Path, prepared: Prepared) -> None:
    """Write the manifest and info next to the task's files (deterministic bytes, each file atomically)."""
    with atomic_path(out / MANIFEST) as tmp:
        prepared.manifest.to_csv(tmp, index=False, lineterminator="\n")
    atomic_write_text(out / INFO, json.dumps(prepared.info, indent=2, sort_keys=True) + "\n")


def read_manifest(data_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(data_dir) / MANIFEST)


def read_info(data_dir: Path) -> dict[str, Any]:
    return json.loads((Path(data_dir) / INFO).read_text())


def split_sizes(split) -> dict[str, int]:
    """How many samples each split holds, given every sample's split (an array or a column)."""
    split = np.asarray(split)
    return {s: int((split == s).sum()) for s in SPLITS}


def add_leak_column(manifest: pd.DataFrame, key: str = "sha1") -> pd.DataFrame:
    """Add ``splits_with_same_content``: in how many splits this sample's content occurs.

    Validation expects 1 everywhere: a sample in two splits leaks test data into training.
    """
    counts = manifest.groupby(key)["split"].transform("nunique")
    return manifest.assign(splits_with_same_content=counts.astype(int))


def first_copies(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the sha1 of every sample's bytes, the sorted indices of each distinct content's first copy).

    Exact duplicates would let one sample sit in two splits: callers keep the first copy.
    """
    hashes = np.array([sha1_bytes(sample.tobytes()) for sample in samples])
    _, first = np.unique(hashes, return_index=True)
    return hashes, np.sort(first)


def subsample(n: int, max_samples: int, seed: int) -> np.ndarray | None:
    """Sorted indices of a seeded random ``max_samples`` of ``n`` items; None when all are kept
    (``max_samples`` 0 or at least ``n``)."""
    if max_samples and n > max_samples:
        return np.sort(np.random.default_rng(seed).choice(n, max_samples, replace=False))
    return None


def save_split_arrays(out: Path, split: str, **arrays: np.ndarray) -> None:
    """``out/{split}_{name}.npy`` for each array (``x=..., y=...``)."""
    for name, array in arrays.items():
        np.save(Path(out) / f"{split}_{name}.npy", array)


def load_split_tensors(data_dir: Path, name: str) -> dict[str, torch.Tensor]:
    """Per split, ``data_dir/{split}_{name}.npy`` as a tensor (what :func:`save_split_arrays` wrote)."""
    return {s: torch.from_numpy(np.load(Path(data_dir) / f"{s}_{name}.npy")) for s in SPLITS}


@dataclass
class SplitTensors:
    """Prepared arrays in memory, per split: inputs ``x`` and targets ``y`` (as :func:`save_split_arrays`
    wrote them under the names ``x`` and ``y``) and the folder's ``info``."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    info: dict[str, Any]

    @classmethod
    def load(cls, data_dir: Path):
        """The prepared folder ``data_dir`` read back."""
        return cls(load_split_tensors(data_dir, "x"), load_split_tensors(data_dir, "y"), read_info(data_dir))


def write_labelled_images(
    out: Path,
    x: np.ndarray,
    y: np.ndarray,
    split: np.ndarray,
    hashes: np.ndarray,
    columns: Callable[[np.ndarray, np.ndarray], dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Per split, its images (uint8 NHWC) and labels as ``{split}_x.npy`` / ``{split}_y.npy`` under ``out``;
    returns the manifest: sample id, split, label, height, width, channels, dtype, pixel range, the
    task's own ``columns(images, indices)``, sha1 and the leak column."""
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in SPLITS:
        idx = np.flatnonzero(split == s)
        xs = x[idx]
        save_split_arrays(out, s, x=xs, y=y[idx])
        flat = xs.reshape(len(xs), -1) if len(xs) else np.zeros((0, 1), x.dtype)
        rows.append(
            pd.DataFrame(
                {
                    "sample_id": [f"{s}/{i}" for i in range(len(idx))],
                    "split": s,
                    "label": y[idx],
                    "height": xs.shape[1],
                    "width": xs.shape[2],
                    "channels": xs.shape[3],
                    "dtype": str(xs.dtype),
                    "pixel_min": flat.min(axis=1),
                    "pixel_max": flat.max(axis=1),
                    **(columns(xs, idx) if columns is not None else {}),
                    "sha1": hashes[idx],
                }
            )
        )
    return add_leak_column(pd.concat(rows, ignore_index=True))


def hash_split(keys, val_fraction: float, test_fraction: float, salt: int = 0) -> np.ndarray:
    """Assign 'train'/'val'/'test' to each key (a sample's content hash, or a stable group id) by
    hash bucketing, as TFX does: bucket = first 8 bytes of sha256(f"{salt}:{key}") / 2**64;
    bucket < test_fraction -> test, < test_fraction + val_fraction -> val, else train.

    Why: a seeded shuffle of the pool moves samples between train and test whenever the pool
    grows, shrinks or is re-prepared with other sizes, so a champion re-evaluated on a new data
    version would be scored on samples it trained on. Here a sample's split is a pure function
    of its key and the salt (``split_seed``): adding or removing other samples never changes it.
    Not stratified: on small pools a class can miss a split, and the fractions hold only on average.
    """
    split = np.empty(len(keys), dtype=object)
    test_edge = test_fraction
    val_edge = test_fraction + val_fraction
    for i, key in enumerate(keys):
        digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
        bucket = int.from_bytes(digest[:8], "big") / 2**64
        split[i] = "test" if bucket < test_edge else "val" if bucket < val_edge else "train"
    return split
