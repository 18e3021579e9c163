"""The face embedding network: a small residual CNN -> 128-d unit vector, with an ArcFace head."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tasks_lib.core.backbones import BasicBlock


class FaceEmbedder(nn.Module):
    """Residual stages (width, 2x, 4x; stride 2 between) -> global pool -> linear -> BN -> L2 norm.

    ``arc_weight`` holds one centre per training identity for the ArcFace loss (unused
    when embedding); ``threshold`` is the cosine above which two faces are the same
    person, chosen on validation pairs at the end of training and saved with the weights.
    """

    def __init__(self, in_channels: int, n_train_ids: int, width: int = 32, dim: int = 128):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.stages = nn.Sequential(
            BasicBlock(width, width, 1),
            BasicBlock(width, 2 * width, 2),
            BasicBlock(2 * width, 4 * width, 2),
            BasicBlock(4 * width, 4 * width, 2),
        )
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(4 * width, dim), nn.BatchNorm1d(dim))
        self.arc_weight = nn.Parameter(torch.randn(n_train_ids, dim) * 0.01)
        self.register_buffer("threshold", torch.tensor(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stages(self.stem(x))
        return F.normalize(self.embed(F.adaptive_avg_pool2d(x, 1)), dim=1)


def arcface_loss(emb: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor, s: float, m: float) -> torch.Tensor:
    """ArcFace (Deng et al. 2019): cross-entropy on s*cos(theta + m) for the true identity, s*cos(theta) otherwise."""
    cos = (emb.float() @ F.normalize(weight.float(), dim=1).T).clamp(-1 + 1e-6, 1 - 1e-6)
    theta = torch.acos(cos.gather(1, labels[:, None]))
    target = torch.cos(theta + m)
    # past pi - m the margin would raise cos again: fall back to a linear penalty there (as in insightface)
    target = torch.where(theta + m < torch.pi, target, cos.gather(1, labels[:, None]) - m * torch.sin(torch.tensor(m)))
    logits = cos.scatter(1, labels[:, None], target) * s
    return F.cross_entropy(logits, labels)
