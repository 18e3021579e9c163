"""Generated tracking sequences: objects of ``core.synthetic`` that move, cross and occlude.

Per sequence: one static background (a real scikit-image texture), 2..max objects (shapes and
digit glyphs, the detector's classes) in a fixed depth order, so when two paths cross the
front object hides the back one. Each moves at a roughly constant velocity (a constant
velocity plus Gaussian jitter per frame). Objects come in pairs whose paths pass through the
same point at about the same time (a crossing, with occlusion); paths may start or end
outside the frame (objects enter and leave). Ground truth per frame is the visible box, as
``render`` measures it; an object less than ``min_visible`` visible is flagged ``conf = 0``
(ignored by the metrics, like MOT's hidden pedestrians), one with no visible pixel has no row.
"""

from __future__ import annotations

import numpy as np

from tasks_lib.core import synthetic
from tasks_lib.tasks.object_tracking.mot import Sequence


def _full_box(o: synthetic.SceneObject, size: int) -> list[float] | None:
    """The object's whole silhouette box (as if nothing hid it), clipped to the frame; None when outside."""
    ys, xs = np.nonzero(synthetic.object_alpha(o.kind, o.size) > 0.5)
    x1, y1 = max(0, o.x + xs.min()), max(0, o.y + ys.min())
    x2, y2 = min(size, o.x + xs.max() + 1), min(size, o.y + ys.max() + 1)
    return [float(x1), float(y1), float(x2), float(y2)] if x2 > x1 and y2 > y1 else None


def generate_sequence(
    rng: np.random.Generator,
    name: str,
    size: int,
    n_frames: int,
    min_objects: int,
    max_objects: int,
    min_object: float,
    max_object: float,
    min_speed: float,
    max_speed: float,
    jitter: float,
    min_visible: float,
    fps: float,
) -> Sequence:
    """One sequence; sizes and speeds are fractions of ``size`` (speed per frame), jitter in pixels."""
    bg = synthetic.background(rng, size)
    n = int(rng.integers(min_objects, max_objects + 1))
    lo, hi = max(4, round(min_object * size)), max(5, round(max_object * size))
    objects = synthetic.random_objects(rng, size, n, min_size=lo, max_size=hi)
    centres = np.zeros((n, n_frames, 2))
    for i in range(n):
        if i % 2 == 0:  # a new crossing: a point in the middle of the frame, a time in the middle of the clip
            meet = rng.uniform(0.25, 0.75, size=2) * size
            t_meet = rng.uniform(0.3, 0.7) * (n_frames - 1)
            angle = rng.uniform(0, 2 * np.pi)
        else:  # the partner crosses at a clearly different angle, a little earlier or later
            angle = angle + rng.uniform(np.pi / 3, 5 * np.pi / 3)
            t_meet = t_meet + rng.uniform(-2, 2)
        speed = rng.uniform(min_speed, max_speed) * size
        v = speed * np.array([np.cos(angle), np.sin(angle)])
        t = np.arange(n_frames)[:, None]
        centres[i] = meet + v * (t - t_meet) + rng.normal(0, jitter, size=(n_frames, 2))
    frames, rows = [], []
    for t in range(n_frames):
        placed = [
            synthetic.SceneObject(o.kind, o.color, o.size, int(round(c[0] - o.size / 2)), int(round(c[1] - o.size / 2)))
            for o, c in zip(objects, centres[:, t], strict=True)
        ]
        img, boxes, visible = synthetic.render(bg, placed, rng)
        frames.append(img)
        for i, (o, box, vis) in enumerate(zip(placed, boxes, visible, strict=True)):
            cls = synthetic.KINDS.index(o.kind) + 1  # MOT classes are 1-based
            if vis >= min_visible:
                rows.append([t + 1, i + 1, *box, 1.0, cls, round(float(vis), 4)])
                continue
            full = _full_box(o, size)  # hidden (mostly): annotated through the occlusion, as MOT does, but ignored
            if full is not None:
                rows.append([t + 1, i + 1, *full, 0.0, cls, round(float(vis), 4)])
    gt = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
    return Sequence(name, np.stack(frames), gt, fps)
