"""fastText-style classifier: a bag of word and hashed-bigram embeddings, then a linear layer."""

from __future__ import annotations

import torch
from torch import nn


class FastText(nn.Module):
    """Embedding bag over ``[word ids..., bigram ids...]`` (0 = padding), scaled by 1/sqrt(n), linear head.

    Summing and dividing by sqrt(count) sits between a sum (long texts dominate) and a
    mean (a single strong word drowns); a hidden layer adds little on topic data.
    """

    def __init__(self, n_ids: int, dim: int, n_classes: int, dropout: float):
        super().__init__()
        self.embed = nn.EmbeddingBag(n_ids, dim, mode="sum", padding_idx=0)
        nn.init.normal_(self.embed.weight, std=0.1)
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(dim, n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        n = (ids != 0).sum(1, keepdim=True).clamp_min(1).float()
        return self.head(self.drop(self.embed(ids) / n.sqrt()))
