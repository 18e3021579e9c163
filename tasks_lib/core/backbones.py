"""Residual CNN blocks shared by the image tasks: ``BasicBlock`` (ResNet's) and ``ResidualCNN``.

image_classification and transfer_learning classify with ``ResidualCNN``, image_generation judges
with it; face_verification and the detector (``core/detector.py``) stack ``BasicBlock``s.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """ResNet's basic block: two 3x3 conv-BN, a 1x1 conv-BN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResidualCNN(nn.Module):
    """A small ResNet whose depth follows the input: downsample until about 4x4.

    8x8 digits get two stages (8 -> 4), 32x32 CIFAR four (32 -> 16 -> 8 -> 4).
    """

    def __init__(self, in_channels: int, n_classes: int, size: int, width: int, blocks: int, dropout: float):
        super().__init__()
        n_stages = max(1, min(4, int(math.log2(max(size, 2))) - 1))
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        c = width
        for stage in range(n_stages):
            c_out = width * 2**stage
            for b in range(blocks):
                layers.append(BasicBlock(c, c_out, stride=2 if (stage > 0 and b == 0) else 1))
                c = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))
