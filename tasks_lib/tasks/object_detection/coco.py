"""COCO detection: the box mAP of pycocotools (re-implemented, numpy) and the instances-JSON reader.

``coco_map`` follows ``COCOeval`` for bbox, area range "all", maxDets 100, no crowd regions:
per category and image, detections sorted by score are greedily matched to the unmatched
ground truth with the highest IoU >= t; over all images, precision is made monotone and read
at the 101 recall points 0, 0.01, ..., 1; AP averages those, categories without ground truth
are skipped, mAP averages categories (and, for mAP@[.5:.95], the ten IoU thresholds).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
RECALL_POINTS = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (Nx4 x1y1x2y2) with every box in ``b`` (Mx4), as in pycocotools."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(axis=2)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _match(det_boxes: np.ndarray, gt_boxes: np.ndarray, t: float) -> np.ndarray:
    """True per detection (already sorted by score) that matches a ground truth at IoU >= t."""
    ious = box_iou(det_boxes, gt_boxes)
    taken = np.zeros(len(gt_boxes), dtype=bool)
    tp = np.zeros(len(det_boxes), dtype=bool)
    for d in range(len(det_boxes)):
        best, best_iou = -1, min(t, 1 - 1e-10)
        for g in range(len(gt_boxes)):
            if taken[g] or ious[d, g] < best_iou:
                continue
            best, best_iou = g, ious[d, g]
        if best >= 0:
            taken[best] = tp[d] = True
    return tp


def coco_map(
    predictions: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    targets: list[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    max_dets: int = 100,
) -> dict[str, float]:
    """COCO box mAP. ``predictions[i] = (boxes Nx4, scores N, labels N)``, ``targets[i] = (boxes, labels)``.

    Returns ``map`` (mAP@[.5:.95]), ``map_50``, ``map_75`` and ``ap_class_<c>`` (AP@[.5:.95] per class).
    """
    n_t = len(IOU_THRESHOLDS)
    precision = -np.ones((n_t, len(RECALL_POINTS), n_classes))
    for c in range(n_classes):
        scores, tps, n_gt = [], [[] for _ in range(n_t)], 0
        for (pb, ps, pl), (gb, gl) in zip(predictions, targets, strict=True):
            gb = np.asarray(gb).reshape(-1, 4)[np.asarray(gl) == c]
            keep = np.asarray(pl) == c
            db, ds = np.asarray(pb).reshape(-1, 4)[keep], np.asarray(ps)[keep]
            order = np.argsort(-ds, kind="mergesort")[:max_dets]
            db, ds = db[order], ds[order]
            n_gt += len(gb)
            scores.append(ds)
            for ti, t in enumerate(IOU_THRESHOLDS):
                tps[ti].append(_match(db, gb, t))
        if n_gt == 0:
            continue
        all_scores = np.concatenate(scores) if scores else np.zeros(0)
        order = np.argsort(-all_scores, kind="mergesort")
        for ti in range(n_t):
            tp = np.concatenate(tps[ti])[order] if order.size else np.zeros(0, dtype=bool)
            tp_sum, fp_sum = np.cumsum(tp), np.cumsum(~tp)
            recall = tp_sum / n_gt
            prec = tp_sum / np.maximum(tp_sum + fp_sum, np.spacing(1))
            prec = np.maximum.accumulate(prec[::-1])[::-1] if prec.size else prec  # monotone from the right
            idx = np.searchsorted(recall, RECALL_POINTS, side="left")
            q = np.zeros(len(RECALL_POINTS))
            ok = idx < len(prec)
            q[ok] = prec[idx[ok]]
            precision[ti, :, c] = q

    def mean(p: np.ndarray) -> float:
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else -1.0

    out = {"map": mean(precision), "map_50": mean(precision[0]), "map_75": mean(precision[5])}
    out.update({f"ap_class_{c}": mean(precision[:, :, c]) for c in range(n_classes)})
    return out


def read_coco(annotation_file: Path, image_dir: Path | None, image_size: int) -> tuple:
    """Read a COCO instances JSON and its images, resized to ``image_size`` squares.

    Returns ``(images uint8 NxSxSx3, boxes list of Kx4 x1y1x2y2 float32 (scaled), labels list of K int64
    (contiguous indices in category-id order), class names, file names)``. Crowd annotations and
    boxes without area are skipped; images without annotations are kept (they have no objects).
    """
    annotation_file = Path(annotation_file)
    doc = json.loads(annotation_file.read_text())
    for key in ("images", "annotations", "categories"):
        if key not in doc:
            raise ValueError(f"{annotation_file} is not a COCO instances file: no '{key}'")
    cats = sorted(doc["categories"], key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    per_image: dict[int, list[dict]] = {im["id"]: [] for im in doc["images"]}
    for ann in doc["annotations"]:
        if ann.get("iscrowd", 0) or ann["image_id"] not in per_image:
            continue
        per_image[ann["image_id"]].append(ann)
    root = image_dir or annotation_file.parent
    images, boxes, labels, names = [], [], [], []
    for im in sorted(doc["images"], key=lambda i: i["id"]):
        path = root / im["file_name"]
        if not path.exists() and (root / "images" / im["file_name"]).exists():
            path = root / "images" / im["file_name"]
        with Image.open(path) as pil:
            w, h = pil.size
            images.append(np.asarray(pil.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)))
        sx, sy = image_size / w, image_size / h
        b, lab = [], []
        for ann in per_image[im["id"]]:
            x, y, bw, bh = ann["bbox"]
            if bw <= 0 or bh <= 0:
                continue
            x1, y1 = max(0.0, x) * sx, max(0.0, y) * sy
            x2, y2 = min(w, x + bw) * sx, min(h, y + bh) * sy
            if x2 > x1 and y2 > y1:
                b.append((x1, y1, x2, y2))
                lab.append(cat_index[ann["category_id"]])
        boxes.append(np.asarray(b, dtype=np.float32).reshape(-1, 4))
        labels.append(np.asarray(lab, dtype=np.int64))
        names.append(im["file_name"])
    return np.stack(images), boxes, labels, [c["name"] for c in cats], names
