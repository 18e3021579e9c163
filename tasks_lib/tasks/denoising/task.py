"""The denoising task: noisy photos, DnCNN vs the best classical denoiser of scikit-image."""

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
from tasks_lib.tasks.denoising.model import DnCNN, estimate_sigma


@dataclass(frozen=True)
class DenoisingData(ph.PhotoData):
    patch_size: int = 40
    sigma: float = 25.0  # noise std on the 0-255 scale
    blind: bool = False  # True: training noise uniform in [0, sigma_max] per patch, held-out photos
    # at every level of BLIND_LEVELS, and the model takes an estimated noise-level map
    sigma_max: float = 50.0


@dataclass(frozen=True)
class DenoisingConfig(ph.PhotoConfig):
    loss: str = "log_mse"  # each image counts by its PSNR: the blind setting mixes noise levels
    width: int = 48
    depth: int = 10


def noise_sigma(img: np.ndarray) -> float:
    """The model's MAD noise estimate (``estimate_sigma``) of one HxWx3 image, in its units."""
    return float(estimate_sigma(torch.from_numpy(np.asarray(img, np.float64)).permute(2, 0, 1)[None])[0])


# Blind setting: every held-out photo is written at these fractions of ``sigma_max`` (5, 15, 25,
# 35 and 50 at the default 50), so the test covers the whole range evenly rather than drawing one
# random level for each of three photos.
BLIND_LEVELS = (0.1, 0.3, 0.5, 0.7, 1.0)


def blind_name(photo: str, sigma: float) -> str:
    return f"{photo}_sigma{sigma:02.0f}"


def sigma_of(name: str) -> int | None:
    """The noise level a blind held-out photo was written at, from its name (None: not blind)."""
    head, sep, tail = name.rpartition("_sigma")
    return int(tail) if sep and tail.isdigit() else None


def quality(items: list[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, float]:
    """Mean PSNR/SSIM of ``(name, output, clean)`` items, and per noise level in the blind setting."""
    per = [ph.image_quality(t, o) for _, o, t in items]
    out = ph.mean_quality(per)
    levels = sorted({sigma_of(n) for n, _, _ in items} - {None})
    for s in levels:
        out |= ph.mean_quality(
            [q for (n, _, _), q in zip(items, per, strict=True) if sigma_of(n) == s], f"sigma{s:02d}_"
        )
    return out


def classical_denoisers(noisy: np.ndarray) -> dict[str, np.ndarray]:
    """scikit-image's classical denoisers, parameters set from the estimated noise level (so they
    work blind too); uint8 RGB in and out: total variation, bilateral, non-local means, and
    wavelet (BayesShrink) when PyWavelets is installed."""
    from skimage.restoration import denoise_bilateral, denoise_nl_means, denoise_tv_chambolle

    x = noisy.astype(np.float64) / 255
    sigma = max(noise_sigma(x), 1e-3)
    out = {
        "tv": denoise_tv_chambolle(x, weight=1.2 * sigma, channel_axis=-1),
        "bilateral": denoise_bilateral(x, sigma_color=1.5 * sigma, sigma_spatial=2, channel_axis=-1),
        "nl_means": denoise_nl_means(
            x, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6, fast_mode=True, channel_axis=-1
        ),
    }
    try:
        import pywt  # noqa: F401
    except ImportError:
        pass
    else:
        from skimage.restoration import denoise_wavelet

        out["wavelet"] = denoise_wavelet(
            x, method="BayesShrink", mode="soft", rescale_sigma=True, convert2ycbcr=True, channel_axis=-1
        )
    return {k: np.clip(np.round(v * 255), 0, 255).astype(np.uint8) for k, v in out.items()}


@register
class Denoising(Task):
    """DnCNN-style denoiser vs the best of TV / bilateral / non-local means / wavelet (seed example 24)."""

    name = "denoising"
    seed_sections = (24,)
    metric = "psnr"
    greater_is_better = True
    request_fields = ("image",)
    answer_model = PhotoAnswer
    output_media = "image/png"
    batchable = False
    config_cls = DenoisingConfig
    data_config_cls = DenoisingData
    default_source = "photos"
    profiles = {
        "smoke": {
            "data": {"max_side": 64, "patch_size": 24, "patches_per_photo": 4, "gray_photos": False},
            "train": {"epochs": 2, "width": 8, "depth": 3, "batch_size": 8},
        },
        "quick": {
            "data": {"max_side": 256, "patch_size": 40, "patches_per_photo": 128},
            "train": {"epochs": 12, "width": 32, "depth": 6, "batch_size": 8, "lr": 2e-3},
        },
        "full": {
            "data": {"max_side": 0, "patch_size": 50, "patches_per_photo": 512},
            "train": {"epochs": 60, "width": 64, "depth": 17, "batch_size": 64, "lr": 1e-3},
        },
    }

    def sources(self) -> dict[str, DataSource]:
        return {
            "photos": DataSource(
                "photos", "photographs bundled with scikit-image and scikit-learn, split by photo", "package"
            ),
            "folder": DataSource(
                "folder",
                "a folder of PNG/JPEG clean photos at --path (flat, or BSD-style train/ val/ test/)",
                "folder",
                needs_path=True,
            ),
        }

    # -- data ---------------------------------------------------------------------------
    def prepare(self, dcfg: DenoisingData, out: Path) -> Prepared:
        def degrade(clean: np.ndarray, rng: np.random.Generator, photo: str) -> tuple[np.ndarray, np.ndarray]:
            sigma = sigma_of(photo)
            return clean, ph.add_noise(clean, dcfg.sigma if sigma is None else sigma, rng)

        photos = ph.collect_photos(dcfg)
        if dcfg.blind:  # each held-out photo at every level of the range
            levels = [f * dcfg.sigma_max for f in BLIND_LEVELS]
            for split in ("val", "test"):
                photos[split] = {blind_name(n, s): img for n, img in photos[split].items() for s in levels}
        # training patches stay clean: noise is drawn afresh for every batch (seeded by the train seed)
        manifest, info = ph.write_pairs(out, dcfg, degrade, photos=photos, train_inputs=False)
        info |= {
            "sigma": dcfg.sigma,
            "blind": dcfg.blind,
            "sigma_max": dcfg.sigma_max,
            "degradation": "additive Gaussian noise, clipped and rounded to 8 bits",
        }
        return Prepared(manifest, info)

    def expectations(self, info: dict[str, Any]) -> list[Expectation]:
        return ph.photo_expectations(info, ratio=1)

    def load(self, data_dir: Path) -> ph.PhotoPairs:
        return ph.load_pairs(data_dir)

    # -- model ----------------------------------------------------------------------------
    def build_model(self, cfg: DenoisingConfig, info: dict[str, Any]) -> nn.Module:
        return DnCNN(3, cfg.width, cfg.depth, noise_map=info["blind"])

    def training(self, model: nn.Module, data: ph.PhotoPairs, cfg: DenoisingConfig) -> Recipe:
        info = data.info

        def make_batch(idx: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
            clean = ph.to_float(data.train_target[idx])
            if info["blind"]:
                sigma = torch.rand(len(idx), 1, 1, 1, generator=gen) * info["sigma_max"]
            else:
                sigma = torch.full((len(idx), 1, 1, 1), info["sigma"])
            noise = torch.randn(clean.shape, generator=gen) * sigma / 255
            noisy = torch.round((clean + noise).clamp(0, 1) * 255) / 255  # as stored: clipped, 8 bits
            if model.noise_map:  # the true level as a 4th channel; served models estimate it
                noisy = torch.cat([noisy, (sigma / 255).expand(-1, 1, *noisy.shape[2:])], 1)
            return noisy, clean

        return ph.pair_training(
            model, len(data.train_target), make_batch, cfg, lambda: self.evaluate(model, data, "val")
        )

    @staticmethod
    def denoise(model: nn.Module, noisy: np.ndarray) -> np.ndarray:
        return ph.to_uint8(ph.run_model(model, ph.to_float(torch.from_numpy(noisy.copy())[None])))

    def evaluate(self, model: nn.Module, data: ph.PhotoPairs, split: str = "test") -> dict[str, float]:
        return quality([(n, self.denoise(model, i), t) for n, i, t in data.photos[split]])

    def baseline(self, data: ph.PhotoPairs, split: str = "test") -> dict[str, float]:
        """The best (highest mean PSNR on this split) of TV, bilateral and wavelet denoising;
        the noisy input and every classical method are reported beside it."""
        per: dict[str, list] = {"noisy": []}
        for name, noisy, clean in data.photos[split]:
            per["noisy"].append((name, noisy, clean))
            for k, v in classical_denoisers(noisy).items():
                per.setdefault(k, []).append((name, v, clean))
        means = {k: quality(v) for k, v in per.items()}
        best = max((k for k in means if k != "noisy"), key=lambda k: means[k]["psnr"])
        out = dict(means[best])
        for k, m in means.items():
            out |= {f"{k}_{q}": v for q, v in m.items() if q == "psnr" or q == "ssim" or q.endswith("_psnr")}
        out["best_is_" + best] = 1.0
        return out

    def examples(self, model: nn.Module, data: ph.PhotoPairs) -> dict[str, Any]:
        return ph.review_examples(
            data.photos["test"],
            classical_denoisers,
            lambda img: self.denoise(model, img),
            "noisy",
            "denoising",
            "denoising, PSNR on RGB (test photos)",
        )

    # -- serving ------------------------------------------------------------------------------
    def request_examples(self, data: ph.PhotoPairs, n: int) -> list[Request]:
        return ph.photo_requests(data, n)

    def bad_requests(self) -> list[tuple[Request, int, str]]:
        return ph.photo_bad_requests(self.config_cls())

    def parse_request(self, loaded: LoadedModel, request: Request) -> list[np.ndarray]:
        return [ph.parse_photo(request, loaded.cfg)]

    def forward(self, loaded: LoadedModel, batch: list[np.ndarray]) -> list[np.ndarray]:
        return [self.denoise(loaded.module, img) for img in batch]

    def postprocess(self, loaded: LoadedModel, output: np.ndarray) -> dict[str, Any]:
        return ph.photo_answer(output)
