"""The image classification task: data, expectations, training, metrics, serving."""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from tasks_lib.core import engine
from tasks_lib.core.backbones import ResidualCNN
from tasks_lib.core.config import DataConfig, TaskConfig
from tasks_lib.core.data import SPLITS, add_leak_column, all_splits_present, hash_split, read_info, sha1_bytes
from tasks_lib.core.figures import confusion_matrix_figure, image_grid_figure
from tasks_lib.core.images import image_from_request, png_bytes, to_model_array
from tasks_lib.core.metrics import classification_metrics, confusion_matrix
from tasks_lib.core.recipes import supervised
from tasks_lib.core.registry import register
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.image_classification.readers import (
    CIFAR_DIR,
    CIFAR_URL,
    locate_cifar,
    read_cifar10,
    read_image_folder,
)


@dataclass(frozen=True)
class ImageClassificationData(DataConfig):
    image_size: int = 0  # ImageFolder only: resize to this square size; 0 = keep (all must agree)


@dataclass(frozen=True)
class ImageClassificationConfig(TaskConfig):
    epochs: int = 30
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 5e-4
    label_smoothing: float = 0.1  # softer targets: better calibrated, less over-confident
    width: int = 32  # channels of the first stage; doubled at each downsampling
    blocks_per_stage: int = 1
    dropout: float = 0.1
    augment: bool = True  # random affine (shift, rotate, scale) + flips where they make sense


@dataclass
class ImageData:
    """Prepared images in memory: uint8 NHWC tensors and int64 labels per split."""

    x: dict[str, torch.Tensor]
    y: dict[str, torch.Tensor]
    info: dict[str, Any]


@register
class ImageClassification(Task):
    """Image classification with a residual CNN sized to the input (seed examples 1, 28)."""

    name = "image_classification"
    seed_sections = (1, 28)
    metric = "accuracy"
    greater_is_better = True
    request_fields = ("image", "array")
    config_cls = ImageClassificationConfig
    data_config_cls = ImageClassificationData
    default_source = "digits"
    profiles = {
        "smoke": {"data": {"max_samples": 600}, "train": {"epochs": 4, "width": 16}},
        "quick": {"train": {"epochs": 30}},
        "full": {"train": {"epochs": 100, "width": 64, "blocks_per_stage": 2}},
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "digits": DataSource("digits", "scikit-learn's 1,797 real 8x8 handwritten digits", "package"),
            "cifar10": DataSource(
                "cifar10",
                f"CIFAR-10 python batches ({CIFAR_DIR}/) from --path, the dataset mirror, or {CIFAR_URL}",
                "url",
            ),
            "imagefolder": DataSource(
                "imagefolder", "a class_name/*.png|jpg tree at --path", "folder", needs_path=True
            ),
        }

    # -- data -------------------------------------------------------------------
    def prepare(self, dcfg: ImageClassificationData, out: Path) -> Prepared:
        if dcfg.source == "digits":
            from sklearn.datasets import load_digits

            digits = load_digits()
            x = np.clip(digits.images * 16, 0, 255).astype(np.uint8)[:, :, :, None]  # 0-16 -> 0-255
            y, classes, hflip, split = digits.target.astype(np.int64), [str(c) for c in range(10)], False, None
        elif dcfg.source == "cifar10":
            with tempfile.TemporaryDirectory() as tmp:
                parts, classes = read_cifar10(locate_cifar(dcfg.path, Path(tmp)))
            x = np.concatenate([parts["train"][0], parts["test"][0]])
            y = np.concatenate([parts["train"][1], parts["test"][1]])
            split = np.array(["train"] * len(parts["train"][1]) + ["test"] * len(parts["test"][1]), dtype=object)
            hflip = True
        elif dcfg.source == "imagefolder":
            if not dcfg.path:
                raise ValueError("source 'imagefolder' needs --path pointing at a class_name/*.png tree")
            x, y, classes = read_image_folder(Path(dcfg.path), dcfg.image_size)
            hflip, split = False, None
        else:
            raise ValueError(f"unknown source {dcfg.source}")

        # Exact duplicates would let one sample sit in two splits: keep the first copy.
        hashes = np.array([sha1_bytes(img.tobytes()) for img in x])
        n_before = len(hashes)
        _, first = np.unique(hashes, return_index=True)
        keep = np.sort(first)
        x, y, hashes = x[keep], y[keep], hashes[keep]
        split = split[keep] if split is not None else None
        if dcfg.max_samples and len(x) > dcfg.max_samples:
            pick = np.sort(np.random.default_rng(dcfg.split_seed).choice(len(x), dcfg.max_samples, replace=False))
            x, y, hashes = x[pick], y[pick], hashes[pick]
            split = split[pick] if split is not None else None
        # Split by content hash, so growing or re-subsampling the pool never moves a sample.
        if split is None:
            split = hash_split(hashes, dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
        else:  # the source fixes test; carve validation out of train
            train_idx = np.flatnonzero(split == "train")
            split[train_idx] = hash_split(hashes[train_idx], dcfg.val_fraction, 0.0, dcfg.split_seed)

        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for s in SPLITS:
            idx = np.flatnonzero(split == s)
            np.save(out / f"{s}_x.npy", x[idx])
            np.save(out / f"{s}_y.npy", y[idx])
            xs = x[idx]
            rows.append(
                pd.DataFrame(
                    {
                        "sample_id": [f"{s}/{i}" for i in range(len(idx))],
                        "split": s,
                        "label": y[idx],
                        "height": xs.shape[1],
                        "width": xs.shape[2],
                        "channels": xs.shape[3],
                        "dtype": str(xs.dtype),
                        "pixel_min": xs.reshape(len(idx), -1).min(axis=1) if len(idx) else [],
                        "pixel_max": xs.reshape(len(idx), -1).max(axis=1) if len(idx) else [],
                        "has_nan": False,  # uint8 cannot hold NaN; float sources would set it
                        "sha1": hashes[idx],
                    }
                )
            )
        manifest = add_leak_column(pd.concat(rows, ignore_index=True))
        train_x = torch.from_numpy(x[split == "train"]).float() / 255
        info = {
            "source": dcfg.source,
            "classes": classes,
            "image_shape": list(x.shape[1:]),
            "hflip": hflip,
            "mean": train_x.mean(dim=(0, 1, 2)).tolist(),
            "std": train_x.std(dim=(0, 1, 2)).clamp_min(1e-3).tolist(),
            "n_samples": {s: int((split == s).sum()) for s in SPLITS},
            "duplicates_removed": n_before - len(keep),
        }
        return Prepared(manifest=manifest, info=info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        h, w, c = info["image_shape"]
        n = len(info["classes"])
        exp = [
            Expectation("expect_table_row_count_to_be_between", {"min_value": 10 * n}, "too few samples to train on"),
            Expectation("expect_column_values_to_not_be_null", {"column": "label"}),
            Expectation(
                "expect_column_values_to_be_between",
                {"column": "label", "min_value": 0, "max_value": n - 1},
                f"labels index the {n} classes",
            ),
            Expectation("expect_column_values_to_be_in_set", {"column": "height", "value_set": [h]}, "one image size"),
            Expectation("expect_column_values_to_be_in_set", {"column": "width", "value_set": [w]}, "one image size"),
            Expectation(
                "expect_column_values_to_be_in_set", {"column": "channels", "value_set": [c]}, "one channel count"
            ),
            Expectation(
                "expect_column_values_to_be_in_set", {"column": "dtype", "value_set": ["uint8"]}, "8-bit pixels"
            ),
            Expectation(
                "expect_column_values_to_be_between", {"column": "pixel_min", "min_value": 0, "max_value": 255}
            ),
            Expectation(
                "expect_column_values_to_be_between", {"column": "pixel_max", "min_value": 0, "max_value": 255}
            ),
            Expectation(
                "expect_column_values_to_be_in_set", {"column": "has_nan", "value_set": [False]}, "no NaN pixels"
            ),
            all_splits_present(),
            Expectation(
                "expect_column_values_to_be_in_set",
                {"column": "splits_with_same_content", "value_set": [1]},
                "no sample in two splits (test leakage)",
            ),
        ]
        for s in SPLITS:
            exp.append(
                Expectation(
                    "expect_column_distinct_values_to_equal_set",
                    {"column": "label", "value_set": list(range(n))},
                    f"every class present in {s}",
                    where={"split": s},
                )
            )
        return exp

    def load(self, data_dir: Path) -> ImageData:
        data_dir = Path(data_dir)
        x = {s: torch.from_numpy(np.load(data_dir / f"{s}_x.npy")) for s in SPLITS}
        y = {s: torch.from_numpy(np.load(data_dir / f"{s}_y.npy")) for s in SPLITS}
        return ImageData(x=x, y=y, info=read_info(data_dir))

    # -- model ------------------------------------------------------------------
    def build_model(self, cfg: ImageClassificationConfig, info: dict[str, Any]) -> nn.Module:
        h, w, c = info["image_shape"]
        return ResidualCNN(c, len(info["classes"]), min(h, w), cfg.width, cfg.blocks_per_stage, cfg.dropout)

    @staticmethod
    def _normalise(x: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
        """uint8 NHWC -> normalised float NCHW."""
        mean = torch.tensor(info["mean"], device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(info["std"], device=x.device).view(1, -1, 1, 1)
        return (x.permute(0, 3, 1, 2).float() / 255 - mean) / std

    @staticmethod
    def _augment(x: torch.Tensor, gen: torch.Generator, hflip: bool) -> torch.Tensor:
        """Random shift (+-12 %), rotation (+-10 deg) and scale (0.9-1.1), all in one resample."""
        n = len(x)
        r = torch.rand(n, 4, generator=gen, device=x.device)
        angle = (r[:, 0] - 0.5) * math.radians(20)
        scale = 0.9 + 0.2 * r[:, 1]
        shift = (r[:, 2:] - 0.5) * 0.25
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
        if hflip:
            flip = torch.rand(n, generator=gen, device=x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
        return x

    def training(self, model: nn.Module, data: ImageData, cfg: ImageClassificationConfig) -> Recipe:
        info = data.info

        def prepare_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            x = self._normalise(x, info)
            return self._augment(x, gen, info["hflip"]) if cfg.augment else x

        loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        return supervised(
            model,
            data.x["train"],
            data.y["train"],
            cfg,
            loss,
            prepare_batch=prepare_batch,
            validate=lambda: self.evaluate(model, data, "val", per_class=False),
        )

    def _predict_labels(self, model: nn.Module, x: torch.Tensor, info: dict[str, Any]) -> np.ndarray:
        logits = engine.predict_batches(model, x, prepare=lambda b: self._normalise(b, info))
        return logits.argmax(1).numpy()

    def evaluate(
        self, model: nn.Module, data: ImageData, split: str = "test", per_class: bool = True
    ) -> dict[str, float]:
        pred = self._predict_labels(model, data.x[split], data.info)
        m = classification_metrics(data.y[split].numpy(), pred, len(data.info["classes"]))
        return m if per_class else {k: v for k, v in m.items() if not k.startswith("acc_class_")}

    def baseline(self, data: ImageData, split: str = "test") -> dict[str, float]:
        """Multinomial logistic regression on raw pixels (at most 10,000 training images)."""
        from sklearn.linear_model import LogisticRegression

        def flat(s: str) -> np.ndarray:
            return data.x[s].reshape(len(data.x[s]), -1).numpy().astype(np.float32) / 255

        n = min(len(data.x["train"]), 10_000)
        clf = LogisticRegression(max_iter=300)
        clf.fit(flat("train")[:n], data.y["train"].numpy()[:n])
        pred = clf.predict(flat(split))
        return classification_metrics(data.y[split].numpy(), pred, len(data.info["classes"]))

    def examples(self, model: nn.Module, data: ImageData) -> dict[str, Any]:
        classes = data.info["classes"]
        x, y = data.x["test"], data.y["test"].numpy()
        pred = self._predict_labels(model, x, data.info)
        cm = confusion_matrix(y, pred, len(classes))
        k = min(32, len(x))
        titles = [f"{classes[p]} ({classes[t]})" for p, t in zip(pred[:k], y[:k], strict=True)]
        colors = ["green" if p == t else "red" for p, t in zip(pred[:k], y[:k], strict=True)]
        return {
            "confusion_matrix.png": confusion_matrix_figure(cm, classes),
            "sample_predictions.png": image_grid_figure(x[:k].numpy(), titles, colors, "predicted (true), test split"),
        }

    # -- serving ----------------------------------------------------------------
    def request_examples(self, data: ImageData, n: int) -> list[Request]:
        return [{"image": png_bytes(img)} for img in data.x["test"][:n].numpy()]

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return [
            ({"image": b"just some text"}, 415, "not an image"),
            ({"array": [[0, 999]] * 4}, 422, "0-255"),
            ({"text": "a cat"}, 422, "not used"),
        ]

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        h, w, c = loaded.info["image_shape"]
        return [to_model_array(image_from_request(request), (h, w), c)]

    def forward(self, loaded: LoadedModel, batch: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(batch))
        logits = engine.predict_batches(loaded.module, x, prepare=lambda b: self._normalise(b, loaded.info))
        return torch.softmax(logits, dim=1).numpy()

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        classes = loaded.info["classes"]
        return {
            "label": classes[int(output.argmax())],
            "probabilities": {c: round(float(p), 6) for c, p in zip(classes, output, strict=True)},
        }
