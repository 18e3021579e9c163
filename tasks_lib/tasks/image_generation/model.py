"""DCGAN-style generator and projection discriminator, plus the frozen judge that scores them."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tasks_lib.core.backbones import ResidualCNN

JUDGE_SIZE = 8  # the judge (image_classification on digits) sees 8x8 images: 32x32 is average-pooled 4x4


class Generator(nn.Module):
    """z (+ class embedding) -> 4x4 -> 8x8 -> 16x16 -> 32x32, transposed convs, BN, ReLU, tanh."""

    def __init__(self, z_dim: int, n_classes: int, width: int, channels: int):
        super().__init__()
        self.z_dim = z_dim
        self.embed = nn.Embedding(n_classes, z_dim)
        w = width
        self.net = nn.Sequential(
            nn.ConvTranspose2d(z_dim, 4 * w, 4, 1, 0, bias=False),  # 1 -> 4
            nn.BatchNorm2d(4 * w),
            nn.ReLU(True),
            nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1, bias=False),  # 4 -> 8
            nn.BatchNorm2d(2 * w),
            nn.ReLU(True),
            nn.ConvTranspose2d(2 * w, w, 4, 2, 1, bias=False),  # 8 -> 16
            nn.BatchNorm2d(w),
            nn.ReLU(True),
            nn.ConvTranspose2d(w, channels, 4, 2, 1),  # 16 -> 32
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = z * (1 + self.embed(y))  # multiplicative conditioning
        return self.net(h[:, :, None, None])


class Discriminator(nn.Module):
    """32 -> 16 -> 8 -> 4 strided convs, LeakyReLU; projection conditioning on the label."""

    def __init__(self, n_classes: int, width: int, channels: int):
        super().__init__()
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(w, 2 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * w),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1, bias=False),
            nn.BatchNorm2d(4 * w),
            nn.LeakyReLU(0.2, True),
            nn.Flatten(),
        )
        self.out = nn.Linear(4 * w * 16, 1)
        self.embed = nn.Embedding(n_classes, 4 * w * 16)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        return self.out(h).squeeze(1) + (self.embed(y) * h).sum(1) / h.shape[1] ** 0.5


def _init_dcgan(m: nn.Module) -> None:
    if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGAN(nn.Module):
    """Generator + discriminator + a frozen judge (ResidualCNN on 8x8) for the Frechet distance.

    The judge's architecture comes from the config; its weights (and input normalisation)
    are copied in ``fit`` from the image_classification champion or a fallback classifier,
    so a saved bundle is self-contained. ``snapshots`` keeps fixed-noise samples per stage of
    training for the review artifacts.
    """

    def __init__(
        self,
        n_classes: int,
        channels: int,
        z_dim: int,
        g_width: int,
        d_width: int,
        judge_width: int,
        judge_blocks: int,
        n_snapshots: int,
    ):
        super().__init__()
        self.n_classes, self.channels = n_classes, channels
        self.generator = Generator(z_dim, n_classes, g_width, channels)
        self.discriminator = Discriminator(n_classes, d_width, channels)
        self.apply(_init_dcgan)
        self.judge = ResidualCNN(channels, n_classes, JUDGE_SIZE, judge_width, judge_blocks, 0.0)
        self.judge.requires_grad_(False)
        self.register_buffer("judge_mean", torch.zeros(channels))
        self.register_buffer("judge_std", torch.ones(channels))
        self.register_buffer("snapshots", torch.zeros(n_snapshots, n_classes, 32, 32, dtype=torch.uint8))
        self.register_buffer("snapshot_epochs", torch.full((n_snapshots,), -1, dtype=torch.int64))

    @torch.no_grad()
    def sample(self, n: int, labels: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """``n`` images for ``labels`` from noise drawn with ``gen`` (CPU) -> uint8 N x 32 x 32 x C."""
        device = next(self.generator.parameters()).device
        z = torch.randn(n, self.generator.z_dim, generator=gen).to(device)
        was_training = self.generator.training
        self.generator.eval()
        x = self.generator(z, labels.to(device))
        self.generator.train(was_training)
        return to_uint8(x).cpu()

    @torch.no_grad()
    def judge_features(self, images: torch.Tensor, batch: int = 512) -> np.ndarray:
        """uint8 N x 32 x 32 x C -> the judge's penultimate features (N x D), float64."""
        self.judge.eval()
        device = next(self.judge.parameters()).device
        out = []
        for s in range(0, len(images), batch):
            x = images[s : s + batch].to(device).permute(0, 3, 1, 2).float() / 255
            x = F.avg_pool2d(x, 32 // JUDGE_SIZE)
            x = (x - self.judge_mean.view(1, -1, 1, 1)) / self.judge_std.view(1, -1, 1, 1)
            h = self.judge.head[:2](self.judge.features(x))  # global average pool + flatten
            out.append(h.double().cpu().numpy())
        return np.concatenate(out)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """Generator output (N x C x H x W in -1..1) -> uint8 N x H x W x C."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature sets ``a`` and ``b`` (rows = samples).

    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), the FID formula on any features.
    """
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    # Tr((S_a S_b)^1/2) = Tr((A S_b A)^1/2) with A = S_a^1/2: symmetric PSD, so via eigenvalues (stable)
    w, v = np.linalg.eigh(s_a)
    root_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * tr_covmean)
