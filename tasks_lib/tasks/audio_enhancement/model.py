"""A U-Net over STFT frames that predicts a magnitude mask, and the Wiener-filter baseline."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def conv_bn(c_in: int, c_out: int, k: int = 5, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k - 1) // 2
    return nn.Sequential(
        nn.Conv1d(c_in, c_out, k, stride=stride, padding=pad, dilation=dilation), nn.BatchNorm1d(c_out), nn.SiLU()
    )


class MaskUNet(nn.Module):
    """Noisy waveform -> enhanced waveform through a [0, 1] mask on the STFT magnitude (noisy phase kept).

    Frequency bins are the channels of a 1-D U-Net over time: two stride-2 downsamplings,
    dilated residual convolutions at the bottom, skip connections back up. Zero padding
    stays zero (mask x 0), so padded batches are exact after trimming.
    """

    def __init__(self, n_fft: int, hop: int, width: int, bottleneck_blocks: int):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        bins = n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.enc1 = conv_bn(bins, width)
        self.enc2 = conv_bn(width, 2 * width, stride=2)
        self.enc3 = conv_bn(2 * width, 2 * width, stride=2)
        self.mid = nn.ModuleList([conv_bn(2 * width, 2 * width, 3, dilation=2**i) for i in range(bottleneck_blocks)])
        self.dec2 = conv_bn(4 * width, width)
        self.dec1 = conv_bn(2 * width, width)
        self.out = nn.Conv1d(width + bins, bins, 1)

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        return torch.stft(wav, self.n_fft, self.hop, window=self.window, return_complex=True)

    def mask(self, spec: torch.Tensor) -> torch.Tensor:
        mag = spec.abs()
        x = torch.log(mag + 1e-4)
        x = x - x.mean(dim=(1, 2), keepdim=True)  # loudness-independent input
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        h = self.enc3(e2)
        for block in self.mid:
            h = h + block(h)
        h = F.interpolate(h, size=e2.shape[-1], mode="nearest")
        h = self.dec2(torch.cat([h, e2], 1))
        h = F.interpolate(h, size=e1.shape[-1], mode="nearest")
        h = self.dec1(torch.cat([h, e1], 1))
        return torch.sigmoid(self.out(torch.cat([h, x], 1)))

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.stft(wav)
        est = spec * self.mask(spec)
        return torch.istft(est, self.n_fft, self.hop, window=self.window, length=wav.shape[-1])


def wiener_filter(noisy: np.ndarray, n_fft: int = 256, hop: int = 64, quiet_fraction: float = 0.1) -> np.ndarray:
    """Classic single-channel Wiener filter, no learning.

    Noise power per frequency = mean power of the quietest ``quiet_fraction`` of frames
    (speech pauses); a priori SNR by the decision-directed rule (Ephraim & Malah, alpha 0.98);
    gain = xi / (1 + xi), floored at -20 dB to limit musical noise.
    """
    x = torch.from_numpy(np.asarray(noisy, dtype=np.float32))
    win = torch.hann_window(n_fft)
    spec = torch.stft(x, n_fft, hop, window=win, return_complex=True).numpy()
    power = np.abs(spec) ** 2  # bins, frames
    energy = power.sum(0)
    k = max(1, int(quiet_fraction * power.shape[1]))
    noise = power[:, np.argsort(energy)[:k]].mean(1, keepdims=True) + 1e-10
    gamma = power / noise
    gains = np.empty_like(power)
    prev = np.ones(power.shape[0])
    for t in range(power.shape[1]):
        xi = 0.98 * prev + 0.02 * np.maximum(gamma[:, t] - 1, 0)
        xi = np.maximum(xi, 10 ** (-25 / 10))
        g = np.maximum(xi / (1 + xi), 0.1)
        gains[:, t] = g
        prev = (g**2) * gamma[:, t]
    est = torch.from_numpy(spec * gains)
    return torch.istft(est, n_fft, hop, window=win, length=len(x)).numpy()
