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
    """Write the manifest and info next to the task's files (deterministic bytes)."""
    prepared.manifest.to_csv(out / MANIFEST, index=False, lineterminator="\n")
    (out / INFO).write_text(json.dumps(prepared.info, indent=2, sort_keys=True) + "\n")


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


def random_split(n: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Assign 'train'/'val'/'test' to ``n`` samples (or whole sequences) at random; at least one each
    of test and val. Deterministic in ``seed``."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = max(1, round(n * test_fraction))
    n_val = max(1, round(n * val_fraction))
    split = np.empty(n, dtype=object)
    split[order[:n_test]] = "test"
    split[order[n_test : n_test + n_val]] = "val"
    split[order[n_test + n_val :]] = "train"
    return split


def stratified_split(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Assign 'train'/'val'/'test' per sample, stratified by label, deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    split = np.empty(len(labels), dtype=object)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        rng.shuffle(idx)
        n_test = max(1, round(len(idx) * test_fraction)) if test_fraction > 0 else 0
        n_val = max(1, round(len(idx) * val_fraction)) if val_fraction > 0 else 0
        split[idx[:n_test]] = "test"
        split[idx[n_test : n_test + n_val]] = "val"
        split[idx[n_test + n_val :]] = "train"
    return split
