"""The transfer learning task: few labels in a shifted domain, a backbone from the platform's registry.

Target: scikit-learn's digits with inverted ink (dark digits on a light background, as from a
scanner that writes negatives), with only ``labels_per_class`` labelled training images per
class. Why this target: it keeps the 8x8x1 input of image_classification's digits (so the
backbone applies as is) while shifting the pixel statistics the backbone learnt, and it gives
a split that the backbone never trained on: the split is drawn exactly as image_classification
draws it (same dedupe, same stratified split and seed), so this task's val/test images are the
upstream's val/test images (checked by an expectation on ``source_split``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks_lib.core import engine, expect, refs
from tasks_lib.core.backbones import ResidualCNN
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import first_copies, hash_split, split_sizes, write_labelled_images
from tasks_lib.core.registry import register
from tasks_lib.core.task import DataSource, Expectation, Prepared, Recipe
from tasks_lib.families.image_classification import ImageClassifierFamily, ImageData

UPSTREAM = "image_classification"
MODES = ("finetune", "linear_probe", "scratch")


@dataclass(frozen=True)
class TransferData(DataConfig):
    labels_per_class: int = 10  # labelled training images per class (the few-shot budget)
    invert: bool = True  # the domain shift: 255 - pixel


@dataclass(frozen=True)
class TransferConfig(TaskConfig):
    epochs: int = 60
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 5e-4
    # the backbone: a models:/ reference (pinned by the flow, recorded as tag upstream.backbone)
    # or a local bundle folder; "" = no pretrained weights (trains from scratch: the smoke fallback)
    backbone: str = ""
    mode: str = "finetune"  # finetune (all weights) | linear_probe (frozen backbone, new head) | scratch
    # the backbone's architecture, fixed to image_classification's quick profile (checked in fit)
    backbone_width: int = 32
    backbone_blocks: int = 1
    dropout: float = 0.1
    label_smoothing: float = 0.1
    augment: bool = True


class TransferNet(ResidualCNN):
    """ResidualCNN whose backbone stays in eval mode (frozen BN statistics) when linear probing."""

    def __init__(self, *args: Any, frozen: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.frozen = frozen
        if frozen:
            self.features.requires_grad_(False)

    def train(self, mode: bool = True) -> TransferNet:
        super().train(mode)
        if self.frozen:
            self.features.eval()
        return self


@register
class TransferLearning(ImageClassifierFamily):
    """Transfer learning: image_classification's backbone on inverted digits, 10 labels/class (seed example 6)."""

    name = "transfer_learning"
    seed_sections = (6,)
    config_cls = TransferConfig
    data_config_cls = TransferData
    default_source = "digits_inverted"
    profiles = {
        "smoke": {"train": {"epochs": 4, "backbone_width": 16}},
        "quick": {"train": {"epochs": 60, "backbone": f"models:/{UPSTREAM}@champion"}},
        "full": {"train": {"epochs": 100, "backbone": f"models:/{UPSTREAM}@champion"}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "digits_inverted": DataSource(
                "digits_inverted", "scikit-learn's digits, ink inverted, few labelled training images", "package"
            )
        }

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: TransferData, out: Path) -> Prepared:
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, :, :, None]
        y = digits.target.astype(np.int64)
        # exactly image_classification's dedupe and split, so val/test were never the backbone's training data
        hashes, keep = first_copies(x)
        x, y, hashes = x[keep], y[keep], hashes[keep]
        source_split = hash_split(hashes, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
        split = source_split.copy()
        rng = np.random.default_rng(dcfg.split_seed + 1)
        # the few labelled training images per class (a subsample of train only, never of val/test);
        # the other train images are unused
        for c in np.unique(y):
            idx = np.flatnonzero((source_split == "train") & (y == c))
            rng.shuffle(idx)
            split[idx[dcfg.labels_per_class :]] = "unused"
        if dcfg.invert:
            x = 255 - x
        manifest = write_labelled_images(
            out,
            x,
            y,
            split,
            hashes,
            lambda xs, idx: {
                "source_split": source_split[idx],
                "pixel_mean": xs.reshape(len(xs), -1).mean(axis=1).round(2),
            },
        )
        train_x = torch.from_numpy(x[split == "train"]).float() / 255
        info = {
            "source": dcfg.source,
            "classes": [str(c) for c in range(10)],
            "image_shape": list(x.shape[1:]),
            "hflip": False,
            "inverted": dcfg.invert,
            "labels_per_class": dcfg.labels_per_class,
            "mean": train_x.mean(dim=(0, 1, 2)).tolist(),
            "std": train_x.std(dim=(0, 1, 2)).clamp_min(1e-3).tolist(),
            "n_samples": split_sizes(split),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        h, w, c = info["image_shape"]
        n, k = len(info["classes"]), info["labels_per_class"]
        exp = [
            *expect.labels_index(n),
            *expect.image_layout(h, w, c, "8x8 input", "grey", "8 bit"),
            Expectation(
                "expect_table_row_count_to_be_between",
                {"min_value": n * k, "max_value": n * k},
                f"exactly {k} labelled training images per class",
                where={"split": "train"},
            ),
            expect.in_set(
                "source_split", ["test"], "test images must not be ones the backbone trained on", {"split": "test"}
            ),
            expect.in_set(
                "source_split", ["val"], "val images must not be ones the backbone trained on", {"split": "val"}
            ),
            expect.no_leak(""),
        ]
        if info.get("inverted"):
            exp.append(expect.between("pixel_mean", 128, 255, "inverted ink: a light background dominates"))
        return exp + expect.labels_per_split(list(range(n)), "every class in {split}", exact=False)

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: TransferConfig, info: dict[str, Any]) -> nn.Module:
        if cfg.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got '{cfg.mode}'")
        h, _, c = info["image_shape"]
        return TransferNet(
            c,
            len(info["classes"]),
            h,
            cfg.backbone_width,
            cfg.backbone_blocks,
            cfg.dropout,
            frozen=cfg.mode == "linear_probe" and bool(cfg.backbone),
        )

    def load_backbone(self, model: nn.Module, ref: str) -> str:
        """Copy the upstream's ``features`` weights into ``model``; a clear error if they do not fit."""
        up = refs.load(ref)
        if up.task.name != UPSTREAM:
            raise ValueError(f"backbone '{ref}' is a '{up.task.name}' model; expected '{UPSTREAM}'")
        theirs = {
            k.removeprefix("features."): v for k, v in up.module.state_dict().items() if k.startswith("features.")
        }
        ours = model.features.state_dict()
        bad = sorted(k for k in ours if k not in theirs or theirs[k].shape != ours[k].shape)
        bad += sorted(set(theirs) - set(ours))
        if bad:
            up_cfg = up.cfg.to_dict()
            raise ValueError(
                f"backbone '{ref}' (input {up.info['image_shape']}, width={up_cfg.get('width')}, "
                f"blocks_per_stage={up_cfg.get('blocks_per_stage')}) does not match this model "
                f"(backbone_width={model.features[0].out_channels}): mismatched weights {bad[:4]}; "
                "set backbone_width / backbone_blocks to the upstream's width / blocks_per_stage"
            )
        model.features.load_state_dict(theirs)
        return ref

    def training(self, model: nn.Module, data: ImageData, cfg: TransferConfig) -> Recipe:
        if cfg.backbone and cfg.mode != "scratch":
            self.load_backbone(model, cfg.backbone)
        return super().training(model, data, cfg)

    def baseline(self, data: ImageData, split: str = "test") -> dict[str, float]:
        """The same network trained from scratch on the same labelled images with the same budget
        (the quick profile's schedule), deterministic (seed 0)."""
        cfg = self.config_cls.from_dict({**self.profiles["quick"]["train"], "backbone": "", "mode": "scratch"})
        engine.seed_everything(cfg.seed)
        model = self.build_model(cfg, data.info)
        self.fit(model, data, cfg, lambda m, s: None)
        return self.evaluate(model, data, split)
