"""The Tiny Shakespeare corpus (one plain-text ``input.txt``) and character n-gram baselines."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from tasks_lib.core.data import datasets_mirror
from tasks_lib.core.download import fetch, is_url

TS_DIR = "tinyshakespeare"
TS_FILE = "input.txt"
TS_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TS_HASH = "md5:6fb458f1232090904fb40fe944165e91"  # the upstream file's; the dataset mirror's copy has it too


def locate_tiny_shakespeare(path: str, workdir: Path) -> Path:
    """``input.txt``: the given file or folder, the mirror's ``tinyshakespeare/``, or fetched from a URL
    (``core.download.fetch``: cached, the upstream file checked against its known hash)."""
    if not path:
        mirror = datasets_mirror()
        if mirror and (mirror / TS_DIR / TS_FILE).is_file():
            return mirror / TS_DIR / TS_FILE
        path = TS_URL
    if is_url(path):
        return fetch(path, TS_HASH if path == TS_URL else None)
    p = Path(path)
    return p / TS_FILE if p.is_dir() else p


def read_tiny_shakespeare(file: Path) -> str:
    """The corpus as one string (UTF-8, newlines normalised to ``\\n``); fails on invalid UTF-8."""
    raw = Path(file).read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file}: not valid UTF-8 at byte {exc.start}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def split_speeches(text: str) -> list[str]:
    """Blocks separated by blank lines (in Shakespeare: one speech, ``NAME:\\nlines``)."""
    return [b.strip("\n") for b in text.split("\n\n") if b.strip()]


class CharNgram:
    """Unigram (``order=1``) or bigram (``order=2``) character model with add-``alpha`` smoothing."""

    def __init__(self, order: int, vocab_size: int, alpha: float = 0.1):
        if order not in (1, 2):
            raise ValueError("order must be 1 or 2")
        self.order, self.v, self.alpha = order, vocab_size, alpha
        self.log_p: np.ndarray | None = None

    def fit(self, ids: np.ndarray) -> CharNgram:
        ids = np.asarray(ids, dtype=np.int64)
        if self.order == 1:
            counts = np.bincount(ids, minlength=self.v).astype(float) + self.alpha
            self.log_p = np.log(counts / counts.sum())
        else:
            counts = np.zeros((self.v, self.v)) + self.alpha
            np.add.at(counts, (ids[:-1], ids[1:]), 1)
            self.log_p = np.log(counts / counts.sum(1, keepdims=True))
        return self

    def loss(self, ids: np.ndarray) -> float:
        """Mean negative log-likelihood in nats per character (the first character scored by nothing)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.order == 1:
            return float(-self.log_p[ids].mean())
        return float(-self.log_p[ids[:-1], ids[1:]].mean())


def loss_metrics(nats: float) -> dict[str, float]:
    """loss (nats/char) with perplexity and bits per character."""
    return {"loss": nats, "perplexity": math.exp(nats), "bits_per_char": nats / math.log(2)}
