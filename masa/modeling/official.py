"""The authors' released MASA checkpoints: variants, key maps and loading.

The five files on HuggingFace ``dereksiyuanli/masa`` are mmengine checkpoints
``{'state_dict': {...}, 'meta': {...}}`` whose keys are relative to the authors' ``MASA`` model:

=====================================  ============================================================
official key prefix                    here
=====================================  ============================================================
``masa_adapter.0.``                    ``MasaAdapter.pyramid.`` (:class:`FPN` / :class:`SimpleFPN`)
``masa_adapter.1.``                    ``MasaAdapter.fusion.`` (:class:`DeformFusion` / :class:`DyHead`)
``track_head.embed_head.``             ``MasaAdapter.track_head.`` (:class:`TrackHead`)
``rpn_head.``                          ``MasaAdapter.rpn_head.`` (:class:`RPNHead`)
``roi_head.bbox_head.``                ``MasaAdapter.roi_head.`` (:class:`RoIBoxHead`)
``backbone.`` (R50 only)               :attr:`OfficialParts.backbone` (prefix stripped; mmdet ResNet names)
``detector.`` (SAM, GDINO, Detic)      :attr:`OfficialParts.detector` (prefix stripped; the frozen
                                       foundation model, e.g. ``backbone.*`` = SAM image encoder)
anything else                          :attr:`OfficialParts.other` (reported, never loaded)
=====================================  ============================================================

Inside each part the names are the authors' (our modules reproduce them), so the map is a pure
prefix rename. Files are read with ``torch.load(weights_only=True)``: tensors and plain
containers only, no code execution.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor

from masa.modeling.adapter import MasaAdapter
from masa.modeling.det_head import RoIBoxHead, RPNHead
from masa.modeling.fusion import DeformFusion, DyHead
from masa.modeling.preprocess import PreprocessConfig
from masa.modeling.pyramid import FPN, SimpleFPN
from masa.modeling.track_head import TrackHead

__all__ = [
    "OfficialVariant",
    "OFFICIAL_VARIANTS",
    "OFFICIAL_PREFIX_MAP",
    "OfficialParts",
    "official_to_adapter_key",
    "adapter_to_official_key",
    "split_official_state_dict",
    "read_official_checkpoint",
    "build_adapter_for_official",
    "load_official_adapter",
    "sam_image_encoder_state_dict",
]


@dataclass(frozen=True)
class OfficialVariant:
    """How one released checkpoint's model is put together (read from the authors' configs).

    Attributes:
        name: key in :data:`OFFICIAL_VARIANTS`.
        checkpoint: file name on HuggingFace ``dereksiyuanli/masa``.
        backbone: the frozen feature extractor the adapter sits on.
        backbone_strides: strides of the maps the pyramid receives.
        backbone_taps: for SAM, the transformer blocks whose outputs are tapped (global-attention blocks).
        pyramid: ``"fpn"`` (mmdet FPN with BN) or ``"simple_fpn"``.
        pyramid_in_channels: channels of the pyramid inputs.
        fusion: ``"deform_fusion"`` (MASA DeformFusion) or ``"dyhead"`` (mmdet DyHead).
        roi_strides: strides of the fused levels RoIs are pooled from (track and box heads).
        anchor_strides: RPN anchor stride per fused level.
        bbox_head: ``"shared2fc"`` or ``"shared4conv1fc"`` (4 conv3x3 + BN, then one fc).
        rpn_loss_bbox: ``"smooth_l1"`` (beta 1/9) or ``"l1"``.
        preprocess: the authors' test-time resize/pad.
    """

    name: str
    checkpoint: str
    backbone: str
    backbone_strides: tuple[int, ...]
    pyramid: Literal["fpn", "simple_fpn"]
    pyramid_in_channels: tuple[int, ...]
    fusion: Literal["deform_fusion", "dyhead"]
    roi_strides: tuple[int, ...]
    anchor_strides: tuple[int, ...]
    bbox_head: Literal["shared2fc", "shared4conv1fc"]
    rpn_loss_bbox: Literal["smooth_l1", "l1"]
    preprocess: PreprocessConfig
    backbone_taps: tuple[int, ...] = ()


OFFICIAL_VARIANTS: dict[str, OfficialVariant] = {
    "masa_r50": OfficialVariant(
        name="masa_r50",
        checkpoint="masa_r50.pth",
        backbone="resnet50 (mmdet caffe style, weights under backbone.*)",
        backbone_strides=(4, 8, 16, 32),
        pyramid="fpn",
        pyramid_in_channels=(256, 512, 1024, 2048),
        fusion="deform_fusion",
        roi_strides=(4, 8, 16, 32),
        anchor_strides=(4, 8, 16, 32, 64),
        bbox_head="shared4conv1fc",
        rpn_loss_bbox="l1",
        preprocess=PreprocessConfig(max_size=(1024, 1024), size_divisor=32),
    ),
    "sam_vitb_masa": OfficialVariant(
        name="sam_vitb_masa",
        checkpoint="sam_vitb_masa.pth",
        backbone="sam_vit_b image encoder (weights under detector.backbone.*)",
        backbone_strides=(16, 16, 16, 16),
        backbone_taps=(2, 5, 8, 11),
        pyramid="simple_fpn",
        pyramid_in_channels=(768, 768, 768, 768),
        fusion="dyhead",
        roi_strides=(4, 8, 16, 32),
        anchor_strides=(4, 8, 16, 32, 64),
        bbox_head="shared2fc",
        rpn_loss_bbox="smooth_l1",
        preprocess=PreprocessConfig(max_size=(1024, 1024), pad_to=1024),
    ),
    "sam_vith_masa": OfficialVariant(
        name="sam_vith_masa",
        checkpoint="sam_vith_masa.pth",
        backbone="sam_vit_h image encoder (weights under detector.backbone.*)",
        backbone_strides=(16, 16, 16, 16),
        backbone_taps=(7, 15, 23, 31),
        pyramid="simple_fpn",
        pyramid_in_channels=(1280, 1280, 1280, 1280),
        fusion="dyhead",
        roi_strides=(4, 8, 16, 32),
        anchor_strides=(4, 8, 16, 32, 64),
        bbox_head="shared2fc",
        rpn_loss_bbox="smooth_l1",
        preprocess=PreprocessConfig(max_size=(1024, 1024), pad_to=1024),
    ),
    "detic_masa": OfficialVariant(
        name="detic_masa",
        checkpoint="detic_masa.pth",
        backbone="swin_b of Detic (out_indices 1,2,3; weights under detector.backbone.*)",
        backbone_strides=(8, 16, 32),
        pyramid="fpn",
        pyramid_in_channels=(256, 512, 1024),
        fusion="deform_fusion",
        roi_strides=(8, 16, 32),
        anchor_strides=(8, 16, 32, 64, 128),
        bbox_head="shared2fc",
        rpn_loss_bbox="smooth_l1",
        preprocess=PreprocessConfig(max_size=(1024, 1024), size_divisor=32),
    ),
    "gdino_masa": OfficialVariant(
        name="gdino_masa",
        checkpoint="gdino_masa.pth",
        backbone="swin_b of Grounding-DINO (out_indices 1,2,3; weights under detector.backbone.*)",
        backbone_strides=(8, 16, 32),
        pyramid="fpn",
        pyramid_in_channels=(256, 512, 1024),
        fusion="deform_fusion",
        roi_strides=(8, 16, 32),
        anchor_strides=(8, 16, 32, 64, 128),
        bbox_head="shared2fc",
        rpn_loss_bbox="smooth_l1",
        preprocess=PreprocessConfig(max_size=(1333, 800), size_divisor=32),
    ),
}

#: official prefix -> prefix in :class:`MasaAdapter`'s state dict (longest prefixes first).
OFFICIAL_PREFIX_MAP: tuple[tuple[str, str], ...] = (
    ("masa_adapter.0.", "pyramid."),
    ("masa_adapter.1.", "fusion."),
    ("track_head.embed_head.", "track_head."),
    ("roi_head.bbox_head.", "roi_head."),
    ("rpn_head.", "rpn_head."),
)


def _variant(variant: str | OfficialVariant) -> OfficialVariant:
    if isinstance(variant, OfficialVariant):
        return variant
    if variant not in OFFICIAL_VARIANTS:
        raise ValueError(f"unknown official MASA variant {variant!r}; expected one of {sorted(OFFICIAL_VARIANTS)}")
    return OFFICIAL_VARIANTS[variant]


def official_to_adapter_key(key: str) -> str | None:
    """The :class:`MasaAdapter` key of an official key, or ``None`` if it is not an adapter weight."""
    for official, ours in OFFICIAL_PREFIX_MAP:
        if key.startswith(official):
            return ours + key[len(official) :]
    return None


def adapter_to_official_key(key: str) -> str:
    """The official key of a :class:`MasaAdapter` key (inverse of :func:`official_to_adapter_key`)."""
    for official, ours in OFFICIAL_PREFIX_MAP:
        if key.startswith(ours):
            return official + key[len(ours) :]
    raise KeyError(f"{key!r} is not a MasaAdapter key")


@dataclass
class OfficialParts:
    """An official state dict split by destination (see the module docstring's table).

    adapter: keys already renamed for :class:`MasaAdapter`.
    backbone: R50 backbone weights, ``backbone.`` stripped (mmdet ResNet names).
    detector: the frozen foundation model, ``detector.`` stripped.
    other: everything else, untouched (reported by :func:`load_official_adapter`).
    """

    adapter: dict[str, Tensor] = field(default_factory=dict)
    backbone: dict[str, Tensor] = field(default_factory=dict)
    detector: dict[str, Tensor] = field(default_factory=dict)
    other: dict[str, Tensor] = field(default_factory=dict)


def _unwrap(state: Mapping) -> dict[str, Tensor]:
    """The flat tensor mapping of an mmengine checkpoint (``state['state_dict']``) or a plain one."""
    inner = state.get("state_dict") if isinstance(state, Mapping) else None
    if isinstance(inner, Mapping):
        state = inner
    if not isinstance(state, Mapping):
        raise ValueError(f"expected a state dict, got {type(state).__name__}")
    return {str(k): v for k, v in state.items() if isinstance(v, Tensor)}


def split_official_state_dict(state_dict: Mapping) -> OfficialParts:
    """Split an official (mmengine-wrapped or flat) state dict into :class:`OfficialParts`."""
    parts = OfficialParts()
    for key, value in _unwrap(state_dict).items():
        ours = official_to_adapter_key(key)
        if ours is not None:
            parts.adapter[ours] = value
        elif key.startswith("backbone."):
            parts.backbone[key[len("backbone.") :]] = value
        elif key.startswith("detector."):
            parts.detector[key[len("detector.") :]] = value
        else:
            parts.other[key] = value
    return parts


def read_official_checkpoint(path: str | Path) -> dict[str, Tensor]:
    """Flat state dict of an official ``.pth`` file, read with ``torch.load(weights_only=True)``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the pickle holds objects other than tensors and plain containers (refused
            for safety; convert the file once in a trusted environment, e.g. to safetensors).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"official MASA checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError / RuntimeError with the refused global
        raise ValueError(
            f"{path}: torch.load(weights_only=True) refused the file ({exc}). It holds Python objects "
            "beyond tensors; re-save its 'state_dict' alone in a trusted environment."
        ) from exc
    return _unwrap(obj)


def build_adapter_for_official(
    variant: str | OfficialVariant, official_flat_read: bool = True, with_detection_heads: bool = True
) -> MasaAdapter:
    """A :class:`MasaAdapter` with the layer sizes of an official variant (random weights)."""
    v = _variant(variant)
    if v.pyramid == "simple_fpn":
        pyramid = SimpleFPN(v.pyramid_in_channels[0], 256, num_outs=5, in_stride=v.backbone_strides[0])
    else:
        pyramid = FPN(v.pyramid_in_channels, 256, num_outs=5, norm="bn", in_strides=v.backbone_strides)
    fusion_cls = DyHead if v.fusion == "dyhead" else DeformFusion
    fusion = fusion_cls(256, num_blocks=3, official_flat_read=official_flat_read)
    rpn_head = roi_head = None
    if with_detection_heads:
        rpn_head = RPNHead(256, 256, anchor_strides=v.anchor_strides, loss_bbox=v.rpn_loss_bbox)
        if v.bbox_head == "shared4conv1fc":
            roi_head = RoIBoxHead(v.roi_strides, num_shared_convs=4, num_shared_fcs=1)
        else:
            roi_head = RoIBoxHead(v.roi_strides, num_shared_convs=0, num_shared_fcs=2)
    return MasaAdapter(pyramid, fusion, TrackHead(), rpn_head, roi_head, roi_strides=v.roi_strides)


def load_official_adapter(
    adapter: MasaAdapter, path_or_state: str | Path | Mapping, variant: str | OfficialVariant
) -> OfficialParts:
    """Load the adapter weights of an official checkpoint into ``adapter`` (strict).

    Every key of ``adapter`` must be in the checkpoint and every adapter key of the checkpoint
    must exist in ``adapter`` with the same shape, except that the checkpoint's ``rpn_head`` /
    ``roi_head`` weights are skipped when ``adapter`` was built without those heads.

    Returns:
        the :class:`OfficialParts` of the checkpoint, so the caller can load the frozen backbone
        (``parts.backbone`` for R50, ``sam_image_encoder_state_dict(parts.detector)`` for SAM).

    Raises:
        ValueError: missing, unexpected or mis-shaped keys (all listed), or an unreadable file.
    """
    v = _variant(variant)
    state = read_official_checkpoint(path_or_state) if isinstance(path_or_state, (str, Path)) else path_or_state
    parts = split_official_state_dict(state)
    checkpoint = dict(parts.adapter)
    for head in ("rpn_head", "roi_head"):
        if getattr(adapter, head) is None:
            checkpoint = {k: t for k, t in checkpoint.items() if not k.startswith(head + ".")}
    expected = adapter.state_dict()
    missing = sorted(set(expected) - set(checkpoint))
    unexpected = sorted(set(checkpoint) - set(expected))
    mismatched = sorted(
        f"{k}: checkpoint {list(checkpoint[k].shape)} vs model {list(expected[k].shape)}"
        for k in set(expected) & set(checkpoint)
        if checkpoint[k].shape != expected[k].shape
    )
    if missing or unexpected or mismatched:
        lines = [f"official checkpoint does not fit the {v.name} adapter:"]
        for title, keys, to_official in (
            ("missing", missing, True),
            ("unexpected", unexpected, True),
            ("shape mismatch", mismatched, False),
        ):
            if keys:
                shown = [f"{k} (official {adapter_to_official_key(k)})" if to_official else k for k in keys[:20]]
                more = f" ... and {len(keys) - 20} more" if len(keys) > 20 else ""
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(shown) + more)
        raise ValueError("\n".join(lines))
    adapter.load_state_dict(checkpoint, strict=True)
    return parts


def sam_image_encoder_state_dict(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The SAM image-encoder weights of a state dict, relative to the encoder.

    Accepts the original SAM checkpoints (``image_encoder.*``), the mmdet conversions
    (``backbone.*``), :attr:`OfficialParts.detector` (``backbone.*``) and full official MASA
    state dicts (``detector.backbone.*``). The returned keys are the segment-anything
    ``ImageEncoderViT`` names (``patch_embed.proj.weight``, ``pos_embed``, ``blocks.0.attn.qkv.weight``,
    ``neck.0.weight``, ...).
    """
    flat = _unwrap(state)
    for prefix in ("detector.backbone.", "image_encoder.", "backbone."):
        found = {k[len(prefix) :]: t for k, t in flat.items() if k.startswith(prefix)}
        if found:
            return found
    raise ValueError(
        "no SAM image-encoder weights found (expected keys under 'image_encoder.', 'backbone.' or "
        f"'detector.backbone.'; first keys: {list(flat)[:5]})"
    )
