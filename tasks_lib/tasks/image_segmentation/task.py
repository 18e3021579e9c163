"""Foreground segmentation of generated scenes with a U-Net (seed example 12).

The binary (foreground) task of the segmentation family (``tasks_lib.families.segmentation``:
data, U-Net, training, metrics, figures, serving); its own are the profiles and the Otsu baseline.
"""

from __future__ import annotations

import numpy as np

from tasks_lib.core.registry import register
from tasks_lib.families.segmentation import SceneArrays, SegmentationFamily


@register
class ImageSegmentation(SegmentationFamily):
    """Foreground/background masks with a U-Net; Otsu thresholding as the baseline (seed example 12)."""

    name = "image_segmentation"
    seed_sections = (12,)
    metric = "iou"  # foreground IoU over all test pixels
    binary = True
    profiles = {
        "smoke": {
            "data": {"n_train": 64, "n_val": 16, "n_test": 16, "image_size": 32, "min_object": 10, "max_object": 18},
            "train": {"epochs": 2, "width": 4, "depth": 2, "batch_size": 16},
        },
        "quick": {"train": {"epochs": 10}},
        "full": {"data": {"n_train": 20000, "n_val": 1000, "n_test": 2000}, "train": {"epochs": 40, "width": 32}},
    }

    def _baseline_masks(self, data: SceneArrays, split: str) -> np.ndarray:
        """Otsu's threshold on grey levels, per image; the side covering most of the border is background."""
        return otsu_masks(data.x[split].numpy())


def otsu_masks(images: np.ndarray) -> np.ndarray:
    """Per image: Otsu threshold on luminance; foreground = the side that owns less of the border."""
    from skimage.filters import threshold_otsu

    out = np.zeros(images.shape[:3], np.uint8)
    for i, img in enumerate(images):
        grey = img.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        if grey.max() == grey.min():
            continue
        above = grey > threshold_otsu(grey)
        border = np.concatenate([above[0], above[-1], above[:, 0], above[:, -1]])
        out[i] = ~above if border.mean() > 0.5 else above
    return out
