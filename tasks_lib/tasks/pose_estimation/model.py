"""A small heatmap keypoint network in the SimpleBaseline spirit, with U-Net skips.

Residual encoder down to 1/8 of the input, then upsample + 3x3 conv back to 1/2,
adding the encoder's map of the same size, and a 1x1 conv to one heatmap per joint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class ResBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = conv_bn(c_in, c_out, stride)
        self.conv2 = nn.Sequential(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out))
        self.short = (
            nn.Identity()
            if stride == 1 and c_in == c_out
            else nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.conv2(self.conv1(x)) + self.short(x))


class HeatmapNet(nn.Module):
    """(N, 3, S, S) -> (N, K, S/2, S/2) joint heatmaps."""

    stride = 2

    def __init__(self, n_joints: int, width: int):
        super().__init__()
        w = width
        self.stem = conv_bn(3, w, 2)  # 1/2
        self.enc1 = ResBlock(w, w, 1)  # 1/2
        self.enc2 = ResBlock(w, 2 * w, 2)  # 1/4
        self.enc3 = ResBlock(2 * w, 4 * w, 2)  # 1/8
        self.mid = ResBlock(4 * w, 4 * w, 1)
        self.up2 = conv_bn(4 * w, 2 * w)
        self.up1 = conv_bn(2 * w, w)
        self.refine = conv_bn(w, w)
        self.head = nn.Conv2d(w, n_joints, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(self.stem(x))
        e2 = self.enc2(e1)
        y = self.mid(self.enc3(e2))
        y = self.up2(F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)) + e2
        y = self.up1(F.interpolate(y, scale_factor=2, mode="bilinear", align_corners=False)) + e1
        return self.head(self.refine(y))
