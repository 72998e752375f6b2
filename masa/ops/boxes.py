"""Box utilities. All boxes are ``float[N, 4]`` ``(x1, y1, x2, y2)`` in pixels unless stated."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchvision.ops import box_iou as _tv_box_iou

__all__ = ["box_iou", "box_centers", "xyxy_to_xywh", "xywh_to_xyxy", "clip_boxes", "box_iou_xywh_np"]


#: pairs per torchvision ``box_iou`` call (~100 MB of temporaries); larger problems run in row chunks.
_IOU_CHUNK = 2**22


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Pairwise IoU ``float[N, M]`` of ``boxes_a [N, 4]`` and ``boxes_b [M, 4]`` (xyxy).

    Degenerate (zero-area) boxes give IoU 0 instead of NaN.
    """
    if boxes_a.numel() == 0 or boxes_b.numel() == 0:
        return boxes_a.new_zeros(boxes_a.shape[0], boxes_b.shape[0])
    a, b = boxes_a.float(), boxes_b.float()
    n, m = a.shape[0], b.shape[0]
    if n * m <= _IOU_CHUNK:
        return _tv_box_iou(a, b).nan_to_num_(0.0)
    # Large crowds: torchvision builds three [N, M, 2] temporaries; row chunks bound them (same values).
    out = a.new_empty(n, m)
    step = max(1, _IOU_CHUNK // m)
    for start in range(0, n, step):
        out[start : start + step] = _tv_box_iou(a[start : start + step], b).nan_to_num_(0.0)
    return out


def box_centers(boxes: Tensor) -> Tensor:
    """Centres ``float[N, 2]`` ``(cx, cy)`` of ``boxes [N, 4]``."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def xyxy_to_xywh(boxes: Tensor) -> Tensor:
    """``(x1, y1, x2, y2)`` -> ``(x, y, w, h)`` (top-left corner and size)."""
    return torch.cat([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], dim=1)


def xywh_to_xyxy(boxes: Tensor) -> Tensor:
    """``(x, y, w, h)`` -> ``(x1, y1, x2, y2)``."""
    return torch.cat([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], dim=1)


def clip_boxes(boxes: Tensor, height: int, width: int) -> Tensor:
    """Clip ``boxes [N, 4]`` to the image ``[0, width] x [0, height]``."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def box_iou_xywh_np(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``float64[N, M]`` of numpy ``(x, y, w, h)`` boxes ``[N, 4]`` and ``[M, 4]``.

    The evaluation similarity: the same operations, in the same order, as TrackEval's and the TETA
    authors' ``_BaseDataset._calculate_box_ious`` (so scores match theirs bit for bit). A box whose
    area is <= eps (zero or negative width or height) overlaps nothing: its IoU is 0.
    """
    eps = np.finfo(float).eps
    a = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None, :]) - np.maximum(a[:, None, 0], b[None, :, 0])
    ih = np.minimum(ay2[:, None], by2[None, :]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.maximum(iw, 0) * np.maximum(ih, 0)
    area_a = (ax2 - a[:, 0]) * (ay2 - a[:, 1])
    area_b = (bx2 - b[:, 0]) * (by2 - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= eps, :] = 0
    inter[:, area_b <= eps] = 0
    inter[union <= eps] = 0
    union[union <= eps] = 1
    return inter / union
