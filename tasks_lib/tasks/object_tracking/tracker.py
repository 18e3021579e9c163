"""Tracking by detection: a SORT-style tracker and the greedy IoU linker it must beat (numpy;
box IoU and NMS are ``torchvision.ops``, through ``tasks_lib.core.boxes``).

Tracker: one constant-velocity Kalman filter per track on the box (cx, cy, w, h), the
detections of each frame assigned to the tracks' predicted boxes by the Hungarian method
(``scipy.optimize.linear_sum_assignment``) on 1 - IoU, gated at ``iou_gate``; a track that
missed its detection coasts on its prediction for up to ``max_age`` frames (so it survives
an occlusion) and is confirmed after ``min_hits`` matched frames. A whole clip is tracked at
once, so a confirmed track keeps its first, tentative frames too; tracks never confirmed
(mostly false detections) are dropped.

Baseline: greedy IoU linking of the same detections frame to frame (best IoU first, no
motion model, no memory: a track ends the first frame it is not found).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linear_sum_assignment

from tasks_lib.core.boxes import box_iou, nms

Detections = list[tuple[np.ndarray, np.ndarray]]  # per frame: (boxes K x 4 x1y1x2y2, scores K)
Track = tuple[int, list[tuple[int, np.ndarray, float]]]  # (id, [(frame index 0-based, box, score), ...])


@dataclass(frozen=True)
class TrackerParams:
    det_score: float = 0.4  # detections below this score are not used
    nms_iou: float = 0.5  # class-agnostic NMS first: the detector's NMS is per class, one object can get two labels
    iou_gate: float = 0.2  # a detection may continue a track only above this IoU with its prediction
    min_hits: int = 3  # matched frames before a track is confirmed
    max_age: int = 6  # frames a track coasts without a detection before it is deleted
    fill_gaps: int = 0  # offline: a track's gaps of at most this many frames get linearly interpolated boxes
    pos_noise: float = 0.05  # Kalman process noise of position, per frame, as a fraction of box size
    vel_noise: float = 0.01  # ... of velocity
    meas_noise: float = 0.05  # measurement noise, as a fraction of box size


def _to_z(box: np.ndarray) -> np.ndarray:
    x1, y1, x2, y2 = box
    return np.array([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1], dtype=np.float64)


def _to_box(z: np.ndarray) -> np.ndarray:
    cx, cy, w, h = z[:4]
    w, h = max(w, 1.0), max(h, 1.0)
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dtype=np.float64)


class KalmanBox:
    """Constant-velocity Kalman filter on (cx, cy, w, h); state (cx, cy, w, h, vx, vy, vw, vh)."""

    F = np.eye(8) + np.eye(8, k=4)
    H = np.eye(4, 8)

    def __init__(self, box: np.ndarray, p: TrackerParams):
        self.p = p
        self.x = np.concatenate([_to_z(box), np.zeros(4)])
        s = self._scale()
        self.P = np.diag(np.r_[[2 * p.meas_noise * s] * 4, [10 * p.vel_noise * s] * 4] ** 2)

    def _scale(self) -> float:
        return max(self.x[2], self.x[3], 1.0)

    def predict(self) -> np.ndarray:
        s = self._scale()
        q = np.diag(np.r_[[self.p.pos_noise * s] * 4, [self.p.vel_noise * s] * 4] ** 2)
        self.x = self.F @ self.x
        self.P = self.F @ self.P @ self.F.T + q
        return _to_box(self.x)

    def update(self, box: np.ndarray) -> None:
        r = np.eye(4) * (self.p.meas_noise * self._scale()) ** 2
        y = _to_z(box) - self.H @ self.x
        s = self.H @ self.P @ self.H.T + r
        k = self.P @ self.H.T @ np.linalg.inv(s)
        self.x = self.x + k @ y
        self.P = (np.eye(8) - k @ self.H) @ self.P

    @property
    def box(self) -> np.ndarray:
        return _to_box(self.x)


@dataclass
class _Track:
    kf: KalmanBox
    hits: int = 1
    misses: int = 0
    confirmed: bool = False
    frames: list[tuple[int, np.ndarray, float]] = field(default_factory=list)


def _renumber(tracks: list[list[tuple[int, np.ndarray, float]]]) -> list[Track]:
    """Ids 1, 2, ... in order of first appearance (then of first box), so output is deterministic."""
    tracks = sorted((t for t in tracks if t), key=lambda t: (t[0][0], *t[0][1].tolist()))
    return [(i, t) for i, t in enumerate(tracks, start=1)]


def select(boxes: np.ndarray, scores: np.ndarray, min_score: float, nms_iou: float) -> tuple[np.ndarray, np.ndarray]:
    """Detections scoring at least ``min_score``, then class-agnostic NMS at ``nms_iou`` (1 = none), best first."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    keep = scores >= min_score
    boxes, scores = boxes[keep], scores[keep]
    chosen = nms(boxes, scores, nms_iou)
    return boxes[chosen], scores[chosen]


def track(detections: Detections, p: TrackerParams) -> list[Track]:
    """Track a clip: per frame detections -> confirmed tracks with their matched boxes."""
    live: list[_Track] = []
    done: list[_Track] = []
    for t, (boxes, scores) in enumerate(detections):
        boxes, scores = select(boxes, scores, p.det_score, p.nms_iou)
        predicted = np.array([tr.kf.predict() for tr in live]).reshape(-1, 4)
        iou = box_iou(predicted, boxes)
        matched_tracks, matched_dets = set(), set()
        if iou.size:
            rows, cols = linear_sum_assignment(1 - iou)
            for r, c in zip(rows, cols, strict=True):
                if iou[r, c] >= p.iou_gate:
                    tr = live[r]
                    tr.kf.update(boxes[c])
                    tr.hits += 1
                    tr.misses = 0
                    tr.frames.append((t, boxes[c], float(scores[c])))
                    tr.confirmed |= tr.hits >= p.min_hits
                    matched_tracks.add(r)
                    matched_dets.add(c)
        still = []
        for i, tr in enumerate(live):
            if i not in matched_tracks:
                tr.misses += 1
            (done if tr.misses > p.max_age else still).append(tr)
        live = still
        for c in range(len(boxes)):
            if c not in matched_dets:
                tr = _Track(KalmanBox(boxes[c], p), confirmed=p.min_hits <= 1)
                tr.frames.append((t, boxes[c], float(scores[c])))
                live.append(tr)
    return _renumber([interpolate(tr.frames, p.fill_gaps) for tr in done + live if tr.confirmed])


def interpolate(frames: list[tuple[int, np.ndarray, float]], max_gap: int) -> list[tuple[int, np.ndarray, float]]:
    """Fill gaps of at most ``max_gap`` frames between two matched frames of one track (score of the lower end)."""
    if max_gap <= 0:
        return frames
    out = [frames[0]]
    for (t0, b0, s0), (t1, b1, s1) in zip(frames, frames[1:], strict=False):
        if 1 < t1 - t0 <= max_gap + 1:
            for t in range(t0 + 1, t1):
                w = (t - t0) / (t1 - t0)
                out.append((t, (1 - w) * b0 + w * b1, min(s0, s1)))
        out.append((t1, b1, s1))
    return out


def greedy_iou_tracks(
    detections: Detections, det_score: float, nms_iou: float = 1.0, iou_threshold: float = 0.3
) -> list[Track]:
    """The baseline: link each frame's detections (selected as the tracker selects them) to the previous
    frame's boxes, best IoU first."""
    finished: list[list] = []
    prev: list[list] = []  # tracks that had a box in the previous frame
    for t, (boxes, scores) in enumerate(detections):
        boxes, scores = select(boxes, scores, det_score, nms_iou)
        iou = box_iou(np.array([tr[-1][1] for tr in prev]).reshape(-1, 4), boxes)
        pairs = sorted(((iou[i, j], i, j) for i in range(iou.shape[0]) for j in range(iou.shape[1])), reverse=True)
        used_t, used_d, now = set(), set(), []
        for v, i, j in pairs:
            if v < iou_threshold:
                break
            if i in used_t or j in used_d:
                continue
            used_t.add(i)
            used_d.add(j)
            prev[i].append((t, boxes[j], float(scores[j])))
            now.append(prev[i])
        finished += [tr for i, tr in enumerate(prev) if i not in used_t]
        now += [[(t, boxes[j], float(scores[j]))] for j in range(len(boxes)) if j not in used_d]
        prev = now
    return _renumber(finished + prev)
