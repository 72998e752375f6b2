"""Dynamic feature fusion: the second box of the MASA adapter (``masa_adapter.1``).

Each block mixes every pyramid level ``l`` with its neighbours through modulated deformable 3x3
convolutions (DCNv2, ``torchvision.ops.deform_conv2d`` with ``mask=``) whose offsets and masks are
predicted from ``x[l]``:

    out[l] = mean of { mid(x[l]),  low(x[l-1]) (stride 2) if l > 0,
                       upsample(high(x[l+1]), size of x[l]) if l < L-1 }

Two variants, as in the authors' configs:

* :class:`DeformFusion` (GDINO, Detic, R50): MASA's "modified DyHead" without attention; each
  branch has its own offsets/mask (one 81-channel offset conv: 3 x (18 offsets) then 3 x (9 masks)).
* :class:`DyHead` (SAM variants): mmdet's ``DyHead``: one 27-channel offset conv shared by the
  three branches, scale-aware attention on each branch and task-aware attention (DyReLU) on the sum.

Offset layout: channel ``2k`` is the y (row) offset and ``2k + 1`` the x offset of kernel tap
``k = i * 3 + j``, then 9 mask channels, one per tap. mmcv's ``ModulatedDeformConv2d`` kernel and
``torchvision.ops.deform_conv2d`` read the same layout, so the authors' weights apply unchanged.
On CPU the convolution runs through :func:`masa.ops.deform.modulated_deform_conv2d`, a vectorised
equivalent of torchvision's kernel (same outputs and gradients up to float rounding, several times
faster); on CUDA through torchvision's fused kernel (:func:`masa.ops.deform.deform_conv2d_auto`).

**The high-branch "flat read" quirk.** The offsets for the ``high`` branch are predicted at the
size ``(H, W)`` of ``x[l]`` but the convolution runs on the smaller ``x[l+1]`` (output ``(h, w)``).
mmcv 2.1.0 (the version the authors pin) passes the offset tensor's data pointer to its kernel with
no shape or contiguity check, and the kernel reads it as a dense ``(18, h, w)`` array. So what the
released weights were trained and evaluated with is, per image ``b``::

    offset_used[b] = offset[b].reshape(-1)[: 18 * h * w].view(18, h, w)     # not offset[b, :, :h, :w]

and the same for the 9 mask channels of :class:`DeformFusion` (in mmdet's :class:`DyHead` the mask
is sliced and then passed through ``sigmoid``, which materialises a contiguous tensor, so there the
mask *is* the proper top-left crop; only its offsets are flat-read). ``official_flat_read=True``
(the default) reproduces this so that the authors' weights behave as they do under mmcv;
``official_flat_read=False`` uses the intended top-left crop ``[:, :, :h, :w]`` instead (the
sensible choice when training from scratch). This reading of the mmcv kernel has not been checked
numerically against mmcv on a GPU yet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from masa.ops.deform import deform_conv2d_auto

__all__ = [
    "ModulatedDeformConv2d",
    "DyDCNv2",
    "DyReLU",
    "flat_read",
    "top_left_crop",
    "fit_to_output",
    "DeformFusionBlock",
    "DeformFusion",
    "DyHeadBlock",
    "DyHead",
]


def flat_read(t: Tensor, size: tuple[int, int]) -> Tensor:
    """What mmcv's DCN kernel reads from a ``(B, K, H, W)`` tensor for an ``(h, w)`` output.

    Returns ``t[b].reshape(-1)[: K * h * w].view(K, h, w)`` for every ``b`` (``(B, K, h, w)``);
    ``t`` itself when ``(H, W) == (h, w)``.
    """
    b, k, height, width = t.shape
    h, w = size
    if (height, width) == (h, w):
        return t
    if h * w > height * width:
        raise ValueError(f"flat_read: cannot read a ({k}, {h}, {w}) array from a ({k}, {height}, {width}) one")
    return t.reshape(b, k * height * width)[:, : k * h * w].reshape(b, k, h, w)


def top_left_crop(t: Tensor, size: tuple[int, int]) -> Tensor:
    """``t[:, :, :h, :w]`` for ``t`` ``(B, K, H, W)`` (the crop mmdet's DyHead intends)."""
    h, w = size
    if h > t.shape[-2] or w > t.shape[-1]:
        raise ValueError(f"top_left_crop: cannot crop {tuple(t.shape[-2:])} to {(h, w)}")
    return t[:, :, :h, :w]


def fit_to_output(t: Tensor, size: tuple[int, int], official_flat_read: bool) -> Tensor:
    """Offsets/masks predicted at ``x[l]``'s size, as used for a DCN output of ``size``.

    Unchanged when the sizes agree; otherwise :func:`flat_read` (mmcv 2.1.0 behaviour) or
    :func:`top_left_crop` (the intended crop).
    """
    if tuple(t.shape[-2:]) == tuple(size):
        return t
    return flat_read(t, size) if official_flat_read else top_left_crop(t, size)


def _conv_out_size(size: Sequence[int], stride: int) -> tuple[int, int]:
    """Output size of a 3x3 conv with padding 1 and ``stride``."""
    return ((size[0] - 1) // stride + 1, (size[1] - 1) // stride + 1)


class ModulatedDeformConv2d(nn.Module):
    """3x3 modulated deformable conv (DCNv2), padding 1, holding only ``weight`` (and ``bias``).

    ``forward(x (B, Cin, H, W), offset (B, 18, h, w), mask (B, 9, h, w))`` -> ``(B, Cout, h, w)``
    with ``(h, w)`` the conv output size. Initialised like mmcv: ``U(-1/sqrt(9 Cin), 1/sqrt(9 Cin))``.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.stride = int(stride)
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, 3, 3))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        bound = 1.0 / math.sqrt(in_channels * 9)
        nn.init.uniform_(self.weight, -bound, bound)

    def output_size(self, x: Tensor) -> tuple[int, int]:
        return _conv_out_size(x.shape[-2:], self.stride)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        # torchvision's fused kernel on CUDA (in float32 under CUDA autocast), the equivalent
        # vectorised masa.ops.deform.modulated_deform_conv2d on CPU (several times faster there).
        return deform_conv2d_auto(x, offset, self.weight, self.bias, stride=self.stride, padding=1, mask=mask)


class DyDCNv2(nn.Module):
    """``conv`` (DCNv2 3x3, no bias) then ``norm`` (GroupNorm, 16 groups), as in mmdet's DyHead."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, gn_groups: int = 16) -> None:
        super().__init__()
        self.conv = ModulatedDeformConv2d(in_channels, out_channels, stride=stride, bias=False)
        self.norm = nn.GroupNorm(gn_groups, out_channels)

    def output_size(self, x: Tensor) -> tuple[int, int]:
        return self.conv.output_size(x)

    def forward(self, x: Tensor, offset: Tensor, mask: Tensor) -> Tensor:
        return self.norm(self.conv(x.contiguous(), offset, mask))


class _ConvAct(nn.Module):
    """1x1 ``conv`` (with bias) then an activation: mmcv ``ConvModule`` without norm."""

    def __init__(self, in_channels: int, out_channels: int, act: nn.Module) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        self.act = act

    def forward(self, x: Tensor) -> Tensor:
        return self.act(self.conv(x))


class DyReLU(nn.Module):
    """Dynamic ReLU (task-aware attention of DyHead; mmdet ``DyReLU``).

    ``coeffs = hsigmoid(conv2(relu(conv1(avgpool(x))))) - 0.5`` split into ``a1, b1, a2, b2``
    (``C`` channels each); ``out = max(x * (2 a1 + 1) + b1, x * 2 a2 + b2)``.
    ``hsigmoid(z) = clamp((z + 3) / 6, 0, 1)`` (``nn.Hardsigmoid``).
    """

    def __init__(self, channels: int, ratio: int = 4) -> None:
        super().__init__()
        self.channels = int(channels)
        self.global_avgpool = nn.AdaptiveAvgPool2d(1)
        self.conv1 = _ConvAct(channels, channels // ratio, nn.ReLU(inplace=True))
        self.conv2 = _ConvAct(channels // ratio, channels * 4, nn.Hardsigmoid())

    def forward(self, x: Tensor) -> Tensor:
        coeffs = self.conv2(self.conv1(self.global_avgpool(x))) - 0.5  # (B, 4C, 1, 1) in [-0.5, 0.5]
        a1, b1, a2, b2 = torch.split(coeffs, self.channels, dim=1)
        a1 = a1 * 2.0 + 1.0  # [0, 2]
        a2 = a2 * 2.0  # [-1, 1]
        return torch.max(x * a1 + b1, x * a2 + b2)


def _init_block(block: nn.Module) -> None:
    """mmdet DyHead/DeformFusion block init: nn.Conv2d ~ N(0, 0.01), bias 0; offset conv all zero.

    The DCN weights are not ``nn.Conv2d`` and keep mmcv's uniform init.
    """
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    nn.init.zeros_(block.spatial_conv_offset.weight)
    nn.init.zeros_(block.spatial_conv_offset.bias)


class DeformFusionBlock(nn.Module):
    """One block of MASA's ``DeformFusion`` (DyHead without scale/task attention).

    ``spatial_conv_offset`` (``Conv2d(C, 81, 3, pad 1)``) predicts, from ``x[l]``, three sets of
    18 offsets (channels ``0:54``: mid, low, high) and three sets of 9 mask logits (``54:81``).
    See the module docstring for ``official_flat_read``.
    """

    def __init__(self, channels: int = 256, official_flat_read: bool = True, gn_groups: int = 16) -> None:
        super().__init__()
        self.official_flat_read = official_flat_read
        self.spatial_conv_offset = nn.Conv2d(channels, 3 * 27, 3, padding=1)
        self.spatial_conv_high = DyDCNv2(channels, channels, stride=1, gn_groups=gn_groups)
        self.spatial_conv_mid = DyDCNv2(channels, channels, stride=1, gn_groups=gn_groups)
        self.spatial_conv_low = DyDCNv2(channels, channels, stride=2, gn_groups=gn_groups)
        _init_block(self)

    def _fit(self, t: Tensor, size: tuple[int, int]) -> Tensor:
        return fit_to_output(t, size, self.official_flat_read)

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        outs = []
        for level, feat in enumerate(x):
            offset_and_mask = self.spatial_conv_offset(feat)  # (B, 81, H, W)
            offsets = offset_and_mask[:, :54].split(18, dim=1)  # mid, low, high: (B, 18, H, W) each
            masks = offset_and_mask[:, 54:].sigmoid().split(9, dim=1)  # (B, 9, H, W) each
            size = tuple(feat.shape[-2:])

            total = self.spatial_conv_mid(feat, offsets[0], masks[0])  # (B, C, H, W)
            summed = 1
            if level > 0:
                low_size = self.spatial_conv_low.output_size(x[level - 1])
                total = total + self.spatial_conv_low(
                    x[level - 1], self._fit(offsets[1], low_size), self._fit(masks[1], low_size)
                )
                summed += 1
            if level < len(x) - 1:
                high_size = self.spatial_conv_high.output_size(x[level + 1])  # (h, w) of x[l+1]
                high = self.spatial_conv_high(
                    x[level + 1], self._fit(offsets[2], high_size), self._fit(masks[2], high_size)
                )  # (B, C, h, w)
                total = total + F.interpolate(high, size=size, mode="bilinear", align_corners=True)
                summed += 1
            outs.append(total / summed)
        return outs


class _FusionStack(nn.Module):
    """``num_blocks`` fusion blocks of ``block_class`` in sequence, under ``dyhead_blocks`` (official keys)."""

    block_class: type[nn.Module]

    def __init__(self, channels: int = 256, num_blocks: int = 3, official_flat_read: bool = True) -> None:
        super().__init__()
        self.channels = int(channels)
        self.num_blocks = int(num_blocks)
        self.official_flat_read = official_flat_read
        self.dyhead_blocks = nn.ModuleList(
            self.block_class(channels, official_flat_read=official_flat_read) for _ in range(num_blocks)
        )

    def forward(self, feats: Sequence[Tensor]) -> list[Tensor]:
        out = list(feats)  # L maps (B, C, H_l, W_l)
        for block in self.dyhead_blocks:
            out = block(out)
        return out


class DeformFusion(_FusionStack):
    """MASA's ``DeformFusion``: ``num_blocks`` :class:`DeformFusionBlock` s in sequence.

    ``forward(feats)``: list of ``L`` maps ``(B, C, H_l, W_l)`` -> list of ``L`` maps of the same shapes.
    Keys: ``dyhead_blocks.{b}.spatial_conv_offset.{weight,bias}``,
    ``dyhead_blocks.{b}.spatial_conv_{high,mid,low}.conv.weight``, ``....norm.{weight,bias}``.
    """

    block_class = DeformFusionBlock


class DyHeadBlock(nn.Module):
    """One block of mmdet's ``DyHead`` (spatial, scale- and task-aware attention).

    ``spatial_conv_offset`` (``Conv2d(C, 27, 3, pad 1)``) predicts 18 offsets and 9 mask logits
    from ``x[l]``, shared by the three branches. Each branch output ``f`` is weighted by the
    scale attention ``hsigmoid(relu(conv1x1(avgpool(f))))`` (one scalar per image), the weighted
    branches are averaged and passed through :class:`DyReLU`. For the high branch mmdet crops
    ``[:, :, :h, :w]``: the mask really is cropped, the offsets are flat-read under mmcv (see the
    module docstring); ``official_flat_read=False`` crops both.
    """

    def __init__(self, channels: int = 256, official_flat_read: bool = True, gn_groups: int = 16) -> None:
        super().__init__()
        self.official_flat_read = official_flat_read
        self.spatial_conv_high = DyDCNv2(channels, channels, stride=1, gn_groups=gn_groups)
        self.spatial_conv_mid = DyDCNv2(channels, channels, stride=1, gn_groups=gn_groups)
        self.spatial_conv_low = DyDCNv2(channels, channels, stride=2, gn_groups=gn_groups)
        self.spatial_conv_offset = nn.Conv2d(channels, 27, 3, padding=1)
        self.scale_attn_module = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, 1, 1), nn.ReLU(inplace=True), nn.Hardsigmoid()
        )
        self.task_attn_module = DyReLU(channels)
        _init_block(self)

    def _fit(self, t: Tensor, size: tuple[int, int]) -> Tensor:
        return fit_to_output(t, size, self.official_flat_read)

    def _weighted(self, feat: Tensor) -> Tensor:
        return feat * self.scale_attn_module(feat)  # (B, C, H, W) * (B, 1, 1, 1)

    def forward(self, x: Sequence[Tensor]) -> list[Tensor]:
        outs = []
        for level, feat in enumerate(x):
            offset_and_mask = self.spatial_conv_offset(feat)  # (B, 27, H, W)
            offset = offset_and_mask[:, :18]  # (B, 18, H, W)
            mask = offset_and_mask[:, 18:].sigmoid()  # (B, 9, H, W)
            size = tuple(feat.shape[-2:])

            total = self._weighted(self.spatial_conv_mid(feat, offset, mask))
            summed = 1
            if level > 0:
                low_size = self.spatial_conv_low.output_size(x[level - 1])  # == size for pyramids
                low = self.spatial_conv_low(x[level - 1], self._fit(offset, low_size), self._fit(mask, low_size))
                total = total + self._weighted(low)
                summed += 1
            if level < len(x) - 1:
                high_size = self.spatial_conv_high.output_size(x[level + 1])  # (h, w) of x[l+1]
                high_offset = self._fit(offset, high_size)
                high_mask = top_left_crop(offset_and_mask[:, 18:], high_size).sigmoid()
                high = self.spatial_conv_high(x[level + 1], high_offset, high_mask)  # (B, C, h, w)
                high = F.interpolate(high, size=size, mode="bilinear", align_corners=True)
                total = total + self._weighted(high)
                summed += 1
            outs.append(self.task_attn_module(total / summed))
        return outs


class DyHead(_FusionStack):
    """mmdet's ``DyHead`` neck: ``num_blocks`` :class:`DyHeadBlock` s in sequence (SAM variants).

    ``forward(feats)``: list of ``L`` maps ``(B, C, H_l, W_l)`` -> list of ``L`` maps of the same shapes.
    Keys: those of :class:`DeformFusion` (with a 27-channel offset conv) plus
    ``dyhead_blocks.{b}.scale_attn_module.1.{weight,bias}`` and
    ``dyhead_blocks.{b}.task_attn_module.conv{1,2}.conv.{weight,bias}``.
    """

    block_class = DyHeadBlock
