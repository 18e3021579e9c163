"""The non-learned reference: a colour-blob detector.

Objects are saturated, backgrounds grey: pixels whose RGB spread exceeds a threshold are
split by nearest palette colour into connected components; each component (area >= 12 px)
is a detection. Its class is the majority vote of the 5 nearest training blobs (matched to
ground truth at IoU >= 0.5) on an 8x8 resampling of the blob's mask plus its aspect ratio;
the score is the vote share. Occluding same-coloured objects merge into one blob, which is
exactly where a learned detector should win.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from tasks_lib.core.boxes import box_iou
from tasks_lib.core.synthetic import COLORS

PALETTE = np.array(list(COLORS.values()), dtype=np.float32)


def blobs(img: np.ndarray, min_spread: float = 70, min_area: int = 12) -> list[tuple[np.ndarray, np.ndarray]]:
    """(box x1y1x2y2, feature vector) per saturated connected component of one colour."""
    f = img.astype(np.float32)
    saturated = (f.max(axis=2) - f.min(axis=2)) > min_spread
    colour = np.argmin(((f[:, :, None, :] - PALETTE[None, None]) ** 2).sum(-1), axis=2)
    out = []
    for c in range(len(PALETTE)):
        comp, n = ndimage.label(saturated & (colour == c))
        for k, sl in enumerate(ndimage.find_objects(comp), start=1):
            if sl is None:
                continue
            mask = comp[sl] == k
            if mask.sum() < min_area:
                continue
            y0, y1, x0, x1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
            small = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize((8, 8), Image.Resampling.BOX))
            aspect = np.log((x1 - x0) / (y1 - y0))
            out.append((np.array([x0, y0, x1, y1], dtype=np.float32), np.append(small.ravel() / 255, 2 * aspect)))
    return out


class BlobDetector:
    def __init__(self, k: int = 5):
        self.k = k
        self.features = np.zeros((0, 65))
        self.labels = np.zeros(0, dtype=np.int64)

    def fit(self, images: np.ndarray, boxes: list[np.ndarray], labels: list[np.ndarray]) -> BlobDetector:
        feats, labs = [], []
        for img, gb, gl in zip(images, boxes, labels, strict=True):
            found = blobs(img)
            if not found or not len(gb):
                continue
            iou = box_iou(np.stack([b for b, _ in found]), gb)
            for (_, feat), row in zip(found, iou, strict=True):
                if row.max() >= 0.5:
                    feats.append(feat)
                    labs.append(gl[int(row.argmax())])
        if feats:
            self.features, self.labels = np.stack(feats), np.asarray(labs, dtype=np.int64)
        return self

    def detect(self, img: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = blobs(img)
        if not found or not len(self.labels):
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
        boxes = np.stack([b for b, _ in found])
        feats = np.stack([f for _, f in found])
        d = ((feats[:, None, :] - self.features[None]) ** 2).sum(-1)
        near = np.argsort(d, axis=1, kind="stable")[:, : self.k]
        votes = self.labels[near]
        labels = np.array([np.bincount(v).argmax() for v in votes], dtype=np.int64)
        scores = (votes == labels[:, None]).mean(1).astype(np.float32)
        return boxes, scores, labels
