"""DnCNN (Zhang et al. 2017), residual learning: the network estimates the noise, which is subtracted.

With ``noise_map=True`` it also takes the noise level as a fourth input channel, as FFDNet
(Zhang et al. 2018) does: the same network then serves every noise level of the blind setting.
Training passes the true level (a 4-channel input); at inference the level is estimated from
the image itself, so the model stays blind.
"""

from __future__ import annotations

import torch
from torch import nn


def estimate_sigma(x: torch.Tensor) -> torch.Tensor:
    """Robust (MAD) estimate of the Gaussian noise std of each image of an NCHW batch, from the
    finest diagonal Haar detail over all channels (what scikit-image's ``estimate_sigma`` does);
    returns shape (N,), in the units of ``x``."""
    h, w = x.shape[2] // 2 * 2, x.shape[3] // 2 * 2
    x = x[:, :, :h, :w]
    hh = (x[:, :, 0::2, 0::2] - x[:, :, 0::2, 1::2] - x[:, :, 1::2, 0::2] + x[:, :, 1::2, 1::2]) / 2
    return hh.abs().flatten(1).median(1).values / 0.6745


class DnCNN(nn.Module):
    """``depth`` 3x3 convolutions of ``width`` channels with ReLU (batch norm left out: short CPU
    training converges as well without it and eval mode then equals train mode)."""

    def __init__(self, channels: int = 3, width: int = 48, depth: int = 10, noise_map: bool = False):
        super().__init__()
        self.channels, self.noise_map = channels, noise_map
        layers: list[nn.Module] = [nn.Conv2d(channels + noise_map, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(max(depth - 2, 0)):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)
        with torch.no_grad():  # start close to the identity (a small noise estimate), not exactly at it
            self.body[-1].weight.mul_(0.1)
            self.body[-1].bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: noisy images in [0, 1]; with ``noise_map``, optionally followed by one channel
        holding the noise std (in [0, 1] units), else the std is estimated per image."""
        noisy = x[:, : self.channels]
        inp = noisy - 0.5
        if self.noise_map:
            if x.shape[1] > self.channels:
                level = x[:, self.channels :]
            else:
                level = estimate_sigma(noisy).view(-1, 1, 1, 1).expand(-1, 1, *noisy.shape[2:])
            inp = torch.cat([inp, level], 1)
        return noisy - self.body(inp)
