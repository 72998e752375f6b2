"""The authors' released MASA checkpoints: key maps and loading into our modules.

The five files on HuggingFace ``dereksiyuanli/masa`` are mmengine checkpoints
``{'state_dict': {...}, 'meta': {...}}`` whose keys are relative to the authors' ``MASA`` model.
Their architectures are entries of :data:`masa.modeling.config.MASA_CONFIGS` (same names as the
files, :data:`OFFICIAL_CHECKPOINT_FILES`); this module only renames keys:

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
anything else                          :attr:`OfficialParts.other` (never loaded)
=====================================  ============================================================

Inside each part the names are the authors' (our modules reproduce them), so the map is a pure
prefix rename. Files are read by :func:`masa.modeling.checkpoint.load_state_dict_file`
(``torch.load(weights_only=True)``: tensors and plain containers only, no code execution).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from torch import Tensor, nn

from masa.modeling.checkpoint import load_strict

__all__ = [
    "OFFICIAL_CHECKPOINT_FILES",
    "OFFICIAL_PREFIX_MAP",
    "OfficialParts",
    "official_to_adapter_key",
    "adapter_to_official_key",
    "split_official_state_dict",
    "guess_official_variant",
    "load_official_adapter",
    "load_official_weights",
]

#: registry name (:data:`masa.modeling.config.MASA_CONFIGS`) -> released file name.
OFFICIAL_CHECKPOINT_FILES = {
    "masa_r50": "masa_r50.pth",
    "sam_vitb_masa": "sam_vitb_masa.pth",
    "sam_vith_masa": "sam_vith_masa.pth",
    "detic_masa": "detic_masa.pth",
    "gdino_masa": "gdino_masa.pth",
}

#: official prefix -> prefix in :class:`MasaAdapter`'s state dict (longest prefixes first).
OFFICIAL_PREFIX_MAP: tuple[tuple[str, str], ...] = (
    ("masa_adapter.0.", "pyramid."),
    ("masa_adapter.1.", "fusion."),
    ("track_head.embed_head.", "track_head."),
    ("roi_head.bbox_head.", "roi_head."),
    ("rpn_head.", "rpn_head."),
)


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
    other: everything else, untouched.
    """

    adapter: dict[str, Tensor] = field(default_factory=dict)
    backbone: dict[str, Tensor] = field(default_factory=dict)
    detector: dict[str, Tensor] = field(default_factory=dict)
    other: dict[str, Tensor] = field(default_factory=dict)


def split_official_state_dict(state: Mapping[str, Tensor]) -> OfficialParts:
    """Split a flat official state dict (see :func:`load_state_dict_file`) into :class:`OfficialParts`."""
    parts = OfficialParts()
    for key, value in state.items():
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


def guess_official_variant(state: Mapping[str, Tensor]) -> str:
    """Which released model a flat official state dict is (a :data:`OFFICIAL_CHECKPOINT_FILES` key).

    Raises:
        ValueError: no ``masa_adapter.*`` keys (not an official MASA checkpoint).
    """
    key = "masa_adapter.0.fpn1.0.weight"
    if key in state:
        return "sam_vith_masa" if state[key].shape[0] == 1280 else "sam_vitb_masa"
    if any(k.startswith("backbone.layer4") for k in state):
        return "masa_r50"
    if "masa_adapter.0.lateral_convs.0.conv.weight" in state:
        raise ValueError(
            "this looks like the authors' Swin-B (GDINO or Detic) MASA checkpoint: its Swin-B backbone is not "
            "implemented here yet; supported: masa_r50.pth, sam_vitb_masa.pth, sam_vith_masa.pth"
        )
    raise ValueError("not an official MASA checkpoint: no masa_adapter.* keys found")


def load_official_adapter(adapter: nn.Module, state: Mapping[str, Tensor], what: str = "official checkpoint") -> OfficialParts:
    """Load the adapter weights of a flat official state dict into ``adapter`` (strict).

    The checkpoint's ``rpn_head`` / ``roi_head`` weights are skipped when ``adapter`` was built
    without those heads; everything else must match exactly (errors list missing, unexpected and
    mis-shaped keys with their official names). Returns the split state dict, so the caller can
    load the frozen backbone.
    """
    parts = split_official_state_dict(state)
    weights = dict(parts.adapter)
    for head in ("rpn_head", "roi_head"):
        if getattr(adapter, head, None) is None:
            weights = {k: t for k, t in weights.items() if not k.startswith(head + ".")}
    load_strict(adapter, weights, f"{what} (adapter)", key_names=adapter_to_official_key)
    return parts


def load_official_weights(
    model: nn.Module, state: Mapping[str, Tensor], variant: str, *, what: str, sam_checkpoint: str | Path | None = None
) -> None:
    """Load an official checkpoint into a :class:`~masa.modeling.adapter.MasaModel` built from its config.

    The adapter loads strictly; the frozen backbone comes from the same file (``backbone.*`` for
    ``masa_r50``, ``detector.backbone.*`` for the SAM variants) or, for SAM variants whose file
    lacks it, from ``sam_checkpoint`` (an original SAM checkpoint such as ``sam_vit_b_01ec64.pth``).
    """
    from masa.modeling.backbones import load_sam_checkpoint

    parts = load_official_adapter(model.adapter, state, what)
    if variant == "masa_r50":
        load_strict(model.backbone, parts.backbone, f"{what} (backbone)")
    elif variant in ("sam_vitb_masa", "sam_vith_masa"):
        if any(k.startswith("backbone.") for k in parts.detector):
            load_sam_checkpoint(model.backbone, parts.detector)
        elif sam_checkpoint is not None:
            load_sam_checkpoint(model.backbone, sam_checkpoint)
        else:
            raise ValueError(f"{what}: holds no SAM image-encoder weights; pass the original SAM checkpoint (--sam-checkpoint)")
    else:
        raise ValueError(
            f"{what}: the {variant} backbone (Swin-B) is not implemented yet; supported: masa_r50, sam_vitb_masa, sam_vith_masa"
        )
    model.backbone.freeze()
