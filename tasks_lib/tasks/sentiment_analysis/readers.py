"""The GLUE SST-2 layout: ``train.tsv`` and ``dev.tsv``, tab-separated, header ``sentence<TAB>label``.

Labels are 0 (negative) and 1 (positive). GLUE's ``test.tsv`` has no labels, so the dev
file serves as the test split and validation is carved from train.
"""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from tasks_lib.core.data import datasets_mirror
from tasks_lib.core.download import fetch, is_url

SST2_DIR = "sst2"
SST2_URL = "https://dl.fbaipublicfiles.com/glue/data/SST-2.zip"
SST2_HASH = "md5:9f81648d4199384278b86e315dac217c"  # GLUE's zip (torchtext's SST2 checks the same)
SST2_CLASSES = ["negative", "positive"]


def locate_sst2(path: str, workdir: Path) -> Path:
    """The folder holding train.tsv and dev.tsv: given, the mirror's ``sst2/``, or the GLUE zip from a URL."""
    if not path:
        mirror = datasets_mirror()
        if mirror and (mirror / SST2_DIR).is_dir():
            return mirror / SST2_DIR
        path = SST2_URL
    if is_url(path):  # core.download.fetch: cached, GLUE's zip checked against its known MD5
        workdir.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(fetch(path, SST2_HASH if path == SST2_URL else None)) as zf:
            zf.extractall(workdir)
        found = sorted(workdir.rglob("dev.tsv"))
        if not found:
            raise FileNotFoundError(f"{path}: the archive holds no dev.tsv")
        return found[0].parent
    return Path(path)


def _read_tsv(path: Path) -> pd.DataFrame:
    text = path.read_text(encoding="utf-8")
    # quoting off: SST-2 sentences contain bare double quotes
    df = pd.read_csv(io.StringIO(text), sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    if list(df.columns[:2]) != ["sentence", "label"]:
        raise ValueError(f"{path}: header must be 'sentence<TAB>label', got {list(df.columns)}")
    bad = ~df["label"].str.strip().isin(["0", "1"])
    if bad.any():
        raise ValueError(
            f"{path}: label must be 0 or 1, row {int(np.flatnonzero(bad)[0]) + 2} has {df.label[bad].iloc[0]!r}"
        )
    return df


def read_sst2(folder: Path) -> tuple[list[str], np.ndarray, list[str], np.ndarray]:
    """(sentences, labels 0/1, class names, split: "train" for train.tsv rows, "test" for dev.tsv rows)."""
    folder = Path(folder)
    train, dev = _read_tsv(folder / "train.tsv"), _read_tsv(folder / "dev.tsv")
    texts = [" ".join(s.split()) for s in pd.concat([train.sentence, dev.sentence])]
    labels = pd.concat([train.label, dev.label]).str.strip().astype(int).to_numpy()
    split = np.array(["train"] * len(train) + ["test"] * len(dev), dtype=object)
    return texts, labels.astype(np.int64), SST2_CLASSES, split
