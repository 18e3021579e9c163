"""A light FCOS detector (torchvision) on a small residual backbone with a feature pyramid.

Shared by object_detection (trains it) and object_tracking (fine-tunes object_detection's champion,
whose weights it reads through ``refs``, so both must build the same network).

The torchvision detector does the heavy lifting (anchor-free targets, focal + GIoU +
centre-ness losses, decoding, NMS); only the backbone is small, so it trains from scratch
on a CPU in minutes at 128x128 input.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from tasks_lib.core.backbones import BasicBlock

if TYPE_CHECKING:  # torchvision is imported where it is used: importing it takes seconds
    from torchvision.models.detection import FCOS


def _down(c_in: int, c_out: int) -> nn.Sequential:
    return BasicBlock(c_in, c_out, stride=2)


class PyramidBackbone(nn.Module):
    """Residual CNN giving strides 8, 16, 32 through a feature pyramid (``out_channels`` each)."""

    def __init__(self, width: int = 16, out_channels: int = 64):
        from torchvision.ops import FeaturePyramidNetwork

        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)
        )  # /2
        self.s4 = _down(width, 2 * width)  # /4
        self.s8 = _down(2 * width, 4 * width)  # /8
        self.s16 = _down(4 * width, 8 * width)  # /16
        self.s32 = _down(8 * width, 8 * width)  # /32
        self.fpn = FeaturePyramidNetwork([4 * width, 8 * width, 8 * width], out_channels)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor) -> OrderedDict:
        c8 = self.s8(self.s4(self.stem(x)))
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        return self.fpn(OrderedDict([("p3", c8), ("p4", c16), ("p5", c32)]))


def build_fcos(
    n_classes: int,
    image_size: int,
    width: int,
    fpn_channels: int,
    head_convs: int,
    object_scale: float,
    score_thresh: float = 0.05,
    detections: int = 50,
) -> FCOS:
    """FCOS for ``n_classes`` object classes (label 0 is background, as in torchvision).

    ``object_scale`` sets the per-level size ranges: level l (stride 8 * 2**l) handles objects
    whose largest centre-to-side distance lies in [4 s_l, 8 s_l) with s_l = object_scale * 2**l.
    """
    from torchvision.models.detection import FCOS
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.fcos import FCOSHead

    backbone = PyramidBackbone(width, fpn_channels)
    sizes = tuple((object_scale * 2**level,) for level in range(3))
    anchors = AnchorGenerator(sizes, ((1.0,),) * 3)
    head = FCOSHead(fpn_channels, 1, n_classes + 1, num_convs=head_convs)
    return FCOS(
        backbone,
        n_classes + 1,
        min_size=image_size,
        max_size=image_size,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.25, 0.25, 0.25],
        anchor_generator=anchors,
        head=head,
        score_thresh=score_thresh,
        nms_thresh=0.6,
        detections_per_img=detections,
        topk_candidates=200,
    )


def to_tensors(x: np.ndarray, device: torch.device) -> list[torch.Tensor]:
    """uint8 N x H x W x 3 images -> the list of float CHW tensors in [0, 1] torchvision detectors take."""
    return list(torch.from_numpy(np.ascontiguousarray(x)).to(device).permute(0, 3, 1, 2).float().div(255))


@torch.no_grad()
def detect(model: nn.Module, x: np.ndarray, batch: int = 64) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(boxes, scores, labels 0-based) per image of ``x`` (uint8 N x H x W x 3), in input pixels."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    for start in range(0, len(x), batch):
        for d in model(to_tensors(x[start : start + batch], device)):
            out.append((d["boxes"].cpu().numpy(), d["scores"].cpu().numpy(), d["labels"].cpu().numpy() - 1))
    return out
