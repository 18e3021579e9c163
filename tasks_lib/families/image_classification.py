"""The image classification family: labels of uint8 images from a CNN, shared by
image_classification and transfer_learning.

``ImageClassifierFamily`` holds what the two share: loading the prepared splits, normalisation
and augmentation, the supervised recipe (label smoothing, optional augmentation), metrics,
review figures and serving of images. A concrete task adds its name, configs, sources,
``prepare``, ``expectations``, ``build_model`` and ``baseline``; its config needs ``augment``
and ``label_smoothing``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tasks_lib.core import engine
from tasks_lib.core.config import TaskConfig
from tasks_lib.core.data import SplitTensors
from tasks_lib.core.figures import confusion_matrix_figure, image_grid_figure
from tasks_lib.core.images import image_from_request, normalise_nhwc, png_bytes, to_model_array
from tasks_lib.core.metrics import classification_metrics, confusion_matrix
from tasks_lib.core.recipes import supervised
from tasks_lib.core.schema import ClassAnswer
from tasks_lib.core.task import LoadedModel, Recipe, Request, Task


class ImageData(SplitTensors):
    """Prepared images in memory: uint8 NHWC tensors and int64 labels per split."""


class ImageClassifierFamily(Task):
    """Shared base (not registered): class labels of NHWC uint8 images, scored by accuracy."""

    metric = "accuracy"
    request_fields = ("image", "array")
    answer_model = ClassAnswer

    def load(self, data_dir: Path) -> ImageData:
        return ImageData.load(data_dir)

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

    def training(self, model: nn.Module, data: ImageData, cfg: TaskConfig) -> Recipe:
        info = data.info

        def prepare_batch(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
            x = normalise_nhwc(x, info)
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
        logits = engine.predict_batches(model, x, prepare=lambda b: normalise_nhwc(b, info))
        return logits.argmax(1).numpy()

    def evaluate(
        self, model: nn.Module, data: ImageData, split: str = "test", per_class: bool = True
    ) -> dict[str, float]:
        pred = self._predict_labels(model, data.x[split], data.info)
        m = classification_metrics(data.y[split].numpy(), pred, len(data.info["classes"]))
        return m if per_class else {k: v for k, v in m.items() if not k.startswith("acc_class_")}

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
        logits = engine.predict_batches(loaded.module, x, prepare=lambda b: normalise_nhwc(b, loaded.info))
        return torch.softmax(logits, dim=1).numpy()

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        classes = loaded.info["classes"]
        return {
            "label": classes[int(output.argmax())],
            "probabilities": {c: round(float(p), 6) for c, p in zip(classes, output, strict=True)},
        }
