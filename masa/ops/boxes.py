"""Box utilities. All boxes are ``float[N, 4]`` ``(x1, y1, x2, y2)`` in pixels unless stated."""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.ops import box_iou as _tv_box_iou

__all__ = ["box_iou", "box_centers", "xyxy_to_xywh", "xywh_to_xyxy", "clip_boxes"]


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Pairwise IoU ``float[N, M]`` of ``boxes_a [N, 4]`` and ``boxes_b [M, 4]`` (xyxy).

    Degenerate (zero-area) boxes give IoU 0 instead of NaN.
    """
    if boxes_a.numel() == 0 or boxes_b.numel() == 0:
        return boxes_a.new_zeros(boxes_a.shape[0], boxes_b.shape[0])
    return _tv_box_iou(boxes_a.float(), boxes_b.float()).nan_to_num_(0.0)


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
