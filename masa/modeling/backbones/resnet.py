"""ResNet-50 (torchvision modules) as a frozen C2..C5 backbone, pytorch or caffe style.

MASA-R50 (``configs/masa-one/masa_r50_plug_and_play.py``) uses mmdet's
``ResNet(depth=50, out_indices=(0, 1, 2, 3), norm_eval=True, style='caffe')``: in caffe style
each downsampling bottleneck puts its stride in the first 1x1 conv; torchvision ("pytorch" style)
puts it in the 3x3 conv. Both give the same shapes. Parameter names are torchvision's (``conv1,
bn1, layer{1-4}.{i}.conv{1,2,3}, bn{1,2,3}, downsample.{0,1}``), which are also mmdet's, so the
authors' ``backbone.*`` keys load once the prefix is stripped. Normalisation: ImageNet RGB
mean/std (as in MASA's ``TrackDataPreprocessor``). Weights are never downloaded.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from torch import Tensor
from torchvision.models import resnet50

from masa.modeling.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone

__all__ = ["ResNetBackbone", "build_resnet50_backbone"]

Style = Literal["pytorch", "caffe"]


class ResNetBackbone(Backbone):
    """Frozen ResNet-50 returning C2..C5 ``(256, 512, 1024, 2048)`` at strides ``(4, 8, 16, 32)``.

    ``forward(images)``: ``images`` ``float32[B, 3, H, W]`` RGB in [0, 255] -> four maps
    ``(B, C_l, ceil(H / s_l), ceil(W / s_l))``. BatchNorm always uses its running statistics.
    """

    def __init__(self, style: Style = "pytorch", frozen: bool = True) -> None:
        if style not in ("pytorch", "caffe"):
            raise ValueError(f"ResNetBackbone: style must be 'pytorch' or 'caffe', got {style!r}")
        super().__init__((256, 512, 1024, 2048), (4, 8, 16, 32), IMAGENET_MEAN, IMAGENET_STD, frozen=frozen)
        self.style = style
        net = resnet50(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if style == "caffe":
            for layer in (self.layer2, self.layer3, self.layer4):
                block = layer[0]  # the downsampling bottleneck of the stage
                block.conv1.stride, block.conv2.stride = block.conv2.stride, (1, 1)
        if frozen:
            self.freeze()

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(images)))))  # (B, 64, H/4, W/4)
        c2 = self.layer1(x)  # (B, 256, H/4, W/4)
        c3 = self.layer2(c2)  # (B, 512, H/8, W/8)
        c4 = self.layer3(c3)  # (B, 1024, H/16, W/16)
        c5 = self.layer4(c4)  # (B, 2048, H/32, W/32)
        return [c2, c3, c4, c5]


def build_resnet50_backbone(
    weights: str | Path | None = None, style: Style = "pytorch", *, warn_random_init: bool = True
) -> ResNetBackbone:
    """Frozen ResNet-50 backbone.

    Args:
        weights: a torchvision-format ResNet-50 state dict file (``fc.*`` entries allowed and
            ignored; an mmdet/MASA ``backbone.*`` prefix is stripped), loaded with
            ``weights_only=True`` and strict on the backbone keys. ``None``: random init, with a
            warning (the features are then meaningless). Nothing is downloaded.
        style: ``"pytorch"`` (torchvision weights) or ``"caffe"`` (MASA-R50 / mmdet ``style='caffe'``).
        warn_random_init: set ``False`` when the caller loads weights itself right after.
    """
    backbone = ResNetBackbone(style=style)
    if weights is None:
        if not warn_random_init:
            return backbone
        warnings.warn(
            "build_resnet50_backbone: no weights given, the ResNet-50 is randomly initialised and its "
            "features are meaningless (pass a torchvision ResNet-50 state dict or a MASA-R50 checkpoint)",
            stacklevel=2,
        )
        return backbone
    from masa.modeling.checkpoint import load_state_dict_file, load_strict, strip_prefix

    state = load_state_dict_file(weights)
    if "conv1.weight" not in state:
        for prefix in ("backbone.", "module.", "model."):
            if f"{prefix}conv1.weight" in state:
                state = strip_prefix(state, prefix)
                break
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    load_strict(backbone, state, f"ResNet-50 ({Path(weights).name})")
    return backbone.freeze()
