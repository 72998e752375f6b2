"""The "off-the-shelf features" appearance head (MASA paper, Table 8 row 1): no learned weights.

Each box is RoI-Aligned (``aligned=True, sampling_ratio=0``) on *every* backbone level, each pooled
grid is averaged to a vector and L2-normalised, the per-level vectors are concatenated,
L2-normalised again and multiplied by ``scale``::

    e(box) = scale * normalize(concat_l normalize(mean_xy RoIAlign(F_l, box)))

so ``||e|| = scale`` and ``e_a . e_b = scale**2 * mean_l cos_l(a, b)``. The scale is a softmax
temperature for the tracker's bi-softmax; how the default (6) and the taps were chosen, on which
sequences, is in docs/adapter.md ("The raw-RoI baseline").

:class:`RawRoIFeatures` has the adapter's interface (``fuse``, ``embed``, ``embedding_dim``), so a
:class:`~masa.modeling.adapter.MasaModel` with it in the adapter's place runs through the same
:class:`~masa.modeling.predictor.MasaPredictor` as every trained adapter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import roi_align

__all__ = ["RawRoIFeatures", "pool_levels"]


def pool_levels(features: Sequence[Tensor], rois: Tensor, strides: Sequence[int], roi_size: int, sampling_ratio: int = 0) -> list[Tensor]:
    """RoI-Align ``rois [K, 5]`` (network-input px) on every level: ``[(K, C_l, roi_size, roi_size)]``."""
    rois = rois.to(device=features[0].device, dtype=torch.float32)
    return [
        roi_align(f.float(), rois, output_size=roi_size, spatial_scale=1.0 / s, sampling_ratio=sampling_ratio, aligned=True)
        for f, s in zip(features, strides)
    ]


class RawRoIFeatures(nn.Module):
    """Parameter-free embedding of boxes from raw backbone maps.

    Args:
        in_channels: channels of each backbone level, e.g. ``(24, 40, 112, 320)``.
        in_strides: stride of each level, e.g. ``(4, 8, 16, 32)``.
        roi_size: side of the RoI-Align grid before averaging.
        scale: L2 norm of every embedding.

    ``embed(features, rois [K, 5])`` -> ``float32[K, sum(in_channels)]``.
    """

    has_detection_heads = False

    def __init__(self, *, in_channels: Sequence[int], in_strides: Sequence[int], roi_size: int = 7, scale: float = 6.0) -> None:
        super().__init__()
        if len(in_channels) != len(in_strides):
            raise ValueError(f"RawRoIFeatures: {len(in_channels)} channel entries for {len(in_strides)} strides")
        if scale <= 0:
            raise ValueError(f"RawRoIFeatures: scale must be positive, got {scale}")
        if roi_size < 1:
            raise ValueError(f"RawRoIFeatures: roi_size must be >= 1, got {roi_size}")
        self.in_channels = tuple(int(c) for c in in_channels)
        self.in_strides = tuple(int(s) for s in in_strides)
        self.roi_size = int(roi_size)
        self.scale = float(scale)

    @property
    def embedding_dim(self) -> int:
        return sum(self.in_channels)

    def fuse(self, backbone_feats: Sequence[Tensor]) -> list[Tensor]:
        """The backbone maps unchanged (nothing to fuse)."""
        return list(backbone_feats)

    def embed(self, features: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Embeddings ``(K, D)`` of ``rois [K, 5]`` ``(batch_index, x1, y1, x2, y2)`` in network-input px."""
        if len(features) != len(self.in_strides):
            raise ValueError(f"RawRoIFeatures: expected {len(self.in_strides)} feature maps, got {len(features)}")
        vectors = [F.normalize(p.mean(dim=(2, 3)), dim=1) for p in pool_levels(features, rois, self.in_strides, self.roi_size)]
        return F.normalize(torch.cat(vectors, dim=1), dim=1) * self.scale  # (K, D)
