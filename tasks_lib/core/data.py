"""Helpers for writing and reading prepared data folders and their manifests.

A prepared folder holds the task's files plus ``manifest.csv`` (one row per sample,
validated by Great Expectations) and ``info.json`` (dataset-level facts).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tasks_lib.core.atomic import atomic_path, atomic_write_text
from tasks_lib.core.task import Expectation, Prepared

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


def add_leak_column(manifest: pd.DataFrame, key: str = "sha1") -> pd.DataFrame:
    """Add ``splits_with_same_content``: in how many splits this sample's content occurs.

    Validation expects 1 everywhere: a sample in two splits leaks test data into training.
    """
    counts = manifest.groupby(key)["split"].transform("nunique")
    return manifest.assign(splits_with_same_content=counts.astype(int))


def all_splits_present() -> Expectation:
    """The expectation every prepared manifest meets: train, val and test each have rows."""
    return Expectation(
        "expect_column_distinct_values_to_equal_set",
        {"column": "split", "value_set": list(SPLITS)},
        "train, val and test all present",
    )


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

