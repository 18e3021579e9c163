"""The COCO instances reader of object detection (through ``pycocotools.coco.COCO``).

The box metric (COCO mAP by ``COCOeval``) lives in ``tasks_lib.core.coco``, box IoU and NMS in
``tasks_lib.core.boxes``: object tracking scores its detector with the same code.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from tasks_lib.core.coco import load_coco


class CocoDetections(NamedTuple):
    images: np.ndarray  # uint8 NxSxSx3, resized to squares
    boxes: list[np.ndarray]  # per image Kx4 x1y1x2y2 float32, scaled to the square
    labels: list[np.ndarray]  # per image K int64: contiguous class indices in category-id order
    classes: list[str]
    file_names: list[str]
    crowd_boxes: list[np.ndarray]  # per image the crowd regions (ignored by COCOeval, never trained on)
    crowd_labels: list[np.ndarray]


def read_coco(annotation_file: Path, image_dir: Path | None, image_size: int) -> CocoDetections:
    """Read a COCO instances JSON (``pycocotools.coco.COCO``) and its images, resized to ``image_size`` squares.

    Images come in image-id order, opened one at a time. Boxes without area are skipped; crowd
    annotations go to ``crowd_boxes`` (evaluation ignores detections there, training never sees
    them); images without annotations are kept (they have no objects).
    """
    annotation_file = Path(annotation_file)
    coco = load_coco(annotation_file)
    cat_ids = sorted(coco.getCatIds())
    cat_index = {c: i for i, c in enumerate(cat_ids)}
    root = image_dir or annotation_file.parent
    images, boxes, labels, names, crowd_boxes, crowd_labels = [], [], [], [], [], []
    for im in coco.loadImgs(sorted(coco.getImgIds())):
        path = root / im["file_name"]
        if not path.exists() and (root / "images" / im["file_name"]).exists():
            path = root / "images" / im["file_name"]
        with Image.open(path) as pil:
            w, h = pil.size
            images.append(np.asarray(pil.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)))
        sx, sy = image_size / w, image_size / h
        found: dict[bool, tuple[list, list]] = {False: ([], []), True: ([], [])}
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[im["id"]])):
            x, y, bw, bh = ann["bbox"]
            if bw <= 0 or bh <= 0:
                continue
            x1, y1 = max(0.0, x) * sx, max(0.0, y) * sy
            x2, y2 = min(w, x + bw) * sx, min(h, y + bh) * sy
            if x2 > x1 and y2 > y1:
                b, lab = found[bool(ann.get("iscrowd", 0))]
                b.append((x1, y1, x2, y2))
                lab.append(cat_index[ann["category_id"]])
        for is_crowd, (b_out, l_out) in ((False, (boxes, labels)), (True, (crowd_boxes, crowd_labels))):
            b_out.append(np.asarray(found[is_crowd][0], dtype=np.float32).reshape(-1, 4))
            l_out.append(np.asarray(found[is_crowd][1], dtype=np.int64))
        names.append(im["file_name"])
    classes = [c["name"] for c in coco.loadCats(cat_ids)]
    return CocoDetections(np.stack(images), boxes, labels, classes, names, crowd_boxes, crowd_labels)
