"""CLEAR-MOT and identity metrics with py-motmetrics, MOTChallenge-style.

Per frame, ground-truth boxes flagged ``conf = 0`` (hidden too much to be required) are
ignore regions, as in the MOTChallenge devkit: a hypothesis matched to one of them (Hungarian,
IoU >= 0.5) is removed before scoring, so it counts neither as a hit nor as a false positive.
The rest is py-motmetrics (its accumulator and metrics) with distance 1 - IoU and a match threshold of IoU 0.5:
MOTA = 1 - (FN + FP + IDSW) / GT, IDF1 = 2 IDTP / (2 IDTP + IDFP + IDFN) (global ID matching),
ID switches, MOTP (reported as the mean IoU of matches, higher is better), precision, recall.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from tasks_lib.core.boxes import box_iou
from tasks_lib.tasks.object_tracking.tracker import Track

MATCH_IOU = 0.5
_NAMES = {
    "mota": "mota",
    "idf1": "idf1",
    "num_switches": "id_switches",
    "motp": "motp",
    "precision": "precision",
    "recall": "recall",
    "num_false_positives": "false_positives",
    "num_misses": "misses",
    "num_objects": "gt_boxes",
    "mostly_tracked": "mostly_tracked",
}


def accumulate(gt: np.ndarray, tracks: list[Track], n_frames: int):
    """One sequence's ``motmetrics.MOTAccumulator``: ``gt`` is the ``mot.COLUMNS`` table, frames 1-based;
    ``tracks`` as the trackers return them (frame indices 0-based)."""
    import motmetrics as mm

    hyp: dict[int, list[tuple[int, np.ndarray]]] = {}
    for tid, frames in tracks:
        for t, box, _score in frames:
            hyp.setdefault(t + 1, []).append((tid, np.asarray(box)))
    acc = mm.MOTAccumulator(auto_id=False)
    for f in range(1, n_frames + 1):
        rows = gt[gt[:, 0] == f]
        care, ignore = rows[rows[:, 6] > 0], rows[rows[:, 6] <= 0]
        h = hyp.get(f, [])
        h_ids = [i for i, _ in h]
        h_boxes = np.array([b for _, b in h]).reshape(-1, 4)
        if len(ignore) and len(h):  # drop hypotheses that cover an ignored (mostly hidden) object
            all_gt = np.r_[care[:, 2:6], ignore[:, 2:6]]
            iou = box_iou(all_gt, h_boxes)
            r, c = linear_sum_assignment(1 - iou)
            drop = {j for i, j in zip(r, c, strict=True) if i >= len(care) and iou[i, j] >= MATCH_IOU}
            keep = [j for j in range(len(h)) if j not in drop]
            h_ids, h_boxes = [h_ids[j] for j in keep], h_boxes[keep]
        # motmetrics.distances.iou_matrix itself, minus its np.asfarray (gone in NumPy 2)
        dist = 1 - box_iou(care[:, 2:6], h_boxes)
        dist = np.where(dist > 1 - MATCH_IOU, np.nan, dist)
        acc.update(care[:, 1].astype(int).tolist(), h_ids, dist, frameid=f)
    return acc


def mot_metrics(sequences: list[tuple[np.ndarray, list[Track], int]]) -> dict[str, float]:
    """Metrics over all ``(gt table, tracks, n_frames)`` sequences together (motmetrics' OVERALL)."""
    import motmetrics as mm

    accs = [accumulate(gt, tracks, n) for gt, tracks, n in sequences]
    mh = mm.metrics.create()
    summary = mh.compute_many(
        accs, metrics=list(_NAMES), names=[str(i) for i in range(len(accs))], generate_overall=True
    )
    row = summary.loc["OVERALL"]
    out = {}
    for key, name in _NAMES.items():
        v = float(row[key])
        out[name] = v if np.isfinite(v) else 0.0
    out["motp"] = 1 - float(row["motp"]) if np.isfinite(row["motp"]) else 0.0  # mean IoU of matched boxes
    if out["gt_boxes"] == 0:
        out["mota"] = out["idf1"] = 0.0
    return out
