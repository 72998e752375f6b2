"""Feature pyramids: the first box of the MASA adapter (``masa_adapter.0`` in the authors' weights).

Two pyramids, both ending in 5 maps of ``out_channels`` (256) channels:

* :class:`SimpleFPN` (ViTDet style) for plain ViTs such as SAM's image encoder: four maps at
  stride 16 (four tapped transformer blocks) go one each through an up/down-sampling op to strides
  4, 8, 16 and 32, then through a standard FPN (1x1 laterals with bias, top-down nearest upsample
  and add, 3x3 output convs with bias, no norm), plus an extra level at stride 64.
* :class:`FPN` for hierarchical backbones (Swin, ResNet, EfficientNet-Lite): 1x1 laterals and 3x3
  output convs (with BatchNorm and no bias when ``norm="bn"``, as in the authors' configs, where
  their SyncBN becomes BatchNorm2d), no activation, extra levels by ``max_pool2d(kernel 1, stride 2)``.

Sub-module names reproduce the authors' state-dict keys (``fpn1.0.weight``,
``lateral_convs.0.conv.weight``, ``lateral_convs.0.bn.running_mean``, ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["LayerNorm2d", "ConvNorm", "SimpleFPN", "FPN"]


class LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a ``(B, C, H, W)`` map (channels-last normalisation).

    The inner ``nn.LayerNorm`` is called ``ln`` so that the parameters are ``ln.weight``/``ln.bias``
    as in the authors' ``Norm2d``.
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(channels, eps=eps)

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, H, W, C)
        x = self.ln(x)
        return x.permute(0, 3, 1, 2).contiguous()  # (B, C, H, W)


class ConvNorm(nn.Module):
    """``conv`` (bias only without norm) then optional ``bn``: mmcv ``ConvModule`` without activation.

    Keys: ``conv.weight`` (+ ``conv.bias`` when ``norm="none"``), ``bn.{weight,bias,running_mean,
    running_var,num_batches_tracked}`` when ``norm="bn"``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, norm: Literal["bn", "none"] = "none") -> None:
        super().__init__()
        if norm not in ("bn", "none"):
            raise ValueError(f"ConvNorm: norm must be 'bn' or 'none', got {norm!r}")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=norm == "none")
        self.bn = nn.BatchNorm2d(out_channels) if norm == "bn" else None
        nn.init.xavier_uniform_(self.conv.weight)  # mmdet FPN init_cfg: Xavier(uniform) on Conv2d
        if self.conv.bias is not None:
            nn.init.zeros_(self.conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x)
        return self.bn(x) if self.bn is not None else x


def _top_down(laterals: list[Tensor]) -> list[Tensor]:
    """FPN top-down pathway: add the nearest-upsampled coarser lateral to each finer one."""
    laterals = list(laterals)
    for i in range(len(laterals) - 1, 0, -1):
        finer = laterals[i - 1]
        laterals[i - 1] = finer + F.interpolate(laterals[i], size=finer.shape[-2:], mode="nearest")
    return laterals


def _extra_levels(outs: list[Tensor], num_outs: int) -> list[Tensor]:
    """Append ``max_pool2d(kernel 1, stride 2)`` levels (mmdet FPN without extra convs)."""
    outs = list(outs)
    while len(outs) < num_outs:
        outs.append(F.max_pool2d(outs[-1], 1, stride=2))
    return outs


class SimpleFPN(nn.Module):
    """ViTDet-style pyramid for a plain ViT (the authors' ``SimpleFPN`` for SAM).

    Args:
        in_channels: ``C`` of every input map (768 for SAM ViT-B, 1280 for ViT-H).
        out_channels: channels of every output level (256).
        num_outs: number of output levels (5: strides 4, 8, 16, 32, 64).
        in_stride: stride of the input maps (16 for SAM).

    ``forward(feats)`` takes 4 maps ``(B, C, H, W)`` at stride 16 (the 4 tapped blocks, in order)
    and returns ``num_outs`` maps ``(B, out_channels, ...)`` at strides ``self.strides``.
    """

    def __init__(self, in_channels: int, out_channels: int = 256, num_outs: int = 5, in_stride: int = 16) -> None:
        super().__init__()
        if num_outs < 4:
            raise ValueError(f"SimpleFPN: num_outs must be >= 4, got {num_outs}")
        c = int(in_channels)
        self.in_channels = c
        self.out_channels = int(out_channels)
        self.num_outs = int(num_outs)
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2),
            LayerNorm2d(c, eps=1e-6),
            nn.GELU(),
            nn.ConvTranspose2d(c, c, kernel_size=2, stride=2),
        )  # x4 up: stride in/4
        self.fpn2 = nn.Sequential(nn.ConvTranspose2d(c, c, kernel_size=2, stride=2))  # stride in/2
        self.fpn3 = nn.Identity()  # stride in
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)  # stride 2*in
        self.lateral_convs = nn.ModuleList(ConvNorm(c, out_channels, 1) for _ in range(4))
        self.fpn_convs = nn.ModuleList(ConvNorm(out_channels, out_channels, 3) for _ in range(4))
        base = (in_stride // 4, in_stride // 2, in_stride, in_stride * 2)
        self.strides: tuple[int, ...] = tuple(base) + tuple(base[-1] * 2 ** (i + 1) for i in range(num_outs - 4))

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        if len(feats) != 4:
            raise ValueError(f"SimpleFPN: expected 4 input maps (one per tapped block), got {len(feats)}")
        ops = (self.fpn1, self.fpn2, self.fpn3, self.fpn4)
        scaled = [op(x) for op, x in zip(ops, feats)]  # strides 4, 8, 16, 32 (for in_stride 16)
        laterals = _top_down([conv(x) for conv, x in zip(self.lateral_convs, scaled)])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        return _extra_levels(outs, self.num_outs)


class FPN(nn.Module):
    """mmdet ``FPN`` (no extra convs, no activation) for hierarchical backbones.

    Args:
        in_channels: channels of each input level, finest first (e.g. ``(256, 512, 1024)`` Swin-B,
            ``(256, 512, 1024, 2048)`` ResNet-50).
        out_channels: channels of every output level (256).
        num_outs: number of output levels; levels beyond the inputs come from
            ``max_pool2d(kernel 1, stride 2)`` of the last one.
        norm: ``"bn"`` (BatchNorm2d after every conv, convs without bias; the authors' SyncBN
            configs) or ``"none"`` (convs with bias).
        in_strides: optional strides of the inputs; when given, ``self.strides`` holds the output
            strides (otherwise it is ``None``; see :meth:`strides_for`).
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        out_channels: int = 256,
        num_outs: int = 5,
        norm: Literal["bn", "none"] = "bn",
        in_strides: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        in_channels = tuple(int(c) for c in in_channels)
        if num_outs < len(in_channels):
            raise ValueError(f"FPN: num_outs ({num_outs}) must be >= the number of inputs ({len(in_channels)})")
        if in_strides is not None and len(in_strides) != len(in_channels):
            raise ValueError(f"FPN: {len(in_strides)} strides for {len(in_channels)} input levels")
        self.in_channels = in_channels
        self.out_channels = int(out_channels)
        self.num_outs = int(num_outs)
        self.lateral_convs = nn.ModuleList(ConvNorm(c, out_channels, 1, norm) for c in in_channels)
        self.fpn_convs = nn.ModuleList(ConvNorm(out_channels, out_channels, 3, norm) for _ in in_channels)
        self.strides: tuple[int, ...] | None = None if in_strides is None else self.strides_for(in_strides)

    def strides_for(self, in_strides: Sequence[int]) -> tuple[int, ...]:
        """Output strides for inputs at ``in_strides``: the inputs' then x2 per extra level."""
        strides = [int(s) for s in in_strides]
        while len(strides) < self.num_outs:
            strides.append(strides[-1] * 2)
        return tuple(strides)

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        if len(feats) != len(self.lateral_convs):
            raise ValueError(f"FPN: expected {len(self.lateral_convs)} input maps, got {len(feats)}")
        laterals = _top_down([conv(x) for conv, x in zip(self.lateral_convs, feats)])
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        return _extra_levels(outs, self.num_outs)
