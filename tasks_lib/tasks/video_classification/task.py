"""Video classification (seed example 7): the class is a motion, so no single frame tells it.

Default data: generated clips (``core.render.motion_clip``) of a textured asymmetric object
on a real scikit-image texture, moving right/left/down/up, rotating cw/ccw, growing or
shrinking; 8 frames of 32 x 32 RGB. Other source: a UCF101-style ``class/clip.avi`` tree
(PyAV). Model: a (2+1)D residual CNN. Baseline: the same backbone trained on one frame.
Everything but the generated clips and the profiles is the video family's (``tasks_lib.families.video``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tasks_lib.core.registry import register
from tasks_lib.core.render import MOTIONS, motion_clip
from tasks_lib.families.video import VideoData, VideoFamily


@register
class VideoClassification(VideoFamily):
    """Motion classes from clips with a (2+1)D CNN (seed example 7)."""

    name = "video_classification"
    seed_sections = (7,)
    generated_description = f"textured objects on real scikit-image textures; class = motion ({', '.join(MOTIONS)})"
    profiles = {
        # 40 per class, not fewer: the split is hash-bucketed, and every class must reach val (10 %)
        "smoke": {"data": {"n_per_class": 40}, "train": {"epochs": 2, "width": 8, "batch_size": 16}},
        "quick": {"data": {"n_per_class": 250}, "train": {"epochs": 10}},
        "full": {"data": {"n_per_class": 1500, "frame_size": 64, "n_frames": 16}, "train": {"epochs": 30, "width": 32}},
    }

    def generate(self, dcfg: VideoData) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
        """The generated source: (clips, labels, class names, extra manifest columns)."""
        classes = [m.strip() for m in dcfg.classes.split(",") if m.strip()] or list(MOTIONS)
        unknown = sorted(set(classes) - set(MOTIONS))
        if unknown:
            raise ValueError(f"unknown motions {unknown}; choose from {list(MOTIONS)}")
        rng = np.random.default_rng(dcfg.render_seed)
        clips, labels, areas = [], [], []
        for _ in range(dcfg.n_per_class):
            for label, motion in enumerate(classes):
                clip, area = motion_clip(motion, rng, dcfg.n_frames, dcfg.frame_size)
                clips.append(clip)
                labels.append(label)
                areas.append(area.min())
        extra = {"fps": dcfg.fps, "source_frames": dcfg.n_frames, "object_area_min": np.round(areas, 2)}
        return np.stack(clips), np.asarray(labels, dtype=np.int64), classes, extra
