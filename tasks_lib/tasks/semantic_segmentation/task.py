"""Semantic segmentation of generated scenes with a U-Net (seed example 19).

Classes: background, disc, polygon, digit, face (``tasks_lib.core.scenes``), or the 21
Pascal VOC classes from a VOC folder. Everything but the profiles and the baseline is
the segmentation family's (``tasks_lib.families.segmentation``), shared with image_segmentation.
"""

from __future__ import annotations

import numpy as np

from tasks_lib.core.registry import register
from tasks_lib.core.scenes import IGNORE_INDEX
from tasks_lib.families.segmentation import SceneArrays, SegmentationFamily


@register
class SemanticSegmentation(SegmentationFamily):
    """Per-pixel classes with a U-Net; nearest class-mean colour per pixel as the baseline."""

    name = "semantic_segmentation"
    seed_sections = (19,)
    metric = "miou"
    binary = False
    profiles = {
        "smoke": {
            "data": {"n_train": 64, "n_val": 16, "n_test": 16, "image_size": 32, "min_object": 10, "max_object": 18},
            "train": {"epochs": 2, "width": 4, "depth": 2, "batch_size": 16},
        },
        "quick": {"train": {"epochs": 12}},
        "full": {"data": {"n_train": 20000, "n_val": 1000, "n_test": 2000}, "train": {"epochs": 40, "width": 32}},
    }

    def _baseline_masks(self, data: SceneArrays, split: str) -> np.ndarray:
        """Each pixel gets the class whose mean training colour (RGB) is nearest: a per-class colour rule."""
        return colour_rule_masks(
            data.x["train"].numpy(), data.y["train"].numpy(), data.x[split].numpy(), len(data.info["classes"])
        )


def colour_rule_masks(train_x: np.ndarray, train_y: np.ndarray, x: np.ndarray, n_classes: int) -> np.ndarray:
    """Nearest class-mean colour per pixel; class means from training pixels (ignore skipped)."""
    px, lab = train_x.reshape(-1, 3).astype(np.float32), train_y.ravel()
    keep = lab != IGNORE_INDEX
    px, lab = px[keep], lab[keep].astype(np.int64)
    sums = np.zeros((n_classes, 3), np.float64)
    np.add.at(sums, lab, px)
    counts = np.bincount(lab, minlength=n_classes)[:n_classes]
    means = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], np.inf)
    flat = x.reshape(-1, 3).astype(np.float32)
    dist = ((flat[:, None, :] - means[None].astype(np.float32)) ** 2).sum(-1)
    return dist.argmin(1).astype(np.uint8).reshape(x.shape[:3])
