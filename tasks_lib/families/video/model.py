"""A small (2+1)D residual CNN for clips: spatial 3x3 then temporal 3-tap convolutions.

Both factors run as ``Conv2d`` (frames folded into the batch for the spatial one, space
folded into the width for the temporal one): on CPU that is several times faster than
``Conv3d``. A clip of T = 1 frames gives the same backbone on a single frame (the
temporal taps then only see zero padding), which is how the single-frame baselines run.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Block2Plus1D(nn.Module):
    """Spatial conv (stride s) -> BN -> ReLU -> temporal conv -> BN, plus a shortcut, -> ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.spatial = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.temporal = nn.Conv2d(c_out, c_out, (3, 1), 1, (1, 0), bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.t = 1  # clip length, set by R2Plus1D before each forward
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (N*T, C, H, W) with the clip length carried in ``self.t``."""
        nt, _, _, _ = x.shape
        t = self.t
        n = nt // t
        y = F.relu(self.bn1(self.spatial(x)))
        c, h, w = y.shape[1:]
        y = y.view(n, t, c, h * w).permute(0, 2, 1, 3)  # N, C, T, HW
        y = self.bn2(self.temporal(y))
        y = y.permute(0, 2, 1, 3).reshape(nt, c, h, w)
        return F.relu(y + self.shortcut(x))


class R2Plus1D(nn.Module):
    """Input (N, C, T, H, W) floats -> class logits. The stem and each later stage halve H, W; T is kept."""

    def __init__(self, in_channels: int, n_classes: int, width: int, stages: int, dropout: float, stem_stride: int = 2):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, stem_stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()
        )
        blocks, c = [], width
        for s in range(stages):
            c_out = width * 2**s
            blocks.append(Block2Plus1D(c, c_out, stride=1 if s == 0 else 2))
            c = c_out
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, n_classes))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        y = self.stem(x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w))
        for b in self.blocks:
            b.t = t
            y = b(y)
        return y.view(n, t, *y.shape[1:]).mean(dim=(1, 3, 4))  # N, C

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
