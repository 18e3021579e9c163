"""The super-resolution task: data, training, metrics against bicubic, serving."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from tasks_lib.core import photos as ph
from tasks_lib.core.registry import register
from tasks_lib.core.schema import PhotoAnswer
from tasks_lib.core.task import DataSource, Expectation, LoadedModel, Prepared, Recipe, Request, Task
from tasks_lib.tasks.super_resolution.model import ResidualESPCN


@dataclass(frozen=True)
class SuperResolutionData(ph.PhotoData):
    scale: int = 2  # 2 or 3 (any integer >= 2 works): low-resolution inputs are bicubic downscalings


@dataclass(frozen=True)
class SuperResolutionConfig(ph.PhotoConfig):
    width: int = 48
    depth: int = 4
    max_input_pixels: int = 2_000_000  # budget on OUTPUT pixels (input pixels x scale^2)


def y_of(x: torch.Tensor) -> torch.Tensor:
    """BT.601 luma (16-235 scale, divided by 255) of float NCHW RGB in [0, 1], as N1HW."""
    r, g, b = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    return (16 + 65.481 * r + 128.553 * g + 24.966 * b) / 255


@register
class SuperResolution(Task):
    """Residual ESPCN on the Y channel vs bicubic interpolation (seed examples 22, 25)."""

    name = "super_resolution"
    seed_sections = (22, 25)
    metric = "psnr_y"
    greater_is_better = True
    request_fields = ("image",)
    answer_model = PhotoAnswer
    output_media = "image/png"
    batchable = False
    config_cls = SuperResolutionConfig
    data_config_cls = SuperResolutionData
    default_source = "photos"
    profiles = {
        "smoke": {
            "data": {"max_side": 64, "patch_size": 24, "patches_per_photo": 4, "gray_photos": False},
            "train": {"epochs": 2, "width": 8, "depth": 3, "batch_size": 8},
        },
        "quick": {
            "data": {"max_side": 256, "patch_size": 48, "patches_per_photo": 48},
            "train": {"epochs": 8, "width": 32, "depth": 4, "batch_size": 16, "lr": 1e-3},
        },
        "full": {
            "data": {"max_side": 0, "patch_size": 96, "patches_per_photo": 512},
            "train": {"epochs": 100, "width": 64, "depth": 6, "batch_size": 32, "lr": 1e-3},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "photos": DataSource(
                "photos", "photographs bundled with scikit-image and scikit-learn, split by photo", "package"
            ),
            "folder": DataSource(
                "folder",
                "a folder of PNG/JPEG HR photos at --path (Set5/Set14: flat; BSD: train/ val/ test/ subfolders)",
                "folder",
                needs_path=True,
            ),
        }

    # -- data ---------------------------------------------------------------------------
    def prepare(self, dcfg: SuperResolutionData, out: Path) -> Prepared:
        s = dcfg.scale
        if s < 2 or dcfg.patch_size % s:
            raise ValueError(f"scale must be >= 2 and divide patch_size ({dcfg.patch_size}), got {s}")

        def degrade(clean: np.ndarray, rng: np.random.Generator, _photo: str) -> tuple[np.ndarray, np.ndarray]:
            h, w = clean.shape[0] // s * s, clean.shape[1] // s * s
            hr = np.ascontiguousarray(clean[:h, :w])
            return hr, ph.bicubic_resize(hr, (h // s, w // s))

        manifest, info = ph.write_pairs(out, dcfg, degrade, photos=ph.collect_photos(dcfg), input_scale=s)
        return Prepared(manifest, {**info, "scale": s, "degradation": "PIL bicubic downscaling (antialiased)"})

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        return ph.photo_expectations(info, ratio=info["scale"], min_side=4 * info["scale"])

    def load(self, data_dir: Path) -> ph.PhotoPairs:
        return ph.load_pairs(data_dir)

    # -- model ----------------------------------------------------------------------------
    def build_model(self, cfg: SuperResolutionConfig, info: dict[str, Any]) -> nn.Module:
        return ResidualESPCN(info["scale"], cfg.width, cfg.depth)

    def training(self, model: nn.Module, data: ph.PhotoPairs, cfg: SuperResolutionConfig) -> Recipe:
        def make_batch(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            return y_of(ph.to_float(data.train_input[idx])), y_of(ph.to_float(data.train_target[idx]))

        return ph.pair_training(
            model, len(data.train_target), make_batch, cfg, lambda: self.evaluate(model, data, "val")
        )

    def upscale(self, model: nn.Module, lr: np.ndarray) -> np.ndarray:
        """uint8 RGB low resolution -> uint8 RGB ``scale`` x larger: the model's Y, bicubic chroma."""
        s = model.scale
        bicubic = ph.bicubic_resize(lr, (lr.shape[0] * s, lr.shape[1] * s))
        y_model = ph.run_model(model, y_of(ph.to_float(torch.from_numpy(lr.copy())[None])))[0, 0].numpy() * 255
        # In BT.601 a change dY of luma is a change 255/219 * dY of each of R, G and B.
        delta = (y_model - ph.rgb_to_y(bicubic)) * (255 / 219)
        return np.clip(np.round(bicubic + delta[:, :, None]), 0, 255).astype(np.uint8)

    def _quality(self, out: np.ndarray, target: np.ndarray, scale: int) -> dict[str, float]:
        q = ph.image_quality(target, out, y_channel=True, shave=scale)
        return {"psnr_y": q["psnr"], "ssim_y": q["ssim"]}

    def evaluate(self, model: nn.Module, data: ph.PhotoPairs, split: str = "test") -> dict[str, float]:
        s = data.info["scale"]
        return ph.mean_quality([self._quality(self.upscale(model, i), t, s) for _, i, t in data.photos[split]])

    def baseline(self, data: ph.PhotoPairs, split: str = "test") -> dict[str, float]:
        """Bicubic interpolation (PIL) of the low-resolution photo."""
        s = data.info["scale"]
        return ph.mean_quality(
            [self._quality(ph.bicubic_resize(i, t.shape[:2]), t, s) for _, i, t in data.photos[split]]
        )

    def examples(self, model: nn.Module, data: ph.PhotoPairs) -> dict[str, Any]:
        s = data.info["scale"]
        rows, lines = [], ["| photo | bicubic PSNR-Y | model PSNR-Y | gain dB |", "|---|---|---|---|"]
        for name, lr, hr in data.photos["test"]:
            bic = ph.bicubic_resize(lr, hr.shape[:2])
            out = self.upscale(model, lr)
            qb, qm = self._quality(bic, hr, s), self._quality(out, hr, s)
            nearest = np.repeat(np.repeat(lr, s, 0), s, 1)
            rows.append(
                [
                    (nearest, f"{name}: input x{s} (nearest)"),
                    (bic, f"bicubic {qb['psnr_y']:.2f} dB"),
                    (out, f"model {qm['psnr_y']:.2f} dB"),
                    (hr, "target"),
                ]
            )
            lines.append(f"| {name} | {qb['psnr_y']:.3f} | {qm['psnr_y']:.3f} | {qm['psnr_y'] - qb['psnr_y']:+.3f} |")
        return {
            "sr_test_photos.png": ph.comparison_figure(rows, f"x{s} super-resolution, PSNR on Y (test photos)"),
            "sr_per_photo.md": "\n".join(lines) + "\n",
        }

    # -- serving ------------------------------------------------------------------------------
    def request_examples(self, data: ph.PhotoPairs, n: int) -> list[Request]:
        return ph.photo_requests(data, n)

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        cfg = self.config_cls()
        return ph.photo_bad_requests(cfg, pixel_factor=4)  # the scale-2 budget; larger scales refuse sooner

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        s = loaded.info["scale"]
        return [ph.parse_photo(request, loaded.cfg, pixel_factor=s * s)]

    def forward(self, loaded: LoadedModel, batch: list[np.ndarray]) -> list[np.ndarray]:
        return [self.upscale(loaded.module, img) for img in batch]

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        return ph.photo_answer(output)
