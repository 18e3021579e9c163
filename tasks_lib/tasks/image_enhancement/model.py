"""A two-level U-Net whose bottleneck also sees the image's global statistics.

Exposure, gamma and colour cast are properties of the whole image: a patch-sized receptive
field cannot tell a dark object from a dark image, so the bottleneck features are concatenated
with their global average (broadcast back over the image) before decoding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1),
        nn.LeakyReLU(0.1, inplace=True),
    )


class ContextUNet(nn.Module):
    """RGB in [0, 1] -> enhanced RGB; sides must be multiples of 4 (``photos.run_model`` pads)."""

    multiple = 4

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.enc1, self.enc2, self.enc3 = _block(3, w), _block(w, 2 * w), _block(2 * w, 4 * w)
        self.mix = nn.Conv2d(8 * w, 4 * w, 1)
        self.dec2, self.dec1 = _block(6 * w, 2 * w), _block(3 * w, w)
        self.out = nn.Conv2d(w, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(x)
        e2 = self.enc2(F.avg_pool2d(e1, 2))
        e3 = self.enc3(F.avg_pool2d(e2, 2))
        g = e3.mean(dim=(2, 3), keepdim=True).expand_as(e3)
        e3 = F.leaky_relu(self.mix(torch.cat([e3, g], 1)), 0.1)
        d2 = self.dec2(torch.cat([F.interpolate(e3, scale_factor=2, mode="bilinear", align_corners=False), e2], 1))
        d1 = self.dec1(torch.cat([F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False), e1], 1))
        return torch.sigmoid(self.out(d1))
