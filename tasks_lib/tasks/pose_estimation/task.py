"""Pose estimation (seed example 21): joint heatmaps of articulated figures.

Default data: rendered stick figures (``core.render.pose_sample``: 14 joints, head to
ankles, left side reddish and right side bluish so the sides can be told apart) in varied
poses, scales, tilts and places on real scikit-image textures, 64 x 64. Other source:
COCO keypoints JSON (person crops). Model: a U-Net-ish heatmap network (SimpleBaseline
style). Metric: PCK@0.1 (metric "pck_0.1") of the figure box's longer side. Baseline: the mean pose placed at the box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from pydantic import Field
from torch import nn

from tasks_lib.core import engine, expect
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, hash_split, read_info, sha1_bytes, split_sizes
from tasks_lib.core.figures import blank_grid
from tasks_lib.core.images import image_from_request, normalise_nhwc, png_bytes
from tasks_lib.core.recipes import supervised
from tasks_lib.core.registry import register
from tasks_lib.core.render import BONES, JOINTS, pose_sample
from tasks_lib.core.schema import Answer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.pose_estimation.model import HeatmapNet
from tasks_lib.tasks.pose_estimation.readers import read_coco_keypoints

SKELETON = [[JOINTS.index(a), JOINTS.index(b)] for a, b in BONES if a in JOINTS and b in JOINTS]
SKELETON += [[JOINTS.index("neck"), JOINTS.index(h)] for h in ("r_hip", "l_hip")]  # pelvis is not a joint


@dataclass(frozen=True)
class PoseData(DataConfig):
    n_images: int = 2000  # generated: number of figures
    image_size: int = 64  # square input side
    render_seed: int = 0
    annotations: str = ""  # coco: the person_keypoints_*.json (default: --path/annotations/*.json)


@dataclass(frozen=True)
class PoseConfig(TaskConfig):
    epochs: int = 8
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 16
    sigma: float = 1.0  # target Gaussian's std in heatmap cells


@dataclass
class PoseSet:
    """uint8 NHWC images, (N, K, 3) keypoints (x, y, visible) in pixels, (N, 4) boxes x0 y0 x1 y1."""

    x: dict[str, torch.Tensor]
    kp: dict[str, torch.Tensor]
    box: dict[str, np.ndarray]
    info: dict[str, Any]


def pck(pred: np.ndarray, gt: np.ndarray, visible: np.ndarray, ref: np.ndarray, alpha: float = 0.1) -> float:
    """Percentage of correct keypoints: share of visible joints within ``alpha * ref`` of the truth.

    pred, gt: (N, K, 2); visible: (N, K) 0/1; ref: (N,) reference length per sample.
    """
    dist = np.linalg.norm(pred - gt, axis=-1)
    ok = (dist <= alpha * ref[:, None]) & (visible > 0)
    return float(ok.sum() / max(visible.sum(), 1))


def box_size(box: np.ndarray) -> np.ndarray:
    """Longer side of each x0 y0 x1 y1 box."""
    return np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1])


def heatmap_targets(kp: torch.Tensor, shape: tuple[int, int], stride: int, sigma: float) -> torch.Tensor:
    """Gaussian at each joint, heatmap cell c centred on pixel (c + 0.5) * stride."""
    h, w = shape
    u = kp[..., 0] / stride - 0.5
    v = kp[..., 1] / stride - 0.5
    gx = torch.arange(w, device=kp.device, dtype=torch.float32).view(1, 1, 1, w)
    gy = torch.arange(h, device=kp.device, dtype=torch.float32).view(1, 1, h, 1)
    return torch.exp(-((gx - u[..., None, None]) ** 2 + (gy - v[..., None, None]) ** 2) / (2 * sigma**2))


def decode_heatmaps(hm: torch.Tensor, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, H, W) -> (N, K, 2) pixel coordinates and (N, K) confidences.

    Argmax, then a quarter-cell shift towards the larger neighbour (SimpleBaseline's rule).
    """
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, -1)
    conf, idx = flat.max(-1)
    ys, xs = (idx // w).float(), (idx % w).float()
    hp = torch.nn.functional.pad(hm, (1, 1, 1, 1), mode="replicate")
    xi, yi = (idx % w) + 1, (idx // w) + 1
    b = torch.arange(n).view(n, 1).expand(n, k)
    c = torch.arange(k).view(1, k).expand(n, k)
    dx = hp[b, c, yi, xi + 1] - hp[b, c, yi, xi - 1]
    dy = hp[b, c, yi + 1, xi] - hp[b, c, yi - 1, xi]
    xs = xs + 0.25 * torch.sign(dx)
    ys = ys + 0.25 * torch.sign(dy)
    xy = torch.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], -1)
    return xy.numpy(), conf.clamp(0, 1).numpy()


def skeleton_figure(images, pred, gt, skeleton, titles, suptitle, cols: int = 6):
    """Predicted skeletons (yellow, dots = joints) over images, the truth as thin white lines."""
    fig, axes = blank_grid(len(images), cols, 1.8, 1.95)
    for ax, img, p, g, title in zip(axes.flat, images, pred, gt, titles, strict=False):
        ax.imshow(img, extent=(0, img.shape[1], img.shape[0], 0))
        for a, b in skeleton:
            if g is not None and g[a, 2] > 0 and g[b, 2] > 0:
                ax.plot([g[a, 0], g[b, 0]], [g[a, 1], g[b, 1]], "-", color="white", lw=0.6)
            ax.plot([p[a, 0], p[b, 0]], [p[a, 1], p[b, 1]], "-", color="yellow", lw=1.0)
        ax.scatter(p[:, 0], p[:, 1], s=4, c="red")
        ax.set_title(title, fontsize=7)
    fig.suptitle(suptitle, fontsize=9)
    fig.tight_layout()
    return fig


def _noise_png() -> bytes:
    """A 32x32 noise PNG (about 3 kB, so cutting it in half leaves a truncated image)."""
    return png_bytes(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8))


class Keypoint(Answer):
    name: str
    x: float
    y: float
    confidence: float


class PoseAnswer(Answer):
    keypoints: list[Keypoint]
    skeleton: list[list[int]] = Field(description="pairs of keypoint indices that are joined")


@register
class PoseEstimation(Task):
    """Heatmap keypoint network on rendered articulated figures (seed example 21)."""

    name = "pose_estimation"
    seed_sections = (21,)
    metric = "pck_0.1"
    request_fields = ("image",)
    answer_model = PoseAnswer
    config_cls = PoseConfig
    data_config_cls = PoseData
    default_source = "generated"
    profiles = {
        "smoke": {"data": {"n_images": 80}, "train": {"epochs": 2, "width": 8, "batch_size": 16}},
        "quick": {"data": {"n_images": 2000}, "train": {"epochs": 8}},
        "full": {"data": {"n_images": 40000, "image_size": 128}, "train": {"epochs": 60, "width": 48}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "generated": DataSource(
                "generated", f"rendered {len(JOINTS)}-joint figures on real scikit-image textures", "generator"
            ),
            "coco": DataSource(
                "coco",
                "COCO keypoints: --path is the image folder; data key 'annotations' the person_keypoints_*.json",
                "folder",
                needs_path=True,
            ),
        }

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: PoseData, out: Path) -> Prepared:
        s = dcfg.image_size
        if dcfg.source == "generated":
            rng = np.random.default_rng(dcfg.render_seed)
            imgs, kps, boxes = [], [], []
            for _ in range(dcfg.n_images):
                img, xy, box = pose_sample(rng, s)
                imgs.append(img)
                kps.append(np.concatenate([xy, np.ones((len(xy), 1))], 1))
                boxes.append(box)
            x, kp, box = np.stack(imgs), np.stack(kps), np.stack(boxes)
            keys = [sha1_bytes(im.tobytes()) for im in x]  # each figure is its own sample
            joints, skeleton = list(JOINTS), SKELETON
            flip_pairs = [[2, 5], [3, 6], [4, 7], [8, 11], [9, 12], [10, 13]]
        elif dcfg.source == "coco":
            if not dcfg.path:
                raise ValueError("source 'coco' needs --path (the image folder) and data key 'annotations'")
            ann = Path(dcfg.annotations) if dcfg.annotations else next(Path(dcfg.path).glob("annotations/*.json"))
            r = read_coco_keypoints(ann, Path(dcfg.path), s)
            x, kp, box, joints = r["images"], r["keypoints"], r["boxes"], r["joints"]
            keys = r["image_files"]  # crops of one photo overlap: its people share a split
            skeleton = [[a - 1, b - 1] for a, b in r["skeleton"]]  # COCO numbers joints from 1
            flip_pairs = []
        else:
            raise ValueError(f"unknown source {dcfg.source}")
        if dcfg.max_samples and len(x) > dcfg.max_samples:
            x, kp, box = x[: dcfg.max_samples], kp[: dcfg.max_samples], box[: dcfg.max_samples]
            keys = keys[: dcfg.max_samples]
        n = len(x)
        split = hash_split(keys, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)  # stable under growth

        out.mkdir(parents=True, exist_ok=True)
        for sp in SPLITS:
            np.save(out / f"{sp}_x.npy", x[split == sp])
            np.save(out / f"{sp}_kp.npy", kp[split == sp].astype(np.float32))
            np.save(out / f"{sp}_box.npy", box[split == sp].astype(np.float32))
        vis = kp[:, :, 2] > 0
        kx = np.where(vis, kp[:, :, 0], np.nan)
        ky = np.where(vis, kp[:, :, 1], np.nan)
        manifest = add_leak_column(
            pd.DataFrame(
                {
                    "sample_id": [f"figure/{i}" for i in range(n)],
                    "split": split,
                    "height": x.shape[1],
                    "width": x.shape[2],
                    "channels": x.shape[3],
                    "n_visible": vis.sum(1),
                    "kp_x_min": np.nanmin(kx, 1).round(3),
                    "kp_x_max": np.nanmax(kx, 1).round(3),
                    "kp_y_min": np.nanmin(ky, 1).round(3),
                    "kp_y_max": np.nanmax(ky, 1).round(3),
                    "box_w": (box[:, 2] - box[:, 0]).round(3),
                    "box_h": (box[:, 3] - box[:, 1]).round(3),
                    "box_area": ((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])).round(3),
                    "sha1": [sha1_bytes(im.tobytes()) for im in x],
                }
            )
        )
        tr = torch.from_numpy(x[split == "train"]).float() / 255
        info = {
            "source": dcfg.source,
            "joints": joints,
            "skeleton": skeleton,
            "flip_pairs": flip_pairs,
            "image_size": s,
            "mean": tr.mean(dim=(0, 1, 2)).tolist(),
            "std": tr.std(dim=(0, 1, 2)).clamp_min(1e-3).tolist(),
            "n_samples": split_sizes(split),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        s, k = info["image_size"], len(info["joints"])
        between = "expect_column_values_to_be_between"
        return [
            expect.min_rows(20, "too few figures to train on"),
            *expect.frame_size(s, s, "one size"),
            expect.in_set("channels", [3], "RGB"),
            Expectation(between, {"column": "n_visible", "min_value": 1, "max_value": k}, "some joint labelled"),
            *[
                Expectation(between, {"column": c, "min_value": 0, "max_value": s}, "keypoints inside the image")
                for c in ("kp_x_min", "kp_x_max", "kp_y_min", "kp_y_max")
            ],
            Expectation(between, {"column": "box_w", "min_value": 1, "max_value": 2 * s}, "positive box width"),
            Expectation(between, {"column": "box_h", "min_value": 1, "max_value": 2 * s}, "positive box height"),
            Expectation(between, {"column": "box_area", "min_value": 1}, "positive box area"),
            expect.all_splits(),
            expect.no_leak("no image in two splits (test leakage)"),
        ]

    def load(self, data_dir: Path) -> PoseSet:
        d = Path(data_dir)
        return PoseSet(
            x={s: torch.from_numpy(np.load(d / f"{s}_x.npy")) for s in SPLITS},
            kp={s: torch.from_numpy(np.load(d / f"{s}_kp.npy")) for s in SPLITS},
            box={s: np.load(d / f"{s}_box.npy") for s in SPLITS},
            info=read_info(d),
        )

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: PoseConfig, info: dict[str, Any]) -> nn.Module:
        return HeatmapNet(len(info["joints"]), cfg.width)

    def training(self, model: nn.Module, data: PoseSet, cfg: PoseConfig) -> Recipe:
        def loss(hm: torch.Tensor, kp: torch.Tensor) -> torch.Tensor:
            target = heatmap_targets(kp, hm.shape[-2:], HeatmapNet.stride, cfg.sigma)
            w = kp[..., 2][..., None, None]
            return (((hm.float() - target) ** 2) * w).mean() * 100  # x100: keeps the loss near 1

        return supervised(
            model,
            data.x["train"],
            data.kp["train"],
            cfg,
            loss,
            prepare_batch=lambda b, g: normalise_nhwc(b, data.info),
            validate=lambda: self.evaluate(model, data, "val"),
        )

    def _predict(self, model: nn.Module, x: torch.Tensor, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        hm = engine.predict_batches(model, x, batch_size=256, prepare=lambda b: normalise_nhwc(b, info))
        return decode_heatmaps(hm, HeatmapNet.stride)

    def _scores(self, pred: np.ndarray, data: PoseSet, split: str) -> dict[str, float]:
        kp, ref = data.kp[split].numpy(), box_size(data.box[split])
        out = {
            "pck_0.1": pck(pred, kp[..., :2], kp[..., 2], ref, 0.1),
            "pck_0.2": pck(pred, kp[..., :2], kp[..., 2], ref, 0.2),
            "pck_0.05": pck(pred, kp[..., :2], kp[..., 2], ref, 0.05),
        }
        dist = np.linalg.norm(pred - kp[..., :2], axis=-1)
        out["mean_error_px"] = float((dist * kp[..., 2]).sum() / max(kp[..., 2].sum(), 1))
        for j, name in enumerate(data.info["joints"]):
            out[f"pck_0.1_{name}"] = pck(pred[:, j : j + 1], kp[:, j : j + 1, :2], kp[:, j : j + 1, 2], ref, 0.1)
        return out

    def evaluate(self, model: nn.Module, data: PoseSet, split: str = "test") -> dict[str, float]:
        return self._scores(self._predict(model, data.x[split], data.info)[0], data, split)

    def baseline(self, data: PoseSet, split: str = "test") -> dict[str, float]:
        """The training set's mean pose, in box-normalised coordinates, placed in each figure's true box."""

        def normed(kp: np.ndarray, box: np.ndarray) -> np.ndarray:
            wh = np.maximum(box[:, 2:] - box[:, :2], 1e-6)
            return (kp[..., :2] - box[:, None, :2]) / wh[:, None]

        kp_tr = data.kp["train"].numpy()
        z = normed(kp_tr, data.box["train"])
        w = kp_tr[..., 2:3]
        mean = (z * w).sum(0) / np.maximum(w.sum(0), 1)  # (K, 2)
        box = data.box[split]
        pred = box[:, None, :2] + mean[None] * (box[:, 2:] - box[:, :2])[:, None]
        return self._scores(pred, data, split)

    def examples(self, model: nn.Module, data: PoseSet) -> dict[str, Any]:
        k = min(18, len(data.x["test"]))
        x, kp = data.x["test"][:k], data.kp["test"][:k].numpy()
        pred, conf = self._predict(model, x, data.info)
        ref = box_size(data.box["test"][:k])
        titles = [
            f"PCK {pck(p[None], g[None, :, :2], g[None, :, 2], r[None]):.2f}"
            for p, g, r in zip(pred, kp, ref, strict=True)
        ]
        fig = skeleton_figure(
            x.numpy(), pred, kp, data.info["skeleton"], titles, "predicted (yellow) vs true (white), test"
        )
        rows = [f"| {n} | {v:.3f} |" for n, v in self.evaluate(model, data, "test").items() if n.startswith("pck_0.1_")]
        return {"skeletons.png": fig, "per_joint_pck.md": "| joint | PCK@0.1 |\n|---|---|\n" + "\n".join(rows) + "\n"}

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: PoseSet, n: int) -> list[Request]:
        return [{"image": png_bytes(img)} for img in data.x["test"][:n].numpy()]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"image": b"just some text"}, 415, "not an image"),
            ({"image": _noise_png()[:1500]}, 400, "could not be decoded"),
            ({"image": png_bytes(np.zeros((2, 2, 3), np.uint8))}, 422, "too small"),
            ({"text": "a person"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        """The image squashed to the model's square input; the original size rides along for rescaling."""
        img = image_from_request(request).convert("RGB")
        s = loaded.info["image_size"]
        arr = np.asarray(img.resize((s, s), Image.Resampling.BILINEAR), dtype=np.uint8)
        return [(arr, img.width, img.height)]

    def forward(self, loaded: LoadedModel, batch: list) -> list:
        x = torch.from_numpy(np.stack([a for a, _, _ in batch]))
        xy, conf = self._predict(loaded.module, x, loaded.info)
        s = loaded.info["image_size"]
        return [(p * np.array([w / s, h / s]), c) for p, c, (_, w, h) in zip(xy, conf, batch, strict=True)]

    batchable = False  # items carry their original size for rescaling

    def postprocess(self, loaded: LoadedModel, output) -> dict[str, Any]:
        xy, conf = output
        return {
            "keypoints": [
                {"name": n, "x": round(float(p[0]), 2), "y": round(float(p[1]), 2), "confidence": round(float(c), 4)}
                for n, p, c in zip(loaded.info["joints"], xy, conf, strict=True)
            ],
            "skeleton": [[int(a), int(b)] for a, b in loaded.info["skeleton"]],
        }
