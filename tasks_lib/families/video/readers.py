"""Reader of the UCF101-style layout: ``root/<class_name>/<clip>.avi|mp4`` decoded with PyAV."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

VIDEO_SUFFIXES = {".avi", ".mp4", ".mkv", ".mov", ".webm"}
UCF_GROUP = re.compile(r"_g(\d+)_c\d+", re.IGNORECASE)  # v_ApplyEyeMakeup_g08_c01.avi


def square_resize(frame: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop an H x W x 3 uint8 frame to a square and resize it to ``size`` x ``size``."""
    h, w = frame.shape[:2]
    side = min(h, w)
    y0, x0 = (h - side) // 2, (w - side) // 2
    img = Image.fromarray(np.ascontiguousarray(frame[y0 : y0 + side, x0 : x0 + side]))
    if side != size:
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.uint8)


def read_clip(path: Path, n_frames: int, size: int) -> tuple[np.ndarray, float, int]:
    """``n_frames`` frames spread evenly over the clip, square-resized: (T x S x S x 3, fps, frames in file)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate) if stream.average_rate else 0.0
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        raise ValueError(f"{path}: no video frames could be decoded")
    pick = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
    return np.stack([square_resize(frames[i], size) for i in pick]), fps, len(frames)


def read_video_folder(root: Path, n_frames: int, size: int) -> dict:
    """Every clip under ``root/<class>/``: clips, labels, class names, fps, file frame counts, UCF groups.

    Files PyAV cannot decode are skipped and listed under ``unreadable``.
    """
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise ValueError(f"{root}: no class folders (expected <class_name>/<clip>.avi|mp4)")
    clips, labels, fps, lengths, groups, names, unreadable = [], [], [], [], [], [], []
    for label, cls in enumerate(classes):
        for f in sorted((root / cls).iterdir()):
            if f.suffix.lower() not in VIDEO_SUFFIXES:
                continue
            try:
                clip, rate, n = read_clip(f, n_frames, size)
            except Exception as exc:  # noqa: BLE001 (PyAV raises many types for broken files)
                unreadable.append(f"{cls}/{f.name}: {type(exc).__name__}")
                continue
            m = UCF_GROUP.search(f.stem)
            clips.append(clip)
            labels.append(label)
            fps.append(rate)
            lengths.append(n)
            groups.append(int(m.group(1)) if m else -1)
            names.append(f"{cls}/{f.name}")
    if not clips:
        raise ValueError(f"{root}: no readable clips with suffixes {sorted(VIDEO_SUFFIXES)}")
    return {
        "clips": np.stack(clips),
        "labels": np.asarray(labels, dtype=np.int64),
        "classes": classes,
        "fps": np.asarray(fps),
        "source_frames": np.asarray(lengths),
        "groups": np.asarray(groups),
        "names": names,
        "unreadable": unreadable,
    }
