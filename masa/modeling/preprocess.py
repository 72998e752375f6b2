"""Image preprocessing shared by every model: keep-ratio resize and padding.

Input frames are ``uint8[H, W, 3]`` RGB numpy arrays (or ``uint8/float (3, H, W)`` tensors).
The output batch is ``float32[1, 3, H', W']`` RGB in ``[0, 255]``, resized so that the image fits
in ``max_size = (long side, short side)`` with its aspect ratio kept (mmcv ``Resize(keep_ratio=True)``
rule), then padded at the bottom/right to a multiple of ``size_divisor`` (or to exactly
``pad_to`` pixels). Normalisation (mean/std) is done by each backbone, not here; padding uses the
backbone's mean colour (``pad_value``), so padded pixels normalise to 0 as in SAM's and mmdet's
preprocessing (which pad after normalising).

Boxes in original-frame pixels map to network-input pixels by ``boxes * scale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PreprocessConfig", "Preprocessed", "preprocess_image", "rescale_size"]


@dataclass(frozen=True)
class PreprocessConfig:
    """How frames become network input.

    max_size: ``(long, short)`` bound of the resized image, e.g. ``(1024, 1024)`` (MASA R50/SAM)
        or ``(1333, 800)`` (GDINO inference); ``None`` keeps the frame size.
    size_divisor: pad height and width up to a multiple of this (32 in MASA).
    pad_to: pad to exactly this square size instead (1024 for SAM); overrides ``size_divisor``.
    upscale: enlarge frames smaller than ``max_size`` (the authors' pipelines do; off keeps
        small frames at their size, which saves compute on CPU).
    """

    max_size: tuple[int, int] | None = (1024, 1024)
    size_divisor: int = 32
    pad_to: int | None = None
    upscale: bool = True


@dataclass(frozen=True)
class Preprocessed:
    """A network-ready batch of one image.

    images: ``float32[1, 3, H_pad, W_pad]`` RGB in [0, 255].
    scale: factor from original-frame pixels to network pixels (same for x and y).
    input_size: ``(h, w)`` of the resized image before padding.
    """

    images: Tensor
    scale: float
    input_size: tuple[int, int]


def rescale_size(height: int, width: int, max_size: tuple[int, int]) -> tuple[tuple[int, int], float]:
    """mmcv keep-ratio rule: scale so the long side <= max(max_size) and short side <= min(max_size)."""
    long_edge, short_edge = max(max_size), min(max_size)
    scale = min(long_edge / max(height, width), short_edge / min(height, width))
    return (int(height * scale + 0.5), int(width * scale + 0.5)), scale


def preprocess_image(
    image: np.ndarray | Tensor,
    config: PreprocessConfig,
    device: torch.device | str = "cpu",
    pad_value: Tensor | tuple[float, float, float] | float = 0.0,
) -> Preprocessed:
    """Resize (keep ratio) and pad one RGB image; see the module docstring for conventions.

    ``pad_value``: RGB colour of the padding in [0, 255] (a backbone's ``pixel_mean``).
    """
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"preprocess_image: expected an RGB image [H, W, 3], got shape {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    else:
        tensor = image
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise ValueError(f"preprocess_image: expected a tensor (3, H, W), got {list(tensor.shape)}")
    tensor = tensor.to(device=device, dtype=torch.float32).unsqueeze(0)
    height, width = tensor.shape[-2:]
    scale = 1.0
    if config.max_size is not None:
        (new_h, new_w), scale = rescale_size(height, width, config.max_size)
        if scale > 1 and not config.upscale:
            (new_h, new_w), scale = (height, width), 1.0
        if (new_h, new_w) != (height, width):
            tensor = F.interpolate(tensor, size=(new_h, new_w), mode="bilinear", align_corners=False, antialias=scale < 1)
    h, w = tensor.shape[-2:]
    if config.pad_to is not None:
        pad_h, pad_w = max(config.pad_to - h, 0), max(config.pad_to - w, 0)
    else:
        d = config.size_divisor
        pad_h, pad_w = (-h) % d, (-w) % d
    if pad_h or pad_w:
        padded = tensor.new_empty(1, 3, h + pad_h, w + pad_w)
        padded[:] = torch.as_tensor(pad_value, dtype=tensor.dtype, device=tensor.device).reshape(-1, 1, 1)
        padded[:, :, :h, :w] = tensor
        tensor = padded
    return Preprocessed(images=tensor, scale=float(scale), input_size=(int(h), int(w)))
