"""COCO through pycocotools, the reference implementation: box mAP (``COCOeval``) and annotation files (``COCO``).

pycocotools rather than faster-coco-eval: both install here with NumPy 2, pycocotools is the
implementation the COCO leaderboards and torchvision's references score with, and at these
sizes (hundreds of images) its speed does not matter.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

AREAS = ("all", "small", "medium", "large")  # COCO's area ranges: all, < 32², 32²-96², > 96² pixels


def _quiet():
    return contextlib.redirect_stdout(io.StringIO())  # pycocotools prints progress lines


def coco_from_dict(doc: dict):
    """A ``pycocotools.coco.COCO`` indexing an in-memory COCO document."""
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = doc
    with _quiet():
        coco.createIndex()
    return coco


def load_coco(annotation_file: Path, required: tuple[str, ...] = ("images", "annotations", "categories")):
    """A COCO annotation file (instances, keypoints or captions) as a ``pycocotools.coco.COCO``.

    The keys in ``required`` must be present; a readable error names the file otherwise.
    """
    annotation_file = Path(annotation_file)
    doc = json.loads(annotation_file.read_text())
    for key in required:
        if key not in doc:
            raise ValueError(f"{annotation_file} is not a COCO file of this kind: no '{key}'")
    return coco_from_dict(doc)


def coco_map(
    predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    targets: list[tuple],
    n_classes: int,
    max_dets: int = 100,
) -> dict[str, float]:
    """COCO box mAP by ``pycocotools.cocoeval.COCOeval`` (iouType "bbox").

    ``predictions[i] = (boxes Nx4 x1y1x2y2, scores N, labels N)`` for image ``i``;
    ``targets[i] = (boxes Kx4, labels K)`` or ``(boxes, labels, iscrowd K bool)``: a crowd box is
    an ignore region, as in COCO (a detection inside it is neither a hit nor a false positive).
    Labels are class indices ``0 .. n_classes - 1``; at most ``max_dets`` detections per image and class count.

    Returns ``map`` (mAP@[.5:.95], area all), ``map_50``, ``map_75``, ``map_small`` / ``map_medium`` /
    ``map_large`` (COCO's area ranges) and ``ap_class_<c>`` (AP@[.5:.95] of class ``c``). As in COCO,
    a class without ground truth has AP -1 and is left out of the means (-1 when no class has any).
    """
    from pycocotools.cocoeval import COCOeval

    images = [{"id": i + 1} for i in range(len(targets))]
    categories = [{"id": c} for c in range(n_classes)]
    gts, dts = [], []
    for i, target in enumerate(targets):
        boxes, labels = np.asarray(target[0], np.float64).reshape(-1, 4), np.asarray(target[1]).reshape(-1)
        crowd = np.asarray(target[2], bool) if len(target) > 2 else np.zeros(len(labels), bool)
        for (x1, y1, x2, y2), c, is_crowd in zip(boxes.tolist(), labels.tolist(), crowd.tolist(), strict=True):
            w, h = x2 - x1, y2 - y1
            # ids from 1: COCOeval reads an id of 0 as "unmatched"
            gts.append({"image_id": i + 1, "category_id": int(c), "bbox": [x1, y1, w, h], "area": w * h,
                        "iscrowd": int(is_crowd), "id": len(gts) + 1})  # fmt: skip
    for i, (boxes, scores, labels) in enumerate(predictions):
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        scores, labels = np.asarray(scores, np.float64).reshape(-1), np.asarray(labels).reshape(-1)
        for (x1, y1, x2, y2), s, c in zip(boxes.tolist(), scores.tolist(), labels.tolist(), strict=True):
            w, h = x2 - x1, y2 - y1
            dts.append({"image_id": i + 1, "category_id": int(c), "bbox": [x1, y1, w, h], "area": w * h,
                        "score": s, "id": len(dts) + 1})  # fmt: skip
    if len(predictions) != len(targets):
        raise ValueError(f"{len(predictions)} predictions for {len(targets)} images")
    gt = coco_from_dict({"images": images, "categories": categories, "annotations": gts})
    dt = coco_from_dict({"images": images, "categories": categories, "annotations": dts})
    ev = COCOeval(gt, dt, iouType="bbox")
    ev.params.maxDets = [max_dets]
    with _quiet():
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][..., 0]  # (iou thresholds, recall points, classes, areas)

    def mean(p: np.ndarray) -> float:
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else -1.0

    out = {"map": mean(precision[..., 0]), "map_50": mean(precision[0, ..., 0]), "map_75": mean(precision[5, ..., 0])}
    out.update({f"map_{a}": mean(precision[..., k]) for k, a in enumerate(AREAS) if a != "all"})
    out.update({f"ap_class_{c}": mean(precision[:, :, c, 0]) for c in range(n_classes)})
    return out
