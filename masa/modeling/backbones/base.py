"""The one small interface every frozen backbone implements.

A backbone takes a batch of RGB images ``float32[B, 3, H, W]`` in ``[0, 255]`` (already resized
and padded by :mod:`masa.modeling.preprocess`), normalises it itself (ImageNet or SAM mean/std,
kept as non-persistent buffers) and returns a list of feature maps, finest first.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["Backbone", "freeze"]

IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


def freeze(module: nn.Module) -> nn.Module:
    """Turn off gradients for every parameter of ``module`` and put it in eval mode."""
    for parameter in module.parameters():
        parameter.requires_grad_(False)
    module.eval()
    return module


class Backbone(nn.Module):
    """Frozen feature extractor.

    Attributes:
        out_channels: channels of each returned level, e.g. ``(40, 112, 320)``.
        strides: stride of each returned level w.r.t. the input, e.g. ``(8, 16, 32)``.
        pixel_mean, pixel_std: ``float32[3]`` RGB normalisation (non-persistent buffers).

    ``forward(images)`` with ``images`` ``float32[B, 3, H, W]`` RGB in [0, 255] returns
    ``len(strides)`` maps ``(B, out_channels[i], ceil(H / strides[i]), ceil(W / strides[i]))``
    (up to the backbone's own rounding). A frozen backbone stays in eval mode even when a parent
    module calls ``.train()``, so its BatchNorm statistics never change.
    """

    out_channels: tuple[int, ...]
    strides: tuple[int, ...]

    def __init__(
        self,
        out_channels: Sequence[int],
        strides: Sequence[int],
        pixel_mean: Sequence[float] = IMAGENET_MEAN,
        pixel_std: Sequence[float] = IMAGENET_STD,
        frozen: bool = True,
    ) -> None:
        super().__init__()
        if len(out_channels) != len(strides):
            raise ValueError(f"Backbone: {len(out_channels)} channel entries for {len(strides)} strides")
        self.out_channels = tuple(int(c) for c in out_channels)
        self.strides = tuple(int(s) for s in strides)
        self.frozen = frozen
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images: Tensor) -> Tensor:
        """``(images - mean) / std`` for ``images`` ``float[B, 3, H, W]`` RGB in [0, 255]."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"{type(self).__name__}: expected images (B, 3, H, W), got {list(images.shape)}")
        return (images - self.pixel_mean) / self.pixel_std

    def freeze(self) -> Backbone:
        """Freeze all parameters and keep eval mode (call after loading weights)."""
        self.frozen = True
        freeze(self)
        return self

    def train(self, mode: bool = True) -> Backbone:
        # A frozen backbone ignores train(): its BatchNorm/Dropout stay in inference behaviour.
        return super().train(False if self.frozen else mode)
