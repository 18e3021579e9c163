"""The image classification task: its sources, data, expectations, network and baseline.

Training, metrics, review figures and serving are the image classification family's
(``tasks_lib.families.image_classification``), shared with transfer_learning.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks_lib.core import expect
from tasks_lib.core.backbones import ResidualCNN
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import first_copies, hash_split, split_sizes, subsample, write_labelled_images
from tasks_lib.core.metrics import classification_metrics
from tasks_lib.core.registry import register
from tasks_lib.core.task import DataSource, Expectation, Prepared
from tasks_lib.families.image_classification import ImageClassifierFamily, ImageData
from tasks_lib.tasks.image_classification.readers import (
    CIFAR_DIR,
    CIFAR_URL,
    locate_cifar,
    read_cifar10,
    read_image_folder,
)


@dataclass(frozen=True)
class ImageClassificationData(DataConfig):
    image_size: int = 0  # ImageFolder only: resize to this square size; 0 = keep (all must agree)


@dataclass(frozen=True)
class ImageClassificationConfig(TaskConfig):
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1  # softer targets: better calibrated, less over-confident
    width: int = 32  # channels of the first stage; doubled at each downsampling
    blocks_per_stage: int = 1
    dropout: float = 0.1
    augment: bool = True  # random affine (shift, rotate, scale) + flips where they make sense


@register
class ImageClassification(ImageClassifierFamily):
    """Image classification with a residual CNN sized to the input (seed examples 1, 28)."""

    name = "image_classification"
    seed_sections = (1, 28)
    config_cls = ImageClassificationConfig
    data_config_cls = ImageClassificationData
    default_source = "digits"
    profiles = {
        "smoke": {"data": {"max_samples": 600}, "train": {"epochs": 4, "width": 16}},
        "quick": {"train": {"epochs": 30}},
        "full": {"train": {"epochs": 100, "width": 64, "blocks_per_stage": 2}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "digits": DataSource("digits", "scikit-learn's 1,797 real 8x8 handwritten digits", "package"),
            "cifar10": DataSource(
                "cifar10",
                f"CIFAR-10 python batches ({CIFAR_DIR}/) from --path, the dataset mirror, or {CIFAR_URL}",
                "url",
            ),
            "imagefolder": DataSource(
                "imagefolder", "a class_name/*.png|jpg tree at --path", "folder", needs_path=True
            ),
        }

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: ImageClassificationData, out: Path) -> Prepared:
        if dcfg.source == "digits":
            from sklearn.datasets import load_digits

            digits = load_digits()
            x = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, :, :, None]  # 0-16 -> 0-255
            y, classes, hflip, split = digits.target.astype(np.int64), [str(c) for c in range(10)], False, None
        elif dcfg.source == "cifar10":
            with tempfile.TemporaryDirectory() as tmp:
                parts, classes = read_cifar10(locate_cifar(dcfg.path, Path(tmp)))
            x = np.concatenate([parts["train"][0], parts["test"][0]])
            y = np.concatenate([parts["train"][1], parts["test"][1]])
            split = np.array(["train"] * len(parts["train"][1]) + ["test"] * len(parts["test"][1]), dtype=object)
            hflip = True
        elif dcfg.source == "imagefolder":
            if not dcfg.path:
                raise ValueError("source 'imagefolder' needs --path pointing at a class_name/*.png tree")
            x, y, classes = read_image_folder(Path(dcfg.path), dcfg.image_size)
            hflip, split = False, None
        else:
            raise ValueError(f"unknown source {dcfg.source}")

        # Exact duplicates would let one sample sit in two splits: keep the first copy.
        hashes, keep = first_copies(x)
        n_before = len(hashes)
        x, y, hashes = x[keep], y[keep], hashes[keep]
        split = split[keep] if split is not None else None
        pick = subsample(len(x), dcfg.max_samples, dcfg.split_seed)
        if pick is not None:
            x, y, hashes = x[pick], y[pick], hashes[pick]
            split = split[pick] if split is not None else None
        # Split by content hash, so growing or re-subsampling the pool never moves a sample.
        if split is None:
            split = hash_split(hashes, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
        else:  # the source fixes test; carve validation out of train
            train_idx = np.flatnonzero(split == "train")
            split[train_idx] = hash_split(hashes[train_idx], dcfg.val_fraction, 0.0, dcfg.split_seed)

        # uint8 cannot hold NaN; float sources would set it
        manifest = write_labelled_images(out, x, y, split, hashes, lambda xs, idx: {"has_nan": False})
        train_x = torch.from_numpy(x[split == "train"]).float() / 255
        info = {
            "source": dcfg.source,
            "classes": classes,
            "image_shape": list(x.shape[1:]),
            "hflip": hflip,
            "mean": train_x.mean(dim=(0, 1, 2)).tolist(),
            "std": train_x.std(dim=(0, 1, 2)).clamp_min(1e-3).tolist(),
            "n_samples": split_sizes(split),
            "duplicates_removed": n_before - len(keep),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        h, w, c = info["image_shape"]
        n = len(info["classes"])
        return [
            expect.min_rows(10 * n, "too few samples to train on"),
            *expect.labels_index(n, f"labels index the {n} classes"),
            *expect.image_layout(h, w, c),
            expect.between("pixel_min", 0, 255),
            expect.between("pixel_max", 0, 255),
            expect.in_set("has_nan", [False], "no NaN pixels"),
            expect.all_splits(),
            expect.no_leak(),
            *expect.labels_per_split(list(range(n))),
        ]

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: ImageClassificationConfig, info: dict[str, Any]) -> nn.Module:
        h, w, c = info["image_shape"]
        return ResidualCNN(c, len(info["classes"]), min(h, w), cfg.width, cfg.blocks_per_stage, cfg.dropout)

    def baseline(self, data: ImageData, split: str = "test") -> dict[str, float]:
        """Multinomial logistic regression on raw pixels (at most 10,000 training images)."""
        from sklearn.linear_model import LogisticRegression

        def flat(s: str) -> np.ndarray:
            return data.x[s].reshape(len(data.x[s]), -1).numpy().astype(np.float32) / 255

        n = min(len(data.x["train"]), 10_000)
        clf = LogisticRegression(max_iter=300)
        clf.fit(flat("train")[:n], data.y["train"].numpy()[:n])
        pred = clf.predict(flat(split))
        return classification_metrics(data.y[split].numpy(), pred, len(data.info["classes"]))
