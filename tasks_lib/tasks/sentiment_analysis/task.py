"""The sentiment analysis task: SST-2, a word CNN trained from scratch, TF-IDF baseline."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field
from torch import nn

from tasks_lib.core.config import TaskConfig
from tasks_lib.core.registry import register
from tasks_lib.core.schema import Answer
from tasks_lib.core.task import DataSource, LoadedModel
from tasks_lib.core.text import TextClassificationData, TextClassifierBase
from tasks_lib.tasks.sentiment_analysis.model import TextCNN
from tasks_lib.tasks.sentiment_analysis.readers import SST2_DIR, SST2_URL, locate_sst2, read_sst2


@dataclass(frozen=True)
class SST2Data(TextClassificationData):
    max_tokens: int = 56  # the longest dev sentence has 55 tokens
    vocab_min_freq: int = 1
    val_fraction: float = 0.02  # of train.tsv (about 1,300 rows); dev.tsv is the test split


@dataclass(frozen=True)
class SentimentConfig(TaskConfig):
    epochs: int = 2
    lr: float = 5e-3
    weight_decay: float = 1e-4
    dim: int = 64  # word embedding width
    filters: int = 64  # per convolution width
    widths: str = "2,3,4"  # convolution widths (words)
    dropout: float = 0.4
    label_smoothing: float = 0.0


class SentimentAnswer(Answer):
    label: str
    probability: float = Field(description="the label's probability")
    positive_probability: float


@register
class SentimentAnalysis(TextClassifierBase):
    """Binary sentence sentiment (seed examples 11, 30) with a word CNN trained from scratch."""

    name = "sentiment_analysis"
    answer_model = SentimentAnswer
    seed_sections = (11, 30)
    config_cls = SentimentConfig
    data_config_cls = SST2Data
    default_source = "sst2"
    max_text_chars = 400
    profiles = {
        "smoke": {"data": {"max_samples": 2500, "val_fraction": 0.1}, "train": {"epochs": 4, "dim": 32, "filters": 32}},
        "quick": {"train": {"epochs": 4}},
        "full": {"train": {"epochs": 8, "dim": 128, "filters": 128, "widths": "2,3,4,5"}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "sst2": DataSource(
                "sst2",
                f"GLUE SST-2 (train.tsv, dev.tsv: sentence<TAB>label) from --path (folder or zip URL), "
                f"the dataset mirror's {SST2_DIR}/, or {SST2_URL}",
                "url",
            )
        }

    def read(self, dcfg: SST2Data):
        with tempfile.TemporaryDirectory() as tmp:
            return read_sst2(locate_sst2(dcfg.path, Path(tmp)))

    def build_model(self, cfg: SentimentConfig, info: dict[str, Any]) -> nn.Module:
        widths = tuple(int(w) for w in cfg.widths.split(","))
        return TextCNN(len(info["vocab"]), cfg.dim, cfg.filters, widths, len(info["classes"]), cfg.dropout)

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        classes = loaded.info["classes"]
        return {
            "label": classes[int(output.argmax())],
            "probability": round(float(output.max()), 6),
            "positive_probability": round(float(output[-1]), 6),
        }
