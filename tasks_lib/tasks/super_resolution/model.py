"""ESPCN (Shi et al. 2016) with a bicubic skip: the network predicts the detail bicubic misses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ResidualESPCN(nn.Module):
    """Y channel in (low resolution, [0, 1]) -> Y channel out (``scale`` x larger).

    Convolutions run at low resolution; a sub-pixel convolution (PixelShuffle) upsamples;
    the result is added to the bicubic upsampling of the input, so an untrained network
    starts at bicubic quality.
    """

    def __init__(self, scale: int, width: int = 64, depth: int = 4):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, width, 5, padding=2), nn.PReLU(width)]
        for _ in range(max(depth - 2, 0)):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.PReLU(width)]
        layers += [nn.Conv2d(width, scale * scale, 3, padding=1), nn.PixelShuffle(scale)]
        self.body = nn.Sequential(*layers)
        nn.init.zeros_(self.body[-2].weight)
        nn.init.zeros_(self.body[-2].bias)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(x, scale_factor=self.scale, mode="bicubic", align_corners=False)
        return up + self.body(x - 0.5)
