"""The Pascal VOC segmentation layout.

``root`` (or a ``VOCdevkit/VOC2012`` folder below it) holds ``JPEGImages/<id>.jpg``,
``SegmentationClass/<id>.png`` (palette PNGs whose pixel values are class indices,
255 = "void", ignored) and ``ImageSets/Segmentation/{train,val}.txt`` (one id a line).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip


def voc_palette() -> list[int]:
    """The VOC colour map (256 RGB triples, flattened): class i gets the bit-interleaved colour of i."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def locate_voc(path: Path) -> Path:
    """The folder holding JPEGImages/ under ``path`` (itself, or e.g. VOCdevkit/VOC2012)."""
    path = Path(path)
    for cand in [path, *sorted(p.parent for p in path.glob("**/JPEGImages"))]:
        if (cand / "JPEGImages").is_dir() and (cand / "ImageSets" / "Segmentation").is_dir():
            return cand
    raise FileNotFoundError(f"no VOC layout (JPEGImages/, SegmentationClass/, ImageSets/Segmentation/) under {path}")


def read_voc(path: Path, size: int) -> dict[str, dict[str, np.ndarray]]:
    """split ('train', 'val') -> {'x': uint8 NxSxSx3, 'y': uint8 NxSxS, 'ids': ids, 'decoded': bool}.

    Images are resized to size x size (bilinear), masks with nearest neighbour so class
    indices and 255 survive. A file that does not decode gives zeros and decoded=False,
    which validation then refuses (the run stops before training).
    """
    root = locate_voc(path)
    out = {}
    for split in ("train", "val"):
        list_file = root / "ImageSets" / "Segmentation" / f"{split}.txt"
        ids = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
        x = np.zeros((len(ids), size, size, 3), np.uint8)
        y = np.zeros((len(ids), size, size), np.uint8)
        decoded = np.zeros(len(ids), bool)
        for i, sid in enumerate(ids):
            try:
                with Image.open(root / "JPEGImages" / f"{sid}.jpg") as img:
                    x[i] = np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
                with Image.open(root / "SegmentationClass" / f"{sid}.png") as m:
                    if m.mode not in ("P", "L"):
                        raise OSError(f"mask mode {m.mode}, expected a palette (P) or grayscale PNG of class indices")
                    y[i] = np.asarray(m.resize((size, size), Image.Resampling.NEAREST))
                decoded[i] = True
            except OSError:
                decoded[i] = False
        out[split] = {"x": x, "y": y, "ids": np.array(ids, dtype=object), "decoded": decoded}
    return out
