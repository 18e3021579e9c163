"""The CTC acoustic model (log-mel -> conv subsampling -> conformer-style conv blocks) and its decoders."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tasks_lib.core.audio import LogMel
from tasks_lib.core.text_metrics import nearest_word

BLANK = 0


class ConvBlock(nn.Module):
    """The convolution module of a conformer: pointwise-GLU, depthwise (dilated), norm, pointwise; residual."""

    def __init__(self, width: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.norm = nn.GroupNorm(1, width)
        self.pw1 = nn.Conv1d(width, 2 * width, 1)
        self.dw = nn.Conv1d(width, width, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation, groups=width)
        self.bn = nn.BatchNorm1d(width)
        self.pw2 = nn.Conv1d(width, width, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.glu(self.pw1(self.norm(x)), dim=1)
        y = self.pw2(F.silu(self.bn(self.dw(y))))
        return x + self.drop(y)


class CTCSpeechModel(nn.Module):
    """Waveforms (batch, samples) + lengths -> per-frame log-probabilities over characters (+ blank).

    Features are normalised per utterance (mean and variance over its own frames, padding
    excluded), so loudness and microphone differences between speakers mostly cancel out.
    """

    def __init__(
        self, sample_rate: int, n_vocab: int, n_mels: int, width: int, blocks: int, kernel: int, dropout: float
    ):
        super().__init__()
        hop = sample_rate // 100  # 10 ms frames
        self.frontend = LogMel(sample_rate, n_fft=2 * (sample_rate // 40), hop=hop, n_mels=n_mels)
        self.hop = hop
        self.subsample = nn.Sequential(
            nn.Conv1d(n_mels, width, 5, stride=3, padding=2), nn.BatchNorm1d(width), nn.SiLU()
        )  # 30 ms output frames: 33 per second, enough for CTC on ~15 characters per second of speech
        self.blocks = nn.Sequential(
            *[ConvBlock(width, kernel, dilation=2 ** (i % 3), dropout=dropout) for i in range(blocks)]
        )
        self.head = nn.Sequential(nn.GroupNorm(1, width), nn.Conv1d(width, n_vocab, 1))

    def feature_lengths(self, n_samples: torch.Tensor) -> torch.Tensor:
        return n_samples // self.hop + 1

    def output_lengths(self, n_samples: torch.Tensor) -> torch.Tensor:
        return (self.feature_lengths(n_samples) - 1) // 3 + 1

    def features(self, wav: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats = self.frontend(wav)  # B, M, T
        t = torch.arange(feats.shape[-1], device=wav.device)
        mask = (t[None, :] < self.feature_lengths(lengths)[:, None]).float()[:, None, :]
        n = mask.sum(-1, keepdim=True).clamp_min(1)
        mean = (feats * mask).sum(-1, keepdim=True) / n
        var = ((feats - mean).pow(2) * mask).sum(-1, keepdim=True) / n
        return (feats - mean) / (var + 1e-5).sqrt() * mask

    def forward(self, wav: torch.Tensor, lengths: torch.Tensor, feats: torch.Tensor | None = None) -> torch.Tensor:
        x = self.features(wav, lengths) if feats is None else feats
        x = self.blocks(self.subsample(x))
        return F.log_softmax(self.head(x), dim=1).transpose(1, 2)  # B, T, V


def greedy_decode(log_probs: np.ndarray, vocab: str) -> str:
    """Best path: argmax per frame, merge repeats, drop blanks (index 0; vocab[i - 1] otherwise)."""
    best = log_probs.argmax(-1)
    out, prev = [], BLANK
    for k in best:
        if k != prev and k != BLANK:
            out.append(vocab[k - 1])
        prev = k
    return " ".join("".join(out).split())


def beam_decode(log_probs: np.ndarray, vocab: str, beam: int = 8, prune: float = -8.0, top_k: int = 4) -> str:
    """CTC prefix beam search (no language model): sums over all alignments of each prefix."""
    beams: dict[tuple, tuple[float, float]] = {(): (0.0, -np.inf)}  # prefix -> (log p ends blank, ends non-blank)
    for frame in log_probs:
        nxt: dict[tuple, list[float]] = {}

        def add(prefix, pb, pnb, nxt=nxt):
            cur = nxt.setdefault(prefix, [-np.inf, -np.inf])
            cur[0], cur[1] = np.logaddexp(cur[0], pb), np.logaddexp(cur[1], pnb)

        top = np.argsort(frame)[-top_k:]
        candidates = top[frame[top] > prune]  # only likely characters extend a prefix
        for prefix, (pb, pnb) in beams.items():
            total = np.logaddexp(pb, pnb)
            add(prefix, total + frame[BLANK], -np.inf)
            for k in candidates:
                if k == BLANK:
                    continue
                p = frame[k]
                if prefix and prefix[-1] == k:
                    add(prefix + (k,), -np.inf, pb + p)  # a repeat needs a blank in between
                    add(prefix, -np.inf, pnb + p)  # or it merges into the last character
                else:
                    add(prefix + (k,), -np.inf, total + p)
        beams = dict(sorted(((k, tuple(v)) for k, v in nxt.items()), key=lambda kv: -np.logaddexp(*kv[1]))[:beam])
    best = max(beams.items(), key=lambda kv: np.logaddexp(*kv[1]))[0]
    return " ".join("".join(vocab[k - 1] for k in best).split())


def snap_to_lexicon(text: str, lexicon: list[str]) -> str:
    """Closed-vocabulary decoding: each word becomes the nearest lexicon word by edit distance.

    The recogniser is trained on a fixed vocabulary (digits and a small grammar), so a
    misspelt word ("thre", "fov") is mapped to the word it was closest to ("three", "four").
    Ties go to the word listed first; an empty lexicon leaves the text unchanged.
    """
    if not lexicon:
        return text
    known = set(lexicon)
    return " ".join(w if w in known else nearest_word(w, lexicon) for w in text.split())
