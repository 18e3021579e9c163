"""Shared text code: a word tokenizer and vocabulary trained on the data, hashed n-grams,
request checks for text fields, manifest columns for text expectations, and the common
body of the text classification tasks (text_classification, sentiment_analysis).

Everything a served model needs to encode text (the vocabulary, lengths, bucket counts)
lives in the task's ``info`` so a bundle rebuilds from config + info + weights alone.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from tasks_lib.core import engine, expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import (
    SPLITS,
    add_leak_column,
    hash_split,
    load_split_tensors,
    read_info,
    sha1_bytes,
    split_sizes,
)
from tasks_lib.core.errors import InvalidInput
from tasks_lib.core.figures import confusion_matrix_figure
from tasks_lib.core.metrics import classification_metrics, confusion_matrix
from tasks_lib.core.recipes import supervised
from tasks_lib.core.schema import ClassAnswer
from tasks_lib.core.task import Expectation, LoadedModel, Prepared, Recipe, Request, Task

PAD, UNK = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
MAX_REQUEST_CHARS = 5000  # longer texts are refused (413): the model reads only the first tokens anyway
MAX_REQUEST_TEXTS = 64  # items in one ``texts`` request

_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|n't|'[a-z]+|[^\sa-z0-9]")
_HTML_QUOTE = re.compile(r"#39;|&#39;|&quot;|quot;|\\\$")


# -- tokenizer and vocabulary ---------------------------------------------------------
def normalise(text: str) -> str:
    """Lower case, HTML quote entities of the AG corpus and escaped dollars undone, spaces collapsed."""
    text = _HTML_QUOTE.sub(lambda m: "'" if "39" in m.group() else ('"' if "quot" in m.group() else "$"), text)
    return " ".join(text.lower().split())


def tokenize(text: str) -> list[str]:
    """Words (with clitics such as 's and n't kept apart) and single punctuation marks."""
    return _TOKEN.findall(normalise(text))


def build_vocab(token_lists: Iterable[Sequence[str]], min_freq: int = 1, max_size: int = 0) -> list[str]:
    """Words of the training texts by falling frequency (ties alphabetical): deterministic."""
    counts = Counter(w for toks in token_lists for w in toks)
    words = sorted((w for w, c in counts.items() if c >= min_freq), key=lambda w: (-counts[w], w))
    if max_size:
        words = words[: max(max_size - 2, 0)]
    return [PAD, UNK, *words]


def stable_hash(text: str) -> int:
    """CRC-32: the same on every machine and run (Python's ``hash`` is salted per process)."""
    return zlib.crc32(text.encode("utf-8"))


class Encoder:
    """Text -> fixed-length int ids: vocabulary ids, then optionally hashed bigram ids.

    With ``n_buckets > 0`` the ids are ``[unigrams..., bigrams...]`` (fastText style; the
    bigram of words a, b maps to ``vocab_size + crc32("a b") % n_buckets``), truncated
    to ``max_len`` and padded with ``PAD_ID`` (0). Unknown words map to ``UNK_ID``.
    """

    def __init__(self, vocab: Sequence[str], max_len: int, n_buckets: int = 0, max_tokens: int = 0):
        self.index = {w: i for i, w in enumerate(vocab)}
        self.vocab_size = len(vocab)
        self.max_len = max_len
        self.n_buckets = n_buckets
        self.max_tokens = max_tokens or max_len  # words read per text

    def ids(self, text: str) -> list[int]:
        toks = tokenize(text)[: self.max_tokens]
        ids = [self.index.get(w, UNK_ID) for w in toks]
        if self.n_buckets:
            pairs = zip(toks, toks[1:], strict=False)
            ids += [self.vocab_size + stable_hash(f"{a} {b}") % self.n_buckets for a, b in pairs]
        return ids[: self.max_len]

    def encode(self, text: str) -> np.ndarray:
        ids = self.ids(text)
        out = np.zeros(self.max_len, dtype=np.int64)
        out[: len(ids)] = ids
        return out

    def encode_many(self, texts: Iterable[str]) -> np.ndarray:
        rows = [self.encode(t) for t in texts]
        return np.stack(rows) if rows else np.zeros((0, self.max_len), dtype=np.int64)


# -- request checks -------------------------------------------------------------------
def check_text(value: Any, field: str = "text", max_chars: int = MAX_REQUEST_CHARS) -> str:
    """A usable text or InvalidInput naming the problem (non-string 422, empty 422, too long 413)."""
    if not isinstance(value, str):
        raise InvalidInput(f"'{field}' must be a string, got {type(value).__name__}", status=422)
    if not value.strip():
        raise InvalidInput(f"'{field}' is empty: give some text", status=422)
    if len(value) > max_chars:
        raise InvalidInput(f"'{field}' is too long: {len(value)} characters, at most {max_chars}", status=413)
    return value


def texts_from_request(
    request: Request, max_chars: int = MAX_REQUEST_CHARS, max_items: int = MAX_REQUEST_TEXTS
) -> list[str]:
    """The texts of a ``text`` or ``texts`` request, each checked."""
    if "text" in request and "texts" in request:
        raise InvalidInput("give either 'text' or 'texts', not both", status=422)
    if "texts" in request:
        texts = request["texts"]
        if not isinstance(texts, list) or not texts:
            raise InvalidInput("'texts' must be a non-empty list of strings", status=422)
        if len(texts) > max_items:
            raise InvalidInput(f"'texts' has {len(texts)} items, at most {max_items}", status=413)
        return [check_text(t, f"texts item {i}", max_chars) for i, t in enumerate(texts)]
    return [check_text(request.get("text"), "text", max_chars)]


# -- manifest columns -----------------------------------------------------------------
def utf8_valid(text: Any) -> bool:
    """True when ``text`` is a string that round-trips through UTF-8 (no lone surrogates)."""
    if not isinstance(text, str):
        return False
    try:
        text.encode("utf-8", errors="strict")
    except UnicodeEncodeError:
        return False
    return True


def text_columns(texts: Sequence[str]) -> dict[str, Any]:
    """Per-text manifest columns: characters, tokens, UTF-8 validity and a content hash."""
    return {
        "n_chars": [len(t) for t in texts],
        "n_tokens": [len(tokenize(t)) for t in texts],
        "utf8_valid": [utf8_valid(t) for t in texts],
        "sha1": [sha1_bytes(normalise(t).encode("utf-8", errors="replace")) for t in texts],
    }


def dedupe(texts: Sequence[str], keep_first: np.ndarray | None = None) -> np.ndarray:
    """Indices of the first copy of each text (after ``normalise``), in order.

    ``keep_first`` (bool per text) marks texts that win over earlier copies, e.g. the
    upstream test split: a training copy of a test text is dropped, not the test text.
    """
    keys = [normalise(t) for t in texts]
    order = np.arange(len(texts))
    if keep_first is not None:
        order = np.concatenate([order[keep_first], order[~keep_first]])
    seen: set[str] = set()
    keep = []
    for i in order:
        if keys[i] not in seen:
            seen.add(keys[i])
            keep.append(i)
    return np.sort(np.array(keep, dtype=np.int64))


def text_expectations(info: dict[str, Any], min_chars: int, max_chars: int, min_rows: int) -> list[Expectation]:
    """Expectations every text manifest (columns of ``text_columns`` + split + leak) must meet."""
    return [
        expect.min_rows(min_rows, "too few samples to train on"),
        Expectation("expect_column_values_to_not_be_null", {"column": "text"}, "every sample has text"),
        expect.between("n_chars", min_chars, max_chars, f"texts are non-empty and at most {max_chars} characters"),
        expect.between("n_tokens", 1, None, "every text has at least one token"),
        expect.in_set("utf8_valid", [True], "valid UTF-8"),
        expect.all_splits(),
        Expectation("expect_column_values_to_be_unique", {"column": "sha1"}, "exact duplicates removed"),
        expect.no_leak("no text in two splits (test leakage)"),
    ]


# -- text classification body ---------------------------------------------------------
@dataclass(frozen=True)
class TextClassificationData(DataConfig):
    vocab_min_freq: int = 1  # words seen fewer times in train map to <unk>
    vocab_max_size: int = 50_000
    max_tokens: int = 64  # words read per text (longer texts are truncated)


@dataclass
class TextData:
    """Encoded texts per split (int64 ids, padded) with labels and the raw texts."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    texts: dict[str, list[str]]
    info: dict[str, Any]


class TextClassifierBase(Task):
    """Shared body of text classification tasks: subclasses read raw data and build the model.

    ``read(dcfg)`` returns (texts, labels, classes, fixed_split or None); ``n_buckets``
    (hashed bigram buckets, 0 = none) is chosen by the subclass.
    """

    metric = "accuracy"
    request_fields = ("text", "texts")
    answer_model = ClassAnswer
    data_config_cls = TextClassificationData
    max_text_chars: int = 2000  # manifest bound; requests may be longer (truncated to max_tokens words)

    def read(self, dcfg: DataConfig) -> tuple[list[str], np.ndarray, list[str], np.ndarray | None]:
        raise NotImplementedError

    def split(self, texts: Sequence[str], fixed: np.ndarray | None, dcfg: DataConfig) -> np.ndarray:
        """Split by the text's content hash (the manifest's ``sha1``), stable when the corpus grows; an
        upstream split wins, and validation is then carved out of its training rows."""
        keys = np.array(text_columns(texts)["sha1"], dtype=object) if len(texts) else np.zeros(0, object)
        if fixed is None:
            return hash_split(keys, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
        split = fixed.copy()
        train_idx = np.flatnonzero(split == "train")
        split[train_idx] = hash_split(keys[train_idx], dcfg.val_fraction, 0.0, dcfg.split_seed)
        return split

    def n_buckets(self, dcfg: DataConfig) -> int:
        return 0

    def prepare(self, dcfg: TextClassificationData, out: Path) -> Prepared:
        texts, labels, classes, fixed = self.read(dcfg)
        n_read = len(texts)
        keep = dedupe(texts, None if fixed is None else fixed == "test")
        texts, labels = [texts[i] for i in keep], labels[keep]
        fixed = None if fixed is None else fixed[keep]
        if dcfg.max_samples and len(texts) > dcfg.max_samples:
            rng = np.random.default_rng(dcfg.split_seed)
            if fixed is None:
                pick = np.sort(rng.choice(len(texts), dcfg.max_samples, replace=False))
            else:  # the upstream test split stays whole; training rows are sampled
                test = np.flatnonzero(fixed == "test")
                rest = np.flatnonzero(fixed != "test")
                k = min(len(rest), max(dcfg.max_samples - len(test), dcfg.max_samples // 2))
                pick = np.sort(np.concatenate([test, rng.choice(rest, k, replace=False)]))
            texts, labels = [texts[i] for i in pick], labels[pick]
            fixed = None if fixed is None else fixed[pick]
        split = self.split(texts, fixed, dcfg)

        train_tokens = [tokenize(t)[: dcfg.max_tokens] for t, s in zip(texts, split, strict=True) if s == "train"]
        vocab = build_vocab(train_tokens, dcfg.vocab_min_freq, dcfg.vocab_max_size)
        n_buckets = self.n_buckets(dcfg)
        max_len = dcfg.max_tokens * (2 if n_buckets else 1)
        encoder = Encoder(vocab, max_len, n_buckets, dcfg.max_tokens)

        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for s in SPLITS:
            idx = np.flatnonzero(split == s)
            part = [texts[i] for i in idx]
            np.save(out / f"{s}_x.npy", encoder.encode_many(part))
            np.save(out / f"{s}_y.npy", labels[idx].astype(np.int64))
            cols = text_columns(part)
            rows.append(
                pd.DataFrame(
                    {"sample_id": [f"{s}/{i}" for i in range(len(idx))], "split": s, "label": labels[idx], **cols}
                ).assign(text=part)
            )
        manifest = add_leak_column(pd.concat(rows, ignore_index=True))
        unk = float(np.mean([w not in encoder.index for toks in train_tokens for w in toks] or [0.0]))
        info = {
            "source": dcfg.source,
            "classes": classes,
            "vocab": vocab,
            "max_tokens": dcfg.max_tokens,
            "max_len": max_len,
            "n_buckets": n_buckets,
            "n_samples": split_sizes(split),
            "duplicates_removed": n_read - len(keep),
            "train_unk_rate": round(unk, 6),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        n = len(info["classes"])
        return [
            *text_expectations(info, 1, self.max_text_chars, 10 * n),
            Expectation("expect_column_values_to_not_be_null", {"column": "label"}),
            expect.in_set("label", list(range(n)), f"labels index the {n} classes"),
            *expect.labels_per_split(list(range(n))),
        ]

    def load(self, data_dir: Path) -> TextData:
        from tasks_lib.core.data import read_manifest

        m = read_manifest(data_dir)
        texts = {s: m.loc[m.split == s, "text"].astype(str).tolist() for s in SPLITS}
        x, y = load_split_tensors(data_dir, "x"), load_split_tensors(data_dir, "y")
        return TextData(x=x, y=y, texts=texts, info=read_info(data_dir))

    @staticmethod
    def encoder(info: dict[str, Any]) -> Encoder:
        return Encoder(info["vocab"], info["max_len"], info["n_buckets"], info["max_tokens"])

    # -- training and metrics -------------------------------------------------------------
    def training(self, model: nn.Module, data: TextData, cfg: TaskConfig) -> Recipe:
        loss = nn.CrossEntropyLoss(label_smoothing=getattr(cfg, "label_smoothing", 0.0))
        return supervised(
            model,
            data.x["train"],
            data.y["train"],
            cfg,
            loss,
            validate=lambda: self.evaluate(model, data, "val", per_class=False),
        )

    def _predict(self, model: nn.Module, x: torch.Tensor) -> np.ndarray:
        return engine.predict_batches(model, x).argmax(1).numpy()

    def evaluate(self, model: nn.Module, data: TextData, split: str = "test", per_class: bool = True):
        m = classification_metrics(
            data.y[split].numpy(), self._predict(model, data.x[split]), len(data.info["classes"])
        )
        return m if per_class else {k: v for k, v in m.items() if not k.startswith("acc_class_")}

    def baseline(self, data: TextData, split: str = "test") -> dict[str, float]:
        """TF-IDF (word uni- and bigrams, sublinear tf) + logistic regression, fitted on train."""
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        vec = TfidfVectorizer(
            tokenizer=tokenize, token_pattern=None, lowercase=False, ngram_range=(1, 2), sublinear_tf=True
        )
        xtr = vec.fit_transform(data.texts["train"])
        clf = LogisticRegression(
            C=10.0, max_iter=200, solver="liblinear" if len(data.info["classes"]) == 2 else "lbfgs"
        )
        clf.fit(xtr, data.y["train"].numpy())
        pred = clf.predict(vec.transform(data.texts[split]))
        return classification_metrics(data.y[split].numpy(), pred, len(data.info["classes"]))

    def examples(self, model: nn.Module, data: TextData) -> dict[str, Any]:
        classes = data.info["classes"]
        y = data.y["test"].numpy()
        probs = torch.softmax(engine.predict_batches(model, data.x["test"]), 1).numpy()
        pred = probs.argmax(1)
        cm = confusion_matrix(y, pred, len(classes))
        lines = ["| # | text | true | predicted | p |", "|---|---|---|---|---|"]
        wrong = np.flatnonzero(pred != y)[:10]
        for i in [*range(min(15, len(y))), *wrong]:
            text = data.texts["test"][i].replace("|", "/")[:160]
            mark = "" if pred[i] == y[i] else " **wrong**"
            lines.append(f"| {i} | {text} | {classes[y[i]]} | {classes[pred[i]]}{mark} | {probs[i, pred[i]]:.3f} |")
        return {"confusion_matrix.png": confusion_matrix_figure(cm, classes), "sample_predictions.md": "\n".join(lines)}

    # -- serving --------------------------------------------------------------------------
    def request_examples(self, data: TextData, n: int) -> list[Request]:
        texts = data.texts["test"][: max(n, 2)]
        reqs: list[Request] = [{"text": t} for t in texts[: n - 1]]
        return [*reqs, {"texts": texts[:2]}][:n] if n > 1 else [{"text": texts[0]}]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"text": "   "}, 422, "empty"),
            ({"text": "word " * 2000}, 413, "too long"),
            ({"texts": ["fine", 42]}, 422, "must be a string"),
            ({"texts": []}, 422, "non-empty list"),
            ({"texts": ["fine", ""]}, 422, "texts item 1"),
            ({"image": b"\x89PNG"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        enc = self.encoder(loaded.info)
        return [enc.encode(t) for t in texts_from_request(request)]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.int64))
        return torch.softmax(engine.predict_batches(loaded.module, x), dim=1).numpy()
