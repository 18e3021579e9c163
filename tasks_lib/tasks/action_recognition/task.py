"""Action recognition (seed example 20): what a rendered figure does over a clip.

Default data: animations of the pose task's articulated figure (``core.render.action_clip``:
wave, clap, jump, squat, walk, jumping jack, raise arms, lower arms) on real scikit-image
textures, 8 frames of 32 x 32. A UCF101-style folder works too (it is an action dataset).

Model: the video family's (2+1)D CNN (``tasks_lib.families.video``) on the frames. Frames rather than keypoint
sequences from the pose task: the service then takes raw clips and needs no upstream
champion, and pose errors cannot cap the action accuracy. Baseline: the same backbone
trained on the middle frame only (raise_arms and lower_arms, for one, look alike there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tasks_lib.core import expect
from tasks_lib.core.registry import register
from tasks_lib.core.render import ACTIONS, action_clip
from tasks_lib.core.task import Expectation
from tasks_lib.families.video import VideoConfig, VideoData, VideoFamily


@dataclass(frozen=True)
class ActionData(VideoData):
    n_per_class: int = 200


@dataclass(frozen=True)
class ActionConfig(VideoConfig):
    epochs: int = 10


@register
class ActionRecognition(VideoFamily):
    """Actions of animated figures from frames with a (2+1)D CNN (seed example 20)."""

    name = "action_recognition"
    seed_sections = (20,)
    config_cls = ActionConfig
    data_config_cls = ActionData
    generated_description = f"animated stick figures on real scikit-image textures: {', '.join(ACTIONS)}"
    profiles = {
        # 40 per class, not fewer: the split is hash-bucketed, and every class must reach val (10 %)
        "smoke": {"data": {"n_per_class": 40}, "train": {"epochs": 2, "width": 8, "batch_size": 16}},
        "quick": {"data": {"n_per_class": 200}, "train": {"epochs": 10}},
        "full": {"data": {"n_per_class": 1500, "frame_size": 64, "n_frames": 16}, "train": {"epochs": 30, "width": 32}},
    }

    def generate(self, dcfg: ActionData) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
        classes = [a.strip() for a in dcfg.classes.split(",") if a.strip()] or list(ACTIONS)
        unknown = sorted(set(classes) - set(ACTIONS))
        if unknown:
            raise ValueError(f"unknown actions {unknown}; choose from {list(ACTIONS)}")
        rng = np.random.default_rng(dcfg.render_seed)
        clips, labels, areas, inside = [], [], [], []
        for _ in range(dcfg.n_per_class):
            for label, action in enumerate(classes):
                clip, joints, area = action_clip(action, rng, dcfg.n_frames, dcfg.frame_size)
                clips.append(clip)
                labels.append(label)
                areas.append(area.min())
                inside.append(bool(((joints >= 0) & (joints <= dcfg.frame_size)).all()))
        extra = {
            "fps": dcfg.fps,
            "source_frames": dcfg.n_frames,
            "object_area_min": np.round(areas, 2),
            "joints_inside": inside,
        }
        return np.stack(clips), np.asarray(labels, dtype=np.int64), classes, extra

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        exp = super().expectations(info)
        if info["source"] == "generated":
            exp.append(expect.in_set("joints_inside", [True], "every joint of every frame inside the image"))
        return exp
