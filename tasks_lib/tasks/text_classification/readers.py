"""The AG News CSV layout (Zhang, Zhao & LeCun 2015): no header; class index 1-4, title, description.

Upstream ``ag_news_csv/`` holds ``train.csv``, ``test.csv`` and ``classes.txt`` (one class
name per line, in index order); the dataset mirror holds ``news.csv`` (rows of test.csv)
and ``classes.txt``. Any folder with ``news.csv`` or ``train.csv``/``test.csv`` is read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from tasks_lib.core.data import datasets_mirror
from tasks_lib.core.download import fetch, is_url

AG_DIR = "ag_news"
AG_URL = "https://raw.githubusercontent.com/mhjabreel/CharCnn_Keras/master/data/ag_news_csv/test.csv"
AG_HASH = "md5:d52ea96a97a2d943681189a97654912d"  # the upstream test.csv (torchtext's AG_NEWS checks the same)
AG_CLASSES = ["World", "Sports", "Business", "Sci/Tech"]


def locate_ag_news(path: str, workdir: Path) -> Path:
    """The AG News folder: given, the mirror's ``ag_news/``, or a CSV downloaded from a URL."""
    if not path:
        mirror = datasets_mirror()
        if mirror and (mirror / AG_DIR).is_dir():
            return mirror / AG_DIR
        path = AG_URL
    if is_url(path):  # core.download.fetch: cached, the upstream test.csv checked against its known MD5
        workdir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(
            fetch(path, AG_HASH if path == AG_URL else None), workdir / "news.csv"
        )  # the folder layout the reader takes
        return workdir
    return Path(path)


def _read_csv(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, header=None, names=["label", "title", "description"], dtype=str, keep_default_na=False)
    bad = ~df["label"].str.strip().isin(["1", "2", "3", "4"])
    if bad.any():
        raise ValueError(
            f"{path}: class index must be 1-4, row {int(np.flatnonzero(bad)[0]) + 1} has {df.label[bad].iloc[0]!r}"
        )
    return df


def read_ag_news(folder: Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray | None]:
    """(texts "title. description", labels 0-3, class names, upstream split or None).

    ``news.csv`` alone: no fixed split (the task draws one). ``train.csv`` + ``test.csv``:
    the upstream split, ``test.csv`` rows marked "test".
    """
    folder = Path(folder)
    classes_file = folder / "classes.txt"
    classes = (
        [c.strip() for c in classes_file.read_text().splitlines() if c.strip()] if classes_file.exists() else AG_CLASSES
    )
    if (folder / "train.csv").exists() and (folder / "test.csv").exists():
        parts = [("train", _read_csv(folder / "train.csv")), ("test", _read_csv(folder / "test.csv"))]
    elif (folder / "news.csv").exists():
        parts = [("", _read_csv(folder / "news.csv"))]
    else:
        raise FileNotFoundError(f"{folder}: no news.csv and no train.csv + test.csv (AG News CSV layout)")
    df = pd.concat([p for _, p in parts], ignore_index=True)
    title = df["title"].str.strip().str.replace(r"\s+", " ", regex=True)
    desc = df["description"].str.strip().str.replace(r"\s+", " ", regex=True)
    texts = [f"{t}. {d}" if d else t for t, d in zip(title, desc, strict=True)]
    labels = df["label"].str.strip().astype(int).to_numpy() - 1
    split = None
    if parts[0][0]:
        split = np.concatenate([np.full(len(p), s, dtype=object) for s, p in parts])
    return texts, labels.astype(np.int64), classes, split
