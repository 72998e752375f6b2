"""The "off-the-shelf features" appearance baseline (MASA paper, Table 8 row 1).

A frozen ImageNet backbone (default EfficientNet-Lite0) and no learned head: each box is
RoI-Aligned (``aligned=True, sampling_ratio=0``) on *every* tapped level, each pooled grid is
averaged to a vector and L2-normalised, the per-level vectors are concatenated, L2-normalised again
and multiplied by ``scale``::

    e(box) = scale * normalize(concat_l normalize(mean_xy RoIAlign(F_l, box)))

so ``||e|| = scale`` and ``e_a . e_b = scale**2 * mean_l cos_l(a, b)``.

Why ``scale`` (default 6): the tracker's bi-softmax turns raw dot products into matching scores
(and thresholds them at 0.5). Between unit vectors the dot products barely differ -- ImageNet
features of all pedestrians are alike: on TUD-Campus (gt boxes, EfficientNet-Lite0, taps 4-32) the
mean cosine is 0.970 for the same person in consecutive frames and 0.823 between different
people (0.883 vs 0.807 ten frames apart) -- so a softmax over them is nearly flat and never
passes 0.5. Scaling both embeddings by ``s`` multiplies the logits by ``s**2``. Sweeping ``s`` on
TUD-Campus (all 70 frame pairs) and PETS09-S2L1 (first 120 frames), with "recall" = the true pair
has bi-softmax > 0.5 and is the row's best, and "false match" = with the true track removed the
detection still scores > 0.5 with some other track:

    ======  ========================  ========================  ==========================
    scale   TUD gap 1 recall / false  PETS gap 1 recall / false  PETS gap 10 recall / false
    ======  ========================  ========================  ==========================
    3       0.28 / 0.00               --                        --
    4       0.89 / 0.14               0.991 / 0.10              0.72 / 0.14
    5       0.99 / 0.19               0.997 / 0.12              0.80 / 0.20
    6       0.99 / 0.21               0.997 / 0.13              0.82 / 0.25
    8       1.00 / 0.23               0.998 / 0.15              0.84 / 0.30
    10      1.00 / 0.25               0.998 / 0.15              0.83 / 0.31
    ======  ========================  ========================  ==========================

Recall saturates at 5-6 while false matches keep growing up to 10-15; 6 (logits ``36 * cos``,
i.e. a 0.15 cosine gap is a 5.4 logit gap) leaves margin for crowds, where the softmax spreads
over more tracks (it needs a gap of about ``log(#tracks)``).

Why taps ``(4, 8, 16, 32)``: every level is pooled, and the stride-4 map is computed anyway, so
it costs nothing and gives boxes under ~32 px more than one feature cell. On TUD-Campus the
same-vs-different separation is the same as with ``(8, 16, 32)`` (d' 3.51 vs 3.52 for consecutive
frames) and slightly better ten frames apart (nearest-neighbour id accuracy 0.73 vs 0.71).

Why no upscaling (default ``max_size=(1024, 1024)``, ``upscale=False``): frames that already fit
in 1024 x 1024 keep their size (640 x 480 MOT frames are not blown up by 1.6x, which would cost
2.6x the compute for hardly better features: pedestrians of 100-200 px are already at ImageNet
object scale; on TUD-Campus upscaling moves d' from 3.51 to 3.49 for consecutive frames and from
1.45 to 1.49 ten frames apart); larger frames (1920x1080 -> 1024x576) are shrunk to fit, which
bounds the cost.
"""

from __future__ import annotations

import copy
from contextlib import nullcontext
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align

from masa.modeling.backbones import BACKBONE_BUILDERS, Backbone
from masa.modeling.preprocess import PreprocessConfig, preprocess_image

__all__ = ["DEFAULT_SCALE", "BaselineEmbedderConfig", "BackboneRoIEmbedder", "build_baseline_embedder"]

DEFAULT_SCALE = 6.0


@dataclass(frozen=True)
class BaselineEmbedderConfig:
    """Settings of :class:`BackboneRoIEmbedder`.

    backbone: a key of ``BACKBONE_BUILDERS`` (``"efficientnet_lite0"`` by default).
    out_strides: tapped levels for EfficientNet-Lite backbones (``None``: builder default).
    preprocess: resize bound / padding of the network input.
    upscale: allow enlarging frames smaller than ``preprocess.max_size`` (off: see module doc).
    roi_size: side of the RoI-Align grid before average pooling.
    scale: L2 norm of every embedding (a softmax temperature for dot-product matching).
    device: where the backbone runs; outputs always come back as CPU float32.
    half: fp16 autocast for the backbone, on CUDA only (ignored on CPU).
    channels_last: run the backbone in NHWC memory format (25-35% faster on CPU for
        EfficientNet-Lite's depthwise convolutions; same numbers up to 1e-6).
    """

    backbone: str = "efficientnet_lite0"
    out_strides: tuple[int, ...] | None = (4, 8, 16, 32)
    preprocess: PreprocessConfig = field(default_factory=lambda: PreprocessConfig(max_size=(1024, 1024), size_divisor=32))
    upscale: bool = False
    roi_size: int = 7
    scale: float = DEFAULT_SCALE
    device: str = "cpu"
    half: bool = False
    channels_last: bool = True


class BackboneRoIEmbedder:
    """Embedder (see :class:`masa.modeling.embedder.Embedder`) on frozen backbone features.

    ``embed(image, boxes)``: ``image`` ``uint8[H, W, 3]`` RGB, ``boxes`` ``float32[N, 4]`` xyxy in
    original-frame pixels -> ``float32[N, embedding_dim]`` on the CPU, each row of L2 norm
    ``scale`` (``[0, embedding_dim]`` for ``N == 0``). ``embedding_dim = sum(out_channels)``.
    Boxes are clipped to the frame and given at least one network pixel of width and height.
    """

    def __init__(self, backbone: Backbone, config: BaselineEmbedderConfig = BaselineEmbedderConfig()) -> None:
        if config.scale <= 0:
            raise ValueError(f"BackboneRoIEmbedder: scale must be positive, got {config.scale}")
        if config.roi_size < 1:
            raise ValueError(f"BackboneRoIEmbedder: roi_size must be >= 1, got {config.roi_size}")
        self.config = config
        self.device = torch.device(config.device)
        self.backbone = backbone.freeze().to(self.device)
        if hasattr(self.backbone, "fold_batchnorm"):  # ~1.6x faster on CPU; a copy keeps the caller's module intact
            self.backbone = copy.deepcopy(self.backbone).fold_batchnorm()
        if config.channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        self.embedding_dim = int(sum(backbone.out_channels))

    def _preprocess_config(self, height: int, width: int) -> PreprocessConfig:
        return replace(self.config.preprocess, upscale=self.config.upscale)

    def embed(self, image: np.ndarray, boxes: Tensor | np.ndarray) -> Tensor:
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"embed: expected an RGB image uint8[H, W, 3], got {getattr(image, 'shape', type(image))}")
        if not image.flags.writeable:  # e.g. np.asarray(PIL image): torch.from_numpy warns on read-only arrays
            image = image.copy()
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        if boxes.shape[0] == 0:
            return torch.zeros(0, self.embedding_dim, dtype=torch.float32)
        height, width = image.shape[:2]
        with torch.inference_mode():
            pre = preprocess_image(
                image, self._preprocess_config(height, width), device=self.device, pad_value=self.backbone.pixel_mean.flatten()
            )
            autocast = (
                torch.autocast("cuda", dtype=torch.float16)
                if self.config.half and self.device.type == "cuda"
                else nullcontext()
            )
            images = pre.images
            if self.config.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast:
                features = self.backbone(images)  # L maps (1, C_l, H/s_l, W/s_l)
            rois = self._rois(boxes, width, height, pre.scale)  # (N, 5) network px
            vectors = []
            for feature, stride in zip(features, self.backbone.strides):
                pooled = roi_align(
                    feature.float(), rois, output_size=self.config.roi_size, spatial_scale=1.0 / stride,
                    sampling_ratio=0, aligned=True,
                )  # (N, C_l, k, k)
                vectors.append(F.normalize(pooled.mean(dim=(2, 3)), dim=1))  # (N, C_l)
            embeddings = F.normalize(torch.cat(vectors, dim=1), dim=1) * self.config.scale  # (N, D)
        return embeddings.to(device="cpu", dtype=torch.float32)

    def _rois(self, boxes: Tensor, width: int, height: int, scale: float) -> Tensor:
        """Clip ``boxes`` ``[N, 4]`` to the frame, scale to network px, min size 1 px -> ``[N, 5]``."""
        boxes = boxes.to(self.device)
        x1y1 = torch.minimum(boxes[:, :2], boxes[:, 2:])
        x2y2 = torch.maximum(boxes[:, :2], boxes[:, 2:])
        limit = boxes.new_tensor([width, height])
        x1y1 = torch.minimum(x1y1.clamp(min=0), limit) * scale
        x2y2 = torch.minimum(x2y2.clamp(min=0), limit) * scale
        centre, size = (x1y1 + x2y2) / 2, (x2y2 - x1y1).clamp(min=1.0)
        rois = torch.cat([boxes.new_zeros(boxes.shape[0], 1), centre - size / 2, centre + size / 2], dim=1)
        return rois


def build_baseline_embedder(
    name: str = "efficientnet_lite0",
    device: str = "cpu",
    **config_overrides,
) -> BackboneRoIEmbedder:
    """The off-the-shelf baseline on backbone ``name`` (a ``BACKBONE_BUILDERS`` key).

    ``config_overrides`` are :class:`BaselineEmbedderConfig` fields (``scale``, ``preprocess``, ...).
    EfficientNet-Lite backbones use the pretrained ImageNet weights; other backbones are built with
    their defaults (ResNet-50 and SAM then have random weights: pass them to ``BackboneRoIEmbedder``
    yourself after building with weights).
    """
    if name not in BACKBONE_BUILDERS:
        raise ValueError(f"unknown backbone {name!r}; expected one of {sorted(BACKBONE_BUILDERS)}")
    if name.startswith("sam_vit"):  # SAM needs the long side resized to 1024 and a 1024 x 1024 pad
        config_overrides.setdefault("preprocess", PreprocessConfig(max_size=(1024, 1024), pad_to=1024))
        config_overrides.setdefault("upscale", True)
    config = BaselineEmbedderConfig(backbone=name, device=device, **config_overrides)
    kwargs = {}
    if name.startswith("efficientnet_lite") and config.out_strides is not None:
        kwargs["out_strides"] = config.out_strides
    backbone = BACKBONE_BUILDERS[name](**kwargs)
    return BackboneRoIEmbedder(backbone, config)
