"""The segmentation family: per-pixel classes of scenes with a U-Net, shared by
image_segmentation (binary foreground) and semantic_segmentation (per class).

``SegmentationFamily`` holds everything the two tasks share: data from
``tasks_lib.core.scenes`` or a Pascal VOC folder, U-Net training, metrics, review figures,
serving of masks. A concrete task adds its name, profiles, ``binary`` and ``_baseline_masks``.
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
from tasks_lib.core.data import (
    SPLITS,
    SplitTensors,
    add_leak_column,
    hash_split,
    save_split_arrays,
    sha1_bytes,
    split_sizes,
)
from tasks_lib.core.images import image_from_request, normalise_nhwc, png_bytes, to_model_array
from tasks_lib.core.recipes import supervised
from tasks_lib.core.scenes import (
    IGNORE_INDEX,
    SCENE_CLASSES,
    SceneSpec,
    generate_scenes,
    pixel_confusion,
    segmentation_scores,
)
from tasks_lib.core.schema import MEDIA, Answer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.families.segmentation.model import UNet
from tasks_lib.families.segmentation.readers import VOC_CLASSES, read_voc, voc_palette


@dataclass(frozen=True)
class SegmentationData(DataConfig):
    image_size: int = 48  # scenes are drawn at, and VOC images resized to, this square size
    n_train: int = 2400  # generated scenes per split
    n_val: int = 200
    n_test: int = 400
    min_objects: int = 1
    max_objects: int = 3
    min_object: int = 16  # object side range, pixels
    max_object: int = 28
    scene_seed: int = 0  # seeds the scenes and which digit/face instances each split may use


@dataclass(frozen=True)
class SegmentationConfig(TaskConfig):
    epochs: int = 12
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 12  # U-Net channels at full resolution, doubled per level
    depth: int = 3  # downsamplings


class SceneArrays(SplitTensors):
    """Prepared scenes in memory: uint8 NHWC images and uint8 NHW masks per split."""


class SegmentationAnswer(Answer):
    height: int
    width: int
    area: dict[str, int] = Field(description="pixels per class")
    area_fraction: dict[str, float]
    media_base64: str = MEDIA


class SegmentationFamily(Task):
    """Shared base (not registered): per-pixel classes of ``info['classes']`` with a U-Net."""

    binary: bool = False
    request_fields = ("image", "array")
    answer_model = SegmentationAnswer
    output_media = "image/png"
    batchable = True  # every request is resized to the model's input size; sizes ride along (see parse_request)
    config_cls = SegmentationConfig
    data_config_cls = SegmentationData
    default_source = "scenes"

    def sources(self) -> dict[str, DataSource]:
        return {
            "scenes": DataSource(
                "scenes",
                "generated scenes (tasks_lib.core.scenes): discs, polygons, sklearn digits and lfw faces "
                "on scikit-image textures, exact masks",
                "generator",
            ),
            "voc": DataSource(
                "voc",
                "a Pascal VOC folder at --path: JPEGImages/, SegmentationClass/ (palette PNGs, 255 = ignore), "
                "ImageSets/Segmentation/{train,val}.txt (val is the test split; validation is carved from train)",
                "folder",
                needs_path=True,
            ),
        }

    # -- data -------------------------------------------------------------------
    def _classes(self, source: str) -> list[str]:
        if self.binary:
            return ["background", "foreground"]
        return list(SCENE_CLASSES if source == "scenes" else VOC_CLASSES)

    def _read(self, dcfg: SegmentationData) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """split -> (images, masks, decoded flags), masks in the source's own classes."""
        if dcfg.source == "scenes":
            spec = SceneSpec(
                size=dcfg.image_size,
                min_objects=dcfg.min_objects,
                max_objects=dcfg.max_objects,
                min_object=dcfg.min_object,
                max_object=dcfg.max_object,
            )
            counts = {"train": dcfg.n_train, "val": dcfg.n_val, "test": dcfg.n_test}
            parts = {}
            for s in SPLITS:  # each split is generated from its own seed: no scene crosses splits
                x, y = generate_scenes(counts[s], spec, s, dcfg.scene_seed)
                parts[s] = (x, y, np.ones(len(x), bool))
            return parts
        if dcfg.source == "voc":
            if not dcfg.path:
                raise ValueError("source 'voc' needs --path pointing at a VOC folder (JPEGImages/ ...)")
            voc = read_voc(Path(dcfg.path), dcfg.image_size)
            tr = voc["train"]
            # VOC's val list is the test split; validation is carved out of train by image content hash
            sub = hash_split([sha1_bytes(img.tobytes()) for img in tr["x"]], dcfg.val_fraction, 0.0, dcfg.split_seed)
            val, train = np.flatnonzero(sub == "val"), np.flatnonzero(sub == "train")
            return {
                "train": (tr["x"][train], tr["y"][train], tr["decoded"][train]),
                "val": (tr["x"][val], tr["y"][val], tr["decoded"][val]),
                "test": (voc["val"]["x"], voc["val"]["y"], voc["val"]["decoded"]),
            }
        raise ValueError(f"unknown source {dcfg.source}")

    def prepare(self, dcfg: SegmentationData, out: Path) -> Prepared:
        parts = self._read(dcfg)
        classes = self._classes(dcfg.source)
        out.mkdir(parents=True, exist_ok=True)
        rows, train_x = [], None
        for s in SPLITS:
            x, y, decoded = parts[s]
            if self.binary:
                y = np.where(y == IGNORE_INDEX, IGNORE_INDEX, (y > 0).astype(np.uint8)).astype(np.uint8)
            if dcfg.max_samples and len(x) > dcfg.max_samples:
                x, y, decoded = x[: dcfg.max_samples], y[: dcfg.max_samples], decoded[: dcfg.max_samples]
            save_split_arrays(out, s, x=x, y=y)
            train_x = x if s == "train" else train_x
            flat = y.reshape(len(y), -1)
            valid = flat != IGNORE_INDEX
            bad = ((flat >= len(classes)) & valid).sum(axis=1)
            rows.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{s}/{i}" for i in range(len(x))],
                        "split": s,
                        "decoded": decoded,
                        "height": x.shape[1],
                        "width": x.shape[2],
                        "channels": x.shape[3],
                        "mask_height": y.shape[1],
                        "mask_width": y.shape[2],
                        "mask_bad_values": bad,
                        "coverage": ((flat > 0) & valid).sum(axis=1) / np.maximum(valid.sum(axis=1), 1),
                        "n_classes_in_mask": [len(np.unique(m[m != IGNORE_INDEX])) for m in flat],
                        "sha1": [sha1_bytes(img.tobytes()) for img in x],
                    }
                )
            )
        manifest = add_leak_column(pd.concat(rows, ignore_index=True))
        tx = torch.from_numpy(train_x).float() / 255
        ty = np.load(out / "train_y.npy")
        pixels = np.bincount(ty[ty != IGNORE_INDEX].ravel(), minlength=len(classes))[: len(classes)]
        info = {
            "source": dcfg.source,
            "classes": classes,
            "image_shape": [dcfg.image_size, dcfg.image_size, 3],
            "mean": tx.mean(dim=(0, 1, 2)).tolist(),
            "std": tx.std(dim=(0, 1, 2)).clamp_min(1e-3).tolist(),
            "n_samples": split_sizes(manifest["split"]),
            "train_pixel_fraction": (pixels / max(pixels.sum(), 1)).round(5).tolist(),
            # every generated scene has at least one object; a VOC mask may be all background
            "coverage_bounds": [0.005, 0.95] if dcfg.source == "scenes" else [0.0, 1.0],
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        h, w, c = info["image_shape"]
        lo, hi = info["coverage_bounds"]
        n = len(info["classes"])
        exp = [
            expect.min_rows(30, "too few samples to train on"),
            expect.in_set("decoded", [True], "every image and mask file decodes"),
            *expect.frame_size(h, w, "one image size"),
            expect.in_set("channels", [c], "RGB"),
            expect.in_set("mask_height", [h], "mask fits image"),
            expect.in_set("mask_width", [w], "mask fits image"),
            expect.in_set("mask_bad_values", [0], f"mask values index the {n} classes (or {IGNORE_INDEX} = ignore)"),
            expect.between(
                "coverage", lo, hi, "foreground covers a plausible share of each image (no empty or all-object masks)"
            ),
            expect.all_splits(),
            expect.no_leak("no image in two splits (test leakage)"),
        ]
        if info["source"] == "scenes":
            exp.append(expect.between("n_classes_in_mask", 2, n, "each scene shows background and at least one object"))
        return exp

    def load(self, data_dir: Path) -> SceneArrays:
        return SceneArrays.load(data_dir)

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: SegmentationConfig, info: dict[str, Any]) -> nn.Module:
        return UNet(info["image_shape"][2], len(info["classes"]), cfg.width, cfg.depth)

    def training(self, model: nn.Module, data: SceneArrays, cfg: SegmentationConfig) -> Recipe:
        info = data.info
        ce = nn.CrossEntropyLoss(ignore_index=IGNORE_INDEX)
        return supervised(
            model,
            data.x["train"],
            data.y["train"].long(),
            cfg,
            lambda logits, y: ce(logits.float(), y),
            prepare_batch=lambda x, gen: normalise_nhwc(x, info),
            validate=lambda: self.evaluate(model, data, "val", per_class=False),
        )

    def _predict_masks(self, model: nn.Module, x: torch.Tensor, info: dict[str, Any]) -> np.ndarray:
        logits = engine.predict_batches(model, x, batch_size=128, prepare=lambda b: normalise_nhwc(b, info))
        return logits.argmax(1).numpy().astype(np.uint8)

    def _scores(self, y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, per_class: bool) -> dict[str, float]:
        m = segmentation_scores(pixel_confusion(y_true, y_pred, n_classes))
        if self.binary:
            m = {"iou": m["iou_class_1"], "pixel_accuracy": m["pixel_accuracy"], "miou": m["miou"]}
        elif not per_class:
            m = {k: v for k, v in m.items() if not k.startswith("iou_class_")}
        return m

    def evaluate(
        self, model: nn.Module, data: SceneArrays, split: str = "test", per_class: bool = True
    ) -> dict[str, float]:
        pred = self._predict_masks(model, data.x[split], data.info)
        return self._scores(data.y[split].numpy(), pred, len(data.info["classes"]), per_class)

    def _baseline_masks(self, data: SceneArrays, split: str) -> np.ndarray:
        raise NotImplementedError

    def baseline(self, data: SceneArrays, split: str = "test") -> dict[str, float]:
        pred = self._baseline_masks(data, split)
        return self._scores(data.y[split].numpy(), pred, len(data.info["classes"]), True)

    def colourise(self, mask: np.ndarray) -> np.ndarray:
        """Class-index mask -> RGB through the VOC palette (255 = ignore shows as cream)."""
        pal = np.array(voc_palette(), np.uint8).reshape(256, 3)
        pal[IGNORE_INDEX] = (224, 224, 192)
        return pal[mask]

    def examples(self, model: nn.Module, data: SceneArrays) -> dict[str, Any]:
        from tasks_lib.core.figures import _pyplot

        plt = _pyplot()
        k = min(8, len(data.x["test"]))
        x, y = data.x["test"][:k], data.y["test"][:k].numpy()
        pred = self._predict_masks(model, x, data.info)
        base = self._baseline_masks(data, "test")[:k]
        n = len(data.info["classes"])
        fig, axes = plt.subplots(4, k, figsize=(1.6 * k, 6.8), squeeze=False)
        for j in range(k):
            iou = segmentation_scores(pixel_confusion(y[j], pred[j], n))
            score = iou["iou_class_1"] if self.binary else iou["miou"]
            panels = [
                (x[j].numpy(), "input"),
                (self.colourise(pred[j]), f"U-Net {score:.2f}"),
                (self.colourise(base[j]), "baseline"),
                (self.colourise(y[j]), "true mask"),
            ]
            for i, (img, title) in enumerate(panels):
                axes[i, j].imshow(img)
                axes[i, j].set_title(title, fontsize=7)
                axes[i, j].axis("off")
        fig.suptitle("test split: input / predicted / baseline / true (IoU per image)", fontsize=9)
        fig.tight_layout()
        legend = "\n".join(f"- {i}: {c}" for i, c in enumerate(data.info["classes"]))
        return {"sample_masks.png": fig, "classes.md": f"# Mask classes (colours: VOC palette)\n\n{legend}\n"}

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: SceneArrays, n: int) -> list[Request]:
        return [{"image": png_bytes(img)} for img in data.x["test"][:n].numpy()]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
        full = png_bytes(noise)
        truncated = full[: len(full) // 2]
        return [
            ({"image": b"just some text"}, 415, "not an image"),
            ({"image": truncated}, 400, "could not be decoded"),
            ({"image": png_bytes(np.zeros((2, 2), np.uint8))}, 422, "too small"),
            ({"array": [[0, 999]] * 4}, 422, "0-255"),
            ({"text": "a cat"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        """One item: the image resized to the model's input, flattened, then its original height and width.

        Every item has the same length, so requests batch; the size travels with the
        pixels through ``forward`` so the mask can be resized back (nearest) in ``postprocess``.
        """
        h, w, c = loaded.info["image_shape"]
        img = image_from_request(request)
        pixels = to_model_array(img, (h, w), c).astype(np.int32).ravel()
        return [np.concatenate([pixels, np.array([img.height, img.width], np.int32)])]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        h, w, c = loaded.info["image_shape"]
        batch = np.asarray(batch, np.int32)
        x = torch.from_numpy(batch[:, :-2].reshape(len(batch), h, w, c).astype(np.uint8))
        masks = self._predict_masks(loaded.module, x, loaded.info).reshape(len(batch), -1).astype(np.int32)
        return np.concatenate([masks, batch[:, -2:]], axis=1)

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        h, w, _ = loaded.info["image_shape"]
        out_h, out_w = int(output[-2]), int(output[-1])
        small = Image.fromarray(np.asarray(output[:-2], np.uint8).reshape(h, w))
        mask = np.asarray(small.resize((out_w, out_h), Image.Resampling.NEAREST))
        classes = loaded.info["classes"]
        counts = np.bincount(mask.ravel(), minlength=len(classes))[: len(classes)]
        answer: dict[str, Any] = {
            "height": out_h,
            "width": out_w,
            "area": {c: int(n) for c, n in zip(classes, counts, strict=True)},
            "area_fraction": {c: round(float(n) / mask.size, 6) for c, n in zip(classes, counts, strict=True)},
        }
        if self.binary:  # a viewable 0/255 mask
            answer["media"] = png_bytes((mask > 0).astype(np.uint8) * 255)
        else:  # pixel values are class indices; the VOC palette makes them viewable
            img = Image.fromarray(mask, mode="P")
            img.putpalette(voc_palette())
            answer["media"] = png_bytes(img)
        return answer
