"""Multi-level RoI feature extraction (mmdet ``SingleRoIExtractor`` semantics, torchvision ops).

A box of side ``s = sqrt(w * h)`` (in the network-input pixels) is pooled from pyramid level
``floor(log2(s / finest_scale + 1e-6))``, clamped to ``[0, L - 1]``; level ``l`` has stride
``strides[l]``. Pooling is ``torchvision.ops.roi_align(aligned=True, sampling_ratio=0)``, which is
mmcv's ``RoIAlign`` default (``pool_mode='avg'``, ``aligned=True``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align

__all__ = ["map_roi_levels", "multilevel_roi_align", "boxes_to_rois", "frame_boxes_to_rois"]


def map_roi_levels(boxes: Tensor, num_levels: int, finest_scale: float = 56.0) -> Tensor:
    """Pyramid level ``int64[N]`` for each box ``[N, 4]`` xyxy: ``floor(log2(sqrt(wh)/56 + 1e-6))``."""
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0))
    levels = torch.floor(torch.log2(scale / finest_scale + 1e-6))
    return levels.clamp(min=0, max=num_levels - 1).long()


def boxes_to_rois(boxes: Sequence[Tensor] | Tensor) -> Tensor:
    """Stack per-image boxes into RoIs ``[K, 5]`` ``(batch_index, x1, y1, x2, y2)``.

    ``boxes`` is a list with one ``[N_i, 4]`` tensor per image, or one ``[N, 4]`` tensor (image 0).
    """
    if isinstance(boxes, Tensor):
        boxes = [boxes]
    rois = [torch.cat([b.new_full((b.shape[0], 1), float(i)), b.float()], dim=1) for i, b in enumerate(boxes)]
    return torch.cat(rois) if rois else torch.zeros(0, 5)


def frame_boxes_to_rois(boxes: Tensor, height: int, width: int, scale: float) -> Tensor:
    """RoIs ``[N, 5]`` ``(0, x1, y1, x2, y2)`` in network-input px from ``boxes [N, 4]`` xyxy frame px.

    The one rule for every model: corners are ordered, clipped to the frame
    ``[0, width] x [0, height]``, multiplied by the preprocessing ``scale``, and each RoI is given
    at least one network pixel of width and height around its centre (so a box on the frame's
    edge or outside it still pools a valid, if tiny, region instead of an empty one).
    """
    x1y1 = torch.minimum(boxes[:, :2], boxes[:, 2:])
    x2y2 = torch.maximum(boxes[:, :2], boxes[:, 2:])
    limit = boxes.new_tensor([width, height])
    x1y1 = torch.minimum(x1y1.clamp(min=0), limit) * scale  # (N, 2) network px
    x2y2 = torch.minimum(x2y2.clamp(min=0), limit) * scale
    centre, size = (x1y1 + x2y2) / 2, (x2y2 - x1y1).clamp(min=1.0)
    return torch.cat([boxes.new_zeros(boxes.shape[0], 1), centre - size / 2, centre + size / 2], dim=1)


def multilevel_roi_align(
    features: Sequence[Tensor],
    rois: Tensor,
    strides: Sequence[int],
    output_size: int = 7,
    finest_scale: float = 56.0,
    sampling_ratio: int = 0,
) -> Tensor:
    """Pool ``rois`` from the pyramid level their size selects.

    Args:
        features: ``L`` maps ``(B, C, H_l, W_l)``; only the first ``len(strides)`` are used.
        rois: ``float[K, 5]`` ``(batch_index, x1, y1, x2, y2)`` in network-input pixels.
        strides: stride of each used level (e.g. ``(4, 8, 16, 32)``).
        output_size: side of the pooled grid (7 in MASA).
    Returns:
        ``float[K, C, output_size, output_size]``, rows in the order of ``rois``.
    """
    num_levels = len(strides)
    if len(features) < num_levels:
        raise ValueError(f"multilevel_roi_align: {len(features)} feature maps for {num_levels} strides")
    channels = features[0].shape[1]
    out = features[0].new_zeros(rois.shape[0], channels, output_size, output_size)
    if rois.shape[0] == 0:
        return out
    # RoI coordinates stay float32 (fp16 has ~0.5 px resolution near 1024 px); features are pooled
    # in float32 too and the result is cast back to the features' dtype.
    rois = rois.float()
    levels = map_roi_levels(rois[:, 1:], num_levels, finest_scale)
    for level in range(num_levels):
        index = (levels == level).nonzero().flatten()
        if index.numel() == 0:
            continue
        pooled = roi_align(
            features[level].float(),
            rois[index],
            output_size=output_size,
            spatial_scale=1.0 / strides[level],
            sampling_ratio=sampling_ratio,
            aligned=True,
        )
        out[index] = pooled.to(out.dtype)
    return out
