"""A word CNN for sentence classification (Kim 2014), trained from scratch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TextCNN(nn.Module):
    """Embeddings -> parallel 1-D convolutions (several widths) -> masked max over time -> linear.

    Trailing all-padding columns of a batch are cut first (same result, less work): short
    phrases dominate SST-2's training rows.
    """

    def __init__(
        self, vocab_size: int, dim: int, filters: int, widths: tuple[int, ...], n_classes: int, dropout: float
    ):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.convs = nn.ModuleList(nn.Conv1d(dim, filters, w, padding=w - 1) for w in widths)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(filters * len(widths), n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        used = (ids != 0).any(0)
        length = int(used.nonzero().max()) + 1 if used.any() else 1
        ids = ids[:, :length]
        x = self.drop(self.embed(ids)).transpose(1, 2)  # B, dim, T
        pooled = []
        for conv in self.convs:
            h = F.relu(conv(x))  # B, filters, T + w - 1 (windows overlapping the text)
            w = conv.kernel_size[0]
            # a window counts when it covers at least one real token
            valid = F.max_pool1d(F.pad((ids != 0).float(), (w - 1, w - 1)).unsqueeze(1), w, 1).squeeze(1) > 0
            pooled.append(h.masked_fill(~valid.unsqueeze(1), 0.0).amax(2))
        return self.head(self.drop(torch.cat(pooled, 1)))
