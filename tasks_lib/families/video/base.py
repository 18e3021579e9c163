"""The video family: clip classification with a (2+1)D CNN, shared by video_classification
and action_recognition.

``VideoFamily`` holds everything but the generated data: the folder source (a UCF101-style
``class/clip.avi`` tree, PyAV), the manifest and its expectations, training, metrics, the
single-frame baseline, review figures and serving of clips. A concrete task adds its name,
profiles and ``generate`` (the clips of its default ``generated`` source).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn

from tasks_lib.core import engine, expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import (
    SPLITS,
    SplitTensors,
    add_leak_column,
    hash_split,
    save_split_arrays,
    sha1_bytes,
    split_sizes,
    subsample,
)
from tasks_lib.core.figures import _pyplot, confusion_matrix_figure
from tasks_lib.core.images import frames_from_array
from tasks_lib.core.metrics import classification_metrics, confusion_matrix
from tasks_lib.core.recipes import supervised
from tasks_lib.core.schema import ClassAnswer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.families.video.model import R2Plus1D
from tasks_lib.families.video.readers import read_video_folder

MAX_SIDE = 256  # frames larger than this are refused (413): resize client-side
MIN_SIDE = 8


@dataclass(frozen=True)
class VideoData(DataConfig):
    n_per_class: int = 250  # generated: clips per class
    n_frames: int = 8  # frames per clip (a folder source samples this many evenly)
    frame_size: int = 32  # square side of every frame
    fps: float = 10.0  # generated: nominal frame rate recorded in the manifest
    render_seed: int = 0  # generated: seed of every pixel
    classes: str = ""  # generated: comma-separated subset of the classes (empty = all)


@dataclass(frozen=True)
class VideoConfig(TaskConfig):
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16  # channels of the first stage, doubled at each of the later stages
    stages: int = 3
    dropout: float = 0.1


class ClipData(SplitTensors):
    """Clips in memory: uint8 (N, T, H, W, 3) and int64 labels per split."""


# -- clip helpers --------------------------------------------------------------------------


def normalise(x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    """uint8 (N, T, H, W, C) -> normalised float (N, C, T, H, W)."""
    mean = torch.tensor(info["mean"], device=x.device).view(1, -1, 1, 1, 1)
    std = torch.tensor(info["std"], device=x.device).view(1, -1, 1, 1, 1)
    return (x.permute(0, 4, 1, 2, 3).float() / 255 - mean) / std


def clip_hashes(clips: np.ndarray) -> np.ndarray:
    """The sha1 of each clip's decoded frames: the manifest's ``sha1`` and the key of its split."""
    return np.array([sha1_bytes(c.tobytes()) for c in clips])


def clip_manifest(clips: np.ndarray, labels: np.ndarray, split: np.ndarray, extra: dict[str, Any]) -> pd.DataFrame:
    """One row per clip: label, frame count and size, pixel range, motion energy, sha1 (+ ``extra`` columns)."""
    flat = clips.reshape(len(clips), -1)
    motion = np.abs(np.diff(clips.astype(np.int16), axis=1)).mean(axis=(1, 2, 3, 4))
    df = pd.DataFrame(
        {
            "sample_id": [f"clip/{i}" for i in range(len(clips))],
            "split": split,
            "label": labels,
            "n_frames": clips.shape[1],
            "height": clips.shape[2],
            "width": clips.shape[3],
            "channels": clips.shape[4],
            "pixel_min": flat.min(axis=1),
            "pixel_max": flat.max(axis=1),
            "motion": motion.round(4),
            "sha1": clip_hashes(clips),
            **extra,
        }
    )
    return add_leak_column(df)


def clip_expectations(info: dict[str, Any]) -> list[Expectation]:
    """What must hold of any clip manifest written by :func:`clip_manifest`."""
    n, t, s = len(info["classes"]), info["n_frames"], info["frame_size"]
    return [
        expect.min_rows(4 * n, "too few clips to train on"),
        *expect.labels_index(n, f"labels index the {n} classes"),
        expect.in_set("n_frames", [t], "one clip length"),
        *expect.frame_size(s, s, "one frame size"),
        expect.in_set("channels", [3], "RGB frames"),
        expect.between("pixel_min", 0, 255),
        expect.between("pixel_max", 0, 255),
        expect.between("fps", 1, 240, "a plausible frame rate (0 = the container did not say)"),
        expect.between(
            "motion", 0.01, None, "frames change over the clip: a frozen clip carries no motion to classify"
        ),
        expect.all_splits(),
        expect.no_leak("no clip in two splits (test leakage)"),
        *expect.labels_per_split(list(range(n))),
    ]


def frames_from_request(request: Request, n_frames: int, size: int) -> np.ndarray:
    """The JSON ``array`` (T x H x W x C or T x H x W, values 0-255) as uint8 (T, size, size, 3), or 422/413."""
    frames = frames_from_array(request.get("array"), n_frames, n_frames, MIN_SIDE, MAX_SIDE)
    if frames.shape[1:3] != (size, size):
        frames = np.stack(
            [np.asarray(Image.fromarray(f).resize((size, size), Image.Resampling.BILINEAR)) for f in frames]
        )
    return frames


def clip_bad_requests(n_frames: int, size: int) -> list[tuple[Request, int, str]]:
    ok = np.zeros((n_frames, size, size, 3), dtype=int)
    nan = ok.tolist()
    nan[0][0][0][0] = None  # JSON null: NaN once decoded
    high = ok.copy()
    high[1, 2, 3, 0] = 300
    return [
        ({"array": ok[: max(1, n_frames // 2)].tolist()}, 422, "frames"),
        ({"array": ok[:, :, :, :2].tolist()}, 422, "shape"),
        ({"array": ok[0].tolist()}, 422, "frames"),  # one image: 32 'frames' of 32 x 3
        ({"array": nan}, 422, "NaN"),
        ({"array": high.tolist()}, 422, "0-255"),
        ({"array": [[1, 2], [3]]}, 422, "rectangular"),
        ({"image": b"\x89PNG not really"}, 422, "not used"),
    ]


def clip_strip_figure(clips: np.ndarray, titles: list[str], colors: list[str], suptitle: str, max_frames: int = 8):
    """One row per clip: its frames left to right, the title (pred vs true) on the first frame."""
    plt = _pyplot()
    n, t = len(clips), min(clips.shape[1], max_frames)
    pick = np.linspace(0, clips.shape[1] - 1, t).round().astype(int)
    fig, axes = plt.subplots(n, t, figsize=(1.0 * t, 1.1 * n), squeeze=False)
    for i in range(n):
        for j, k in enumerate(pick):
            ax = axes[i, j]
            ax.imshow(clips[i, k])
            ax.set_xticks([])
            ax.set_yticks([])
        axes[i, 0].set_ylabel(titles[i], fontsize=6, color=colors[i], rotation=0, ha="right", va="center")
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def clip_training(model: nn.Module, x: torch.Tensor, y: torch.Tensor, info, cfg, validate=None) -> Recipe:
    """Supervised clips with normalisation only: flips or time reversal would change the motion class."""
    loss = nn.CrossEntropyLoss(label_smoothing=0.05)
    return supervised(model, x, y, cfg, loss, prepare_batch=lambda b, g: normalise(b, info), validate=validate)


def predict_clips(model: nn.Module, x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
    return engine.predict_batches(model, x, batch_size=128, prepare=lambda b: normalise(b, info))


def single_frame_baseline(x, y, n_classes, info, cfg, split_x, split_y) -> dict[str, float]:
    """The same backbone and recipe trained and tested on the middle frame only (T = 1)."""
    mid = x.shape[1] // 2
    model = R2Plus1D(3, n_classes, cfg.width, cfg.stages, cfg.dropout)
    engine.train(model, clip_training(model, x[:, mid : mid + 1], y, info, cfg), cfg, lambda m, s: None)
    pred = predict_clips(model, split_x[:, mid : mid + 1], info).argmax(1).numpy()
    return classification_metrics(split_y.numpy(), pred, n_classes)


class VideoFamily(Task):
    """Shared base (not registered): classes of clips from a (2+1)D CNN; subclasses add ``generate``."""

    metric = "accuracy"
    request_fields = ("array",)
    answer_model = ClassAnswer
    config_cls = VideoConfig
    data_config_cls = VideoData
    default_source = "generated"
    generated_description: str = ""  # what the generated source draws (shown by `mlzoo sources`)

    def sources(self) -> dict[str, DataSource]:
        return {
            "generated": DataSource("generated", self.generated_description, "generator"),
            "folder": DataSource(
                "folder",
                "a UCF101-style tree at --path: <class>/<clip>.avi|mp4 (PyAV); UCF names _gNN_ put groups 1-7 in test",
                "folder",
                needs_path=True,
            ),
        }

    # -- data -------------------------------------------------------------------
    def generate(self, dcfg: VideoData) -> tuple[np.ndarray, np.ndarray, list[str], dict[str, Any]]:
        """The generated source: (clips, labels, class names, extra manifest columns)."""
        raise NotImplementedError

    def prepare(self, dcfg: VideoData, out: Path) -> Prepared:
        extra: dict[str, Any] = {}
        if dcfg.source == "generated":
            clips, labels, classes, extra = self.generate(dcfg)
            split = hash_split(clip_hashes(clips), dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
            unreadable: list[str] = []
        elif dcfg.source == "folder":
            if not dcfg.path:
                raise ValueError("source 'folder' needs --path pointing at a <class>/<clip>.avi tree")
            r = read_video_folder(Path(dcfg.path), dcfg.n_frames, dcfg.frame_size)
            clips, labels, classes, unreadable = r["clips"], r["labels"], r["classes"], r["unreadable"]
            hashes = clip_hashes(clips)
            if (r["groups"] > 0).all():  # UCF101 naming: official split 1 tests on groups 1-7
                split = np.where(r["groups"] <= 7, "test", "train").astype(object)
                tr = np.flatnonzero(split == "train")
                split[tr] = hash_split(hashes[tr], dcfg.val_fraction, 0.0, dcfg.split_seed)
            else:
                split = hash_split(hashes, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
            extra = {"fps": r["fps"], "source_frames": r["source_frames"], "file": r["names"]}
        else:
            raise ValueError(f"unknown source {dcfg.source}")
        pick = subsample(len(clips), dcfg.max_samples, dcfg.split_seed)
        if pick is not None:
            clips, labels, split = clips[pick], labels[pick], split[pick]
            extra = {k: (np.asarray(v)[pick] if np.ndim(v) else v) for k, v in extra.items()}

        out.mkdir(parents=True, exist_ok=True)
        for s in SPLITS:
            save_split_arrays(out, s, x=clips[split == s], y=labels[split == s])
        manifest = clip_manifest(clips, labels, split, extra)
        train = torch.from_numpy(clips[split == "train"]).float() / 255
        info = {
            "source": dcfg.source,
            "classes": classes,
            "n_frames": dcfg.n_frames,
            "frame_size": dcfg.frame_size,
            "mean": train.mean(dim=(0, 1, 2, 3)).tolist(),
            "std": train.std(dim=(0, 1, 2, 3)).clamp_min(1e-3).tolist(),
            "n_samples": split_sizes(split),
            "unreadable": unreadable,
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        exp = clip_expectations(info)
        if info["source"] == "generated":
            exp.append(
                expect.between(
                    "object_area_min", 4, None, "the moving object is visible (positive area) in every frame"
                )
            )
        return exp

    def load(self, data_dir: Path) -> ClipData:
        return ClipData.load(data_dir)

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: VideoConfig, info: dict[str, Any]) -> nn.Module:
        return R2Plus1D(3, len(info["classes"]), cfg.width, cfg.stages, cfg.dropout)

    def training(self, model: nn.Module, data: ClipData, cfg: VideoConfig) -> Recipe:
        return clip_training(
            model,
            data.x["train"],
            data.y["train"],
            data.info,
            cfg,
            validate=lambda: self.evaluate(model, data, "val", per_class=False),
        )

    def evaluate(self, model: nn.Module, data: ClipData, split: str = "test", per_class: bool = True):
        pred = predict_clips(model, data.x[split], data.info).argmax(1).numpy()
        m = classification_metrics(data.y[split].numpy(), pred, len(data.info["classes"]))
        return m if per_class else {k: v for k, v in m.items() if not k.startswith("acc_class_")}

    def baseline(self, data: ClipData, split: str = "test") -> dict[str, float]:
        """The same backbone (default width, quick-profile epochs) trained on the middle frame alone."""
        cfg = self.config_cls.from_dict(self.profiles["quick"]["train"])
        n = len(data.info["classes"])
        return single_frame_baseline(data.x["train"], data.y["train"], n, data.info, cfg, data.x[split], data.y[split])

    def examples(self, model: nn.Module, data: ClipData) -> dict[str, Any]:
        classes = data.info["classes"]
        x, y = data.x["test"], data.y["test"].numpy()
        pred = predict_clips(model, x, data.info).argmax(1).numpy()
        cm = confusion_matrix(y, pred, len(classes))
        k = min(12, len(x))
        titles = [f"{classes[p]}\n(true {classes[t]})" for p, t in zip(pred[:k], y[:k], strict=True)]
        colors = ["green" if p == t else "red" for p, t in zip(pred[:k], y[:k], strict=True)]
        table = "| class | " + " | ".join(classes) + " |\n|---|" + "---|" * len(classes) + "\n"
        table += "\n".join(
            f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(classes, cm, strict=True)
        )
        return {
            "confusion_matrix.png": confusion_matrix_figure(cm, classes),
            "confusion_matrix.md": "rows: true class, columns: predicted (test split)\n\n" + table + "\n",
            "clip_strips.png": clip_strip_figure(x[:k].numpy(), titles, colors, "predicted (true), test clips"),
        }

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: ClipData, n: int) -> list[Request]:
        return [{"array": clip.tolist()} for clip in data.x["test"][:n].numpy()]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        # the smoke/quick profiles' clip shape; a model with other frames answers the same errors
        return clip_bad_requests(VideoData.n_frames, VideoData.frame_size)

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [frames_from_request(request, loaded.info["n_frames"], loaded.info["frame_size"])]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch))
        return torch.softmax(predict_clips(loaded.module, x, loaded.info), dim=1).numpy()

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        classes = loaded.info["classes"]
        return {
            "label": classes[int(output.argmax())],
            "probabilities": {c: round(float(p), 6) for c, p in zip(classes, output, strict=True)},
        }
