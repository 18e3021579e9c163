"""DnCNN (Zhang et al. 2017), residual learning: the network estimates the noise, which is subtracted."""

from __future__ import annotations

import torch
from torch import nn


class DnCNN(nn.Module):
    """``depth`` 3x3 convolutions of ``width`` channels with ReLU (batch norm left out: short CPU
    training converges as well without it and eval mode then equals train mode)."""

    def __init__(self, channels: int = 3, width: int = 48, depth: int = 10):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(max(depth - 2, 0)):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        with torch.no_grad():  # start close to the identity (a small noise estimate), not exactly at it
            self.body[-1].weight.mul_(0.1)
            self.body[-1].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.body(x - 0.5)
