"""The low-light enhancement task: darkened photos (or LOL pairs), U-Net vs classical enhancement."""

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
from tasks_lib.tasks.image_enhancement.model import ContextUNet
from tasks_lib.tasks.image_enhancement.readers import read_pair_folder


@dataclass(frozen=True)
class EnhancementData(ph.PhotoData):
    """Low-light degradation (``photos.low_light``), parameters drawn per image in these ranges."""

    patch_size: int = 64
    gamma_min: float = 2.0
    gamma_max: float = 3.0
    gain_min: float = 0.5
    gain_max: float = 0.9
    cast_min: float = 0.7  # per-channel factor in [cast_min, 1], the largest rescaled to 1
    noise_min: float = 2.0  # Gaussian noise std on the 0-255 scale
    noise_max: float = 6.0


@dataclass(frozen=True)
class EnhancementConfig(ph.PhotoConfig):
    width: int = 16
    depth: int = 2  # U-Net levels below the top (fixed at 2 in this model)
    loss: str = "l1"


def classical_enhancements(low: np.ndarray) -> dict[str, np.ndarray]:
    """skimage.exposure: gamma correction (gamma chosen so mean brightness becomes 0.45),
    CLAHE, and global histogram equalisation; uint8 RGB in and out."""
    import warnings

    from skimage import exposure

    x = low.astype(np.float64) / 255
    mean = float(np.clip(x.mean(), 1e-3, 0.99))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "might be a color image": one histogram over RGB is meant
        out = {
            "gamma": exposure.adjust_gamma(x, float(np.log(0.45) / np.log(mean))),
            "clahe": exposure.equalize_adapthist(x, clip_limit=0.01),
            "hist_eq": exposure.equalize_hist(x),
        }
    return {k: np.clip(np.round(v * 255), 0, 255).astype(np.uint8) for k, v in out.items()}


@register
class ImageEnhancement(Task):
    """Context U-Net vs the best of gamma correction / CLAHE / histogram equalisation (seed example 17)."""

    name = "image_enhancement"
    seed_sections = (17,)
    metric = "psnr"
    greater_is_better = True
    request_fields = ("image",)
    answer_model = PhotoAnswer
    output_media = "image/png"
    batchable = False
    config_cls = EnhancementConfig
    data_config_cls = EnhancementData
    default_source = "photos"
    profiles = {
        "smoke": {
            "data": {"max_side": 64, "patch_size": 32, "patches_per_photo": 4, "gray_photos": False},
            "train": {"epochs": 2, "width": 4, "batch_size": 8},
        },
        "quick": {
            "data": {"max_side": 256, "patch_size": 48, "patches_per_photo": 32},
            "train": {"epochs": 6, "width": 12, "batch_size": 8, "lr": 2e-3},
        },
        "full": {
            "data": {"max_side": 0, "patch_size": 128, "patches_per_photo": 256},
            "train": {"epochs": 60, "width": 32, "batch_size": 32, "lr": 1e-3},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "photos": DataSource(
                "photos",
                "photographs bundled with scikit-image and scikit-learn under the low-light degradation",
                "package",
            ),
            "pairs": DataSource(
                "pairs",
                "LOL-style low/ + high/ image pairs at --path (optionally per split folder)",
                "folder",
                needs_path=True,
            ),
        }

    # -- data ---------------------------------------------------------------------------
    def prepare(self, dcfg: EnhancementData, out: Path) -> Prepared:
        def degrade(clean: np.ndarray, rng: np.random.Generator, _photo: str) -> tuple[np.ndarray, np.ndarray]:
            low = ph.low_light(
                clean,
                rng,
                (dcfg.gamma_min, dcfg.gamma_max),
                (dcfg.gain_min, dcfg.gain_max),
                (dcfg.cast_min, 1.0),
                (dcfg.noise_min, dcfg.noise_max),
            )
            return clean, low

        if dcfg.source == "pairs":
            if not dcfg.path:
                raise ValueError("source 'pairs' needs --path pointing at a LOL-style low/ + high/ folder")
            pairs = read_pair_folder(Path(dcfg.path), dcfg.val_fraction, dcfg.test_fraction, dcfg.split_seed)
            pairs = {
                s: {n: (ph.shrink(lo, dcfg.max_side), ph.shrink(hi, dcfg.max_side)) for n, (lo, hi) in p.items()}
                for s, p in pairs.items()
            }
            manifest, info = ph.write_pairs(out, dcfg, None, pairs=pairs)
            info["degradation"] = "real low-light captures (LOL pairs)"
        else:
            manifest, info = ph.write_pairs(out, dcfg, degrade, photos=ph.collect_photos(dcfg))
            info["degradation"] = "photos.low_light: gain * cast_c * x**gamma + noise"
        return Prepared(manifest, info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        return ph.photo_expectations(info, ratio=1)

    def load(self, data_dir: Path) -> ph.PhotoPairs:
        return ph.load_pairs(data_dir)

    # -- model ----------------------------------------------------------------------------
    def build_model(self, cfg: EnhancementConfig, info: dict[str, Any]) -> nn.Module:
        return ContextUNet(cfg.width)

    def training(self, model: nn.Module, data: ph.PhotoPairs, cfg: EnhancementConfig) -> Recipe:
        def make_batch(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            return ph.to_float(data.train_input[idx]), ph.to_float(data.train_target[idx])

        return ph.pair_training(
            model, len(data.train_target), make_batch, cfg, lambda: self.evaluate(model, data, "val")
        )

    @staticmethod
    def enhance(model: nn.Module, low: np.ndarray) -> np.ndarray:
        x = ph.to_float(torch.from_numpy(low.copy())[None])
        return ph.to_uint8(ph.run_model(model, x, multiple=ContextUNet.multiple))

    def evaluate(self, model: nn.Module, data: ph.PhotoPairs, split: str = "test") -> dict[str, float]:
        return ph.mean_quality([ph.image_quality(t, self.enhance(model, i)) for _, i, t in data.photos[split]])

    def baseline(self, data: ph.PhotoPairs, split: str = "test") -> dict[str, float]:
        """The best (highest mean PSNR on this split) of gamma correction, CLAHE and histogram
        equalisation; the dark input and every method are reported beside it."""
        per: dict[str, list] = {"input": []}
        for _, low, high in data.photos[split]:
            per["input"].append(ph.image_quality(high, low))
            for k, v in classical_enhancements(low).items():
                per.setdefault(k, []).append(ph.image_quality(high, v))
        means = {k: ph.mean_quality(v) for k, v in per.items()}
        best = max((k for k in means if k != "input"), key=lambda k: means[k]["psnr"])
        out = dict(means[best])
        for k, m in means.items():
            out |= {f"{k}_psnr": m["psnr"], f"{k}_ssim": m["ssim"]}
        out["best_is_" + best] = 1.0
        return out

    def examples(self, model: nn.Module, data: ph.PhotoPairs) -> dict[str, Any]:
        return ph.review_examples(
            data.photos["test"],
            classical_enhancements,
            lambda img: self.enhance(model, img),
            "input",
            "enhancement",
            "low-light enhancement, PSNR on RGB",
        )

    # -- serving ------------------------------------------------------------------------------
    def request_examples(self, data: ph.PhotoPairs, n: int) -> list[Request]:
        return ph.photo_requests(data, n)

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return ph.photo_bad_requests(self.config_cls())

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [ph.parse_photo(request, loaded.cfg)]

    def forward(self, loaded: LoadedModel, batch: list[np.ndarray]) -> list[np.ndarray]:
        return [self.enhance(loaded.module, img) for img in batch]

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        return ph.photo_answer(output)
