"""A small CNN for 25x25 grayscale face / non-face patches."""

from __future__ import annotations

import torch
from torch import nn


class FaceCNN(nn.Module):
    """Three conv stages (25 -> 12 -> 6 -> global pool) and a linear head with two logits."""

    def __init__(self, width: int = 16, dropout: float = 0.2):
        super().__init__()
        w = width

        def stage(c_in: int, c_out: int) -> list[nn.Module]:
            return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]

        self.features = nn.Sequential(
            *stage(1, w),
            nn.MaxPool2d(2),
            *stage(w, 2 * w),
            nn.MaxPool2d(2),
            *stage(2 * w, 4 * w),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
