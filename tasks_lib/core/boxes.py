"""Box operations shared by the box tasks (detection, tracking, the blob baseline): torchvision.ops on numpy.

Boxes are ``x1y1x2y2`` in pixels, as numpy arrays (the tasks keep their targets in numpy);
the work is done by ``torchvision.ops`` in float64 so that results match COCO's own IoU to the last digit.
"""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou as _tv_box_iou
from torchvision.ops import nms as _tv_nms


def _as_boxes(a) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64).reshape(-1, 4))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (Nx4 x1y1x2y2) with every box in ``b`` (Mx4), an NxM float64 array.

    ``torchvision.ops.box_iou``; a pair whose union is empty (two degenerate boxes) has IoU 0, not NaN.
    """
    iou = _tv_box_iou(_as_boxes(a), _as_boxes(b)).numpy()
    return np.nan_to_num(iou, nan=0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes greedy NMS keeps (``torchvision.ops.nms``), highest score first.

    A box is dropped when its IoU with a kept, higher-scoring box exceeds ``iou_threshold``
    (1 or more keeps everything). Equal scores are ranked by index (a stable sort), so the
    result does not depend on the order torchvision's sort happens to give ties.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.argsort(-scores, kind="stable")
    if iou_threshold >= 1 or len(order) == 0:
        return order
    rank = torch.arange(len(order), 0, -1, dtype=torch.float64)  # distinct "scores" in the stable order
    keep = _tv_nms(_as_boxes(boxes)[torch.from_numpy(order)], rank, float(iou_threshold)).numpy()
    return order[keep]
