"""The CPU-friendly trained appearance head: a learned residual on the raw RoI features.

For boxes ``rois [K, 5]`` ``(batch_index, x1, y1, x2, y2)`` in network-input px and the frozen
backbone's maps ``F_l`` (``C_l`` channels, stride ``s_l``)::

    P_l   = RoIAlign(F_l, rois, roi_size, 1/s_l, sampling_ratio, aligned)          # (K, C_l, r, r)
    base  = normalize(concat_l normalize(mean_xy P_l))             # (K, D), D = sum_l C_l: the raw baseline
    grid  = concat_l normalize(flatten(avgpool_g(P_l)))            # (K, D * g * g): the box's layout
    delta = W2 relu(LN(W1 [base_l..., grid]))                      # (K, D), W2 zero-initialised
    e     = exp(log_scale) * normalize(base + delta)               # (K, D), ||e|| = the learned scale

At initialisation ``e`` equals :class:`~masa.modeling.baseline.RawRoIFeatures` (with
``scale = scale_init``; exactly so with ``sampling_ratio=0``), so training can only move away from what the frozen features already
know where the contrastive loss asks for it. The norm ``exp(log_scale)`` is learned with the
rest (the tracker's bi-softmax works on raw dot products), so no hand-tuned scale is left.
Why this head and not the paper's pyramid + deformable fusion on Lite0: docs/training.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masa.modeling.baseline import pool_levels

__all__ = ["ResidualRoIHead"]


class ResidualRoIHead(nn.Module):
    """Raw RoI features plus a learned, zero-initialised residual (module docstring).

    Args:
        in_channels: channels of each backbone level, e.g. ``(24, 40, 112, 320)``.
        in_strides: stride of each level, e.g. ``(4, 8, 16, 32)``.
        roi_size: side of the RoI-Align grid.
        grid: side of the layout grid each pooled RoI is averaged to (``0``: no layout input).
        hidden: width of the residual MLP; ``0``: no MLP, only a learned weight per channel of the
            raw embedding (``e = scale * normalize(base * exp(w))``, ``w = 0`` at initialisation).
        scale_init: initial norm of the embeddings.
        sampling_ratio: RoI-Align samples per bin side (``0``: adaptive, as the raw baseline;
            ``2`` bounds the cost of large boxes on the stride-4 map, which dominates training).

    ``embed(features, rois [K, 5])`` -> ``float32[K, sum(in_channels)]``.
    """

    has_detection_heads = False

    def __init__(
        self,
        *,
        in_channels: Sequence[int],
        in_strides: Sequence[int],
        roi_size: int = 7,
        grid: int = 3,
        hidden: int = 512,
        scale_init: float = 6.0,
        sampling_ratio: int = 2,
    ) -> None:
        super().__init__()
        if len(in_channels) != len(in_strides):
            raise ValueError(f"ResidualRoIHead: {len(in_channels)} channel entries for {len(in_strides)} strides")
        if not (roi_size >= 1 and grid >= 0 and hidden >= 0 and scale_init > 0):
            raise ValueError(f"ResidualRoIHead: bad sizes roi_size={roi_size} grid={grid} hidden={hidden} scale_init={scale_init}")
        self.in_channels = tuple(int(c) for c in in_channels)
        self.in_strides = tuple(int(s) for s in in_strides)
        self.roi_size = int(roi_size)
        self.grid = int(grid)
        self.sampling_ratio = int(sampling_ratio)
        dim = sum(self.in_channels)
        self.hidden = int(hidden)
        if self.hidden > 0:
            in_features = dim * (1 + self.grid * self.grid)
            self.fc1 = nn.Linear(in_features, hidden)
            self.norm = nn.LayerNorm(hidden)
            self.fc2 = nn.Linear(hidden, dim)
            nn.init.xavier_uniform_(self.fc1.weight)
            nn.init.zeros_(self.fc1.bias)
            nn.init.zeros_(self.fc2.weight)
            nn.init.zeros_(self.fc2.bias)
        else:  # a learned metric only: one log-weight per channel of the raw embedding
            self.channel_log_weight = nn.Parameter(torch.zeros(dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(scale_init)))

    @property
    def embedding_dim(self) -> int:
        return sum(self.in_channels)

    def fuse(self, backbone_feats: Sequence[Tensor]) -> list[Tensor]:
        """The backbone maps unchanged (nothing to fuse)."""
        return list(backbone_feats)

    def embed(self, features: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Embeddings ``(K, D)`` of ``rois [K, 5]`` ``(batch_index, x1, y1, x2, y2)`` in network-input px."""
        if len(features) != len(self.in_strides):
            raise ValueError(f"ResidualRoIHead: expected {len(self.in_strides)} feature maps, got {len(features)}")
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"ResidualRoIHead.embed: expected rois [K, 5] (batch_index, x1, y1, x2, y2), got {list(rois.shape)}")
        means, layouts = [], []
        for pooled in pool_levels(features, rois, self.in_strides, self.roi_size, self.sampling_ratio):  # (K, C_l, r, r)
            means.append(F.normalize(pooled.mean(dim=(2, 3)), dim=1))  # (K, C_l)
            if self.grid > 0 and self.hidden > 0:
                cells = F.adaptive_avg_pool2d(pooled, self.grid).flatten(1)  # (K, C_l * g * g)
                layouts.append(F.normalize(cells, dim=1))
        base = F.normalize(torch.cat(means, dim=1), dim=1)  # (K, D)
        if self.hidden == 0:
            return F.normalize(base * self.channel_log_weight.exp(), dim=1) * self.log_scale.exp()  # (K, D)
        hidden = F.relu(self.norm(self.fc1(torch.cat(means + layouts, dim=1))))  # (K, hidden)
        return F.normalize(base + self.fc2(hidden), dim=1) * self.log_scale.exp()  # (K, D)
