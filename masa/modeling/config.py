"""The one description of a MASA model: :class:`MasaConfig` and the registry of named configs.

A :class:`MasaConfig` says everything that determines a model's architecture and its test-time
behaviour: the frozen backbone, the frame preprocessing, and *either* the MASA adapter (pyramid,
fusion, RoI pooling, track head, optional detection head) *or* the raw-RoI baseline (off-the-shelf
backbone features, paper Table 8 row 1). It is stored in every checkpoint we write
(:mod:`masa.modeling.checkpoint`) and rebuilt from it with :func:`MasaConfig.from_dict`, which
rejects unknown keys.

:data:`MASA_CONFIGS` is a plain dict of named configs: the authors' released variants
(``masa_r50``, ``sam_vitb_masa``, ``sam_vith_masa``, ``detic_masa``, ``gdino_masa``; facts from
their configs, see docs/adapter.md) and ours (``lite``, ``paper_*``, ``raw_*``). Pick one and
:func:`dataclasses.replace` what you want to change; :func:`masa.modeling.build.build_masa`
turns it into a model.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import Any, Literal

from masa.modeling.preprocess import PreprocessConfig

__all__ = [
    "BackboneConfig",
    "PyramidConfig",
    "FusionConfig",
    "RoIConfig",
    "TrackHeadConfig",
    "ProposalConfig",
    "DetectionHeadConfig",
    "AdapterConfig",
    "RawFeaturesConfig",
    "MasaConfig",
    "MASA_CONFIGS",
    "UNIMPLEMENTED_BACKBONES",
    "config_names",
    "get_config",
]

#: Backbones the authors use that are not implemented here yet (their configs stay describable so
#: that their checkpoints can be inspected and their adapters loaded; building the backbone fails).
UNIMPLEMENTED_BACKBONES = {"swin_b": "Swin-B (GDINO / Detic backbone)"}


def _choice(owner: str, name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{owner}.{name}: expected one of {allowed}, got {value!r}")


def _positive(owner: str, name: str, value: float, minimum: float = 1) -> None:
    if value < minimum:
        raise ValueError(f"{owner}.{name}: expected >= {minimum}, got {value}")


@dataclass(frozen=True)
class BackboneConfig:
    """The frozen feature extractor.

    name: a key of :data:`masa.modeling.backbones.BACKBONE_BUILDERS` (``efficientnet_lite0..2``,
        ``resnet50``, ``resnet50_caffe``, ``sam_vit_b/l/h``).
    out_strides: tapped levels of EfficientNet-Lite (any of 4, 8, 16, 32); ``None`` for backbones
        with fixed taps (ResNet-50: 4-32; SAM: four stride-16 maps of its global-attention blocks).
    """

    name: str = "efficientnet_lite0"
    out_strides: tuple[int, ...] | None = (8, 16, 32)

    def __post_init__(self) -> None:
        from masa.modeling.backbones import BACKBONE_BUILDERS

        known = sorted(BACKBONE_BUILDERS) + sorted(UNIMPLEMENTED_BACKBONES)
        _choice("BackboneConfig", "name", self.name, tuple(known))
        if self.out_strides is not None and not self.name.startswith("efficientnet_lite"):
            raise ValueError(f"BackboneConfig.out_strides: only EfficientNet-Lite taps are configurable, not {self.name!r}'s")


@dataclass(frozen=True)
class PyramidConfig:
    """The adapter's feature pyramid (``masa_adapter.0`` in the authors' checkpoints).

    kind: ``"fpn"`` for hierarchical backbones, ``"simple_fpn"`` (ViTDet style) for plain ViTs.
    channels: width of the pyramid, fusion and heads (256 in the paper).
    num_levels: output levels (5; those beyond the inputs are max-pooled).
    norm: BatchNorm after every FPN conv (the authors' configs) or ``"none"``.
    """

    kind: Literal["fpn", "simple_fpn"] = "fpn"
    channels: int = 256
    num_levels: int = 5
    norm: Literal["bn", "none"] = "none"

    def __post_init__(self) -> None:
        _choice("PyramidConfig", "kind", self.kind, ("fpn", "simple_fpn"))
        _choice("PyramidConfig", "norm", self.norm, ("bn", "none"))
        if self.kind == "simple_fpn" and self.norm != "none":
            raise ValueError("PyramidConfig.norm: SimpleFPN has no norm option (LayerNorm is built in); use 'none'")
        if self.channels < 16 or self.channels % 16:
            raise ValueError(f"PyramidConfig.channels: expected a multiple of 16 (GroupNorm), got {self.channels}")
        _positive("PyramidConfig", "num_levels", self.num_levels)


@dataclass(frozen=True)
class FusionConfig:
    """Dynamic deformable fusion (``masa_adapter.1``).

    kind: ``"deform_fusion"`` (GDINO/Detic/R50), ``"dyhead"`` (SAM) or ``"none"``.
    num_blocks: stacked blocks (3 in the paper).
    official_flat_read: reproduce how mmcv reads the high branch's offsets (see
        :mod:`masa.modeling.fusion`); on only for the authors' checkpoints, off for ours.
    """

    kind: Literal["deform_fusion", "dyhead", "none"] = "deform_fusion"
    num_blocks: int = 3
    official_flat_read: bool = False

    def __post_init__(self) -> None:
        _choice("FusionConfig", "kind", self.kind, ("deform_fusion", "dyhead", "none"))
        if self.kind != "none":
            _positive("FusionConfig", "num_blocks", self.num_blocks)


@dataclass(frozen=True)
class RoIConfig:
    """RoI-Align over the fused pyramid (mmdet ``SingleRoIExtractor``).

    strides: the first pyramid levels RoIs are pooled from, e.g. ``(4, 8, 16, 32)``.
    size: side of the pooled grid (7). finest_scale: level-mapping scale (56).
    """

    strides: tuple[int, ...] = (8, 16, 32)
    size: int = 7
    finest_scale: float = 56.0

    def __post_init__(self) -> None:
        if not self.strides:
            raise ValueError("RoIConfig.strides: expected at least one level")
        _positive("RoIConfig", "size", self.size)


@dataclass(frozen=True)
class TrackHeadConfig:
    """The embedding head: ``num_convs`` x (3x3 conv, GN, ReLU), one FC, then the embedding FC."""

    num_convs: int = 4
    fc_channels: int = 1024
    embed_dim: int = 256

    def __post_init__(self) -> None:
        _positive("TrackHeadConfig", "num_convs", self.num_convs, 0)
        _positive("TrackHeadConfig", "fc_channels", self.fc_channels)
        _positive("TrackHeadConfig", "embed_dim", self.embed_dim)


@dataclass(frozen=True)
class ProposalConfig:
    """RPN proposal filtering: top ``nms_pre`` per level, NMS at ``nms_iou``, at most ``max_per_img``."""

    nms_pre: int
    max_per_img: int
    nms_iou: float = 0.7

    def __post_init__(self) -> None:
        _positive("ProposalConfig", "nms_pre", self.nms_pre)
        _positive("ProposalConfig", "max_per_img", self.max_per_img)


def _default_proposals() -> dict[str, ProposalConfig]:
    # mmdet defaults the authors keep: train_cfg.rpn_proposal / test_cfg.rpn.
    return {"training": ProposalConfig(2000, 1000, 0.7), "testing": ProposalConfig(1000, 1000, 0.7)}


@dataclass(frozen=True)
class DetectionHeadConfig:
    """Class-agnostic RPN + RoI box head (object-prior distillation, paper §3.2.2).

    box_head: ``"shared2fc"`` (GDINO, Detic, SAM) or ``"shared4conv1fc"`` (R50: 4 conv + BN, 1 FC).
    fc_channels: width of the box head's FCs (1024).
    rpn_loss_bbox: ``"smooth_l1"`` (beta 1/9; GDINO, Detic, SAM) or ``"l1"`` (R50).
    anchor_strides: RPN anchor stride per fused level; ``None`` uses the pyramid's strides.
    proposals: ``{"training": ..., "testing": ...}`` RPN proposal settings (torchvision style).
    score_thresh, nms_iou, max_per_img: test-time box filtering (0.02, class-agnostic NMS 0.5, 50).
    """

    box_head: Literal["shared2fc", "shared4conv1fc"] = "shared2fc"
    fc_channels: int = 1024
    rpn_loss_bbox: Literal["smooth_l1", "l1"] = "smooth_l1"
    anchor_strides: tuple[int, ...] | None = None
    proposals: dict[str, ProposalConfig] = field(default_factory=_default_proposals)
    score_thresh: float = 0.02
    nms_iou: float = 0.5
    max_per_img: int = 50

    def __post_init__(self) -> None:
        _choice("DetectionHeadConfig", "box_head", self.box_head, ("shared2fc", "shared4conv1fc"))
        _choice("DetectionHeadConfig", "rpn_loss_bbox", self.rpn_loss_bbox, ("smooth_l1", "l1"))
        if sorted(self.proposals) != ["testing", "training"]:
            raise ValueError(f"DetectionHeadConfig.proposals: expected keys 'training' and 'testing', got {sorted(self.proposals)}")
        _positive("DetectionHeadConfig", "max_per_img", self.max_per_img)


@dataclass(frozen=True)
class AdapterConfig:
    """The MASA adapter on the frozen backbone: pyramid -> fusion -> RoI-Align -> heads.

    ``detection=None`` builds no detection head (embeddings for given boxes only).
    """

    pyramid: PyramidConfig = field(default_factory=PyramidConfig)
    fusion: FusionConfig = field(default_factory=FusionConfig)
    roi: RoIConfig = field(default_factory=RoIConfig)
    track_head: TrackHeadConfig = field(default_factory=TrackHeadConfig)
    detection: DetectionHeadConfig | None = field(default_factory=DetectionHeadConfig)


@dataclass(frozen=True)
class RawFeaturesConfig:
    """The off-the-shelf baseline: RoI-Align on every backbone level, no learned weights.

    roi_size: side of the RoI-Align grid, averaged to one vector per level.
    scale: L2 norm of every embedding (a softmax temperature for dot-product matching; 6 was
        chosen on TUD-Campus and PETS09-S2L1 frames, see docs/adapter.md).
    """

    roi_size: int = 7
    scale: float = 6.0

    def __post_init__(self) -> None:
        _positive("RawFeaturesConfig", "roi_size", self.roi_size)
        if not self.scale > 0:
            raise ValueError(f"RawFeaturesConfig.scale: expected a positive number, got {self.scale}")


@dataclass(frozen=True)
class ResidualHeadConfig:
    """The CPU-friendly trained head: the raw RoI features plus a learned residual
    (:class:`~masa.modeling.residual_head.ResidualRoIHead`).

    roi_size: side of the RoI-Align grid. grid: side of the layout grid fed to the residual MLP
    (0: none). hidden: width of the MLP (0: a learned per-channel weight instead). scale_init: initial embedding norm (then learned).
    sampling_ratio: RoI-Align samples per bin side (0: adaptive).
    """

    roi_size: int = 7
    grid: int = 3
    hidden: int = 512
    scale_init: float = 6.0
    sampling_ratio: int = 2

    def __post_init__(self) -> None:
        _positive("ResidualHeadConfig", "roi_size", self.roi_size)
        _positive("ResidualHeadConfig", "grid", self.grid, minimum=0)
        _positive("ResidualHeadConfig", "hidden", self.hidden, minimum=0)
        _positive("ResidualHeadConfig", "sampling_ratio", self.sampling_ratio, minimum=0)
        if not self.scale_init > 0:
            raise ValueError(f"ResidualHeadConfig.scale_init: expected a positive number, got {self.scale_init}")


@dataclass(frozen=True)
class MasaConfig:
    """A whole model: backbone, preprocessing, and one head: the MASA adapter, the raw-RoI
    baseline or the residual head.

    name: a label (the registry key for named configs); not used to build anything.
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    adapter: AdapterConfig | None = field(default_factory=AdapterConfig)
    raw_features: RawFeaturesConfig | None = None
    residual_head: ResidualHeadConfig | None = None
    name: str = ""

    def __post_init__(self) -> None:
        heads = [self.adapter, self.raw_features, self.residual_head]
        if sum(h is not None for h in heads) != 1:
            raise ValueError(
                "MasaConfig: set exactly one of 'adapter' (MASA adapter), 'raw_features' (off-the-shelf baseline) "
                "and 'residual_head' (trained residual on raw RoI features)"
            )

    @property
    def has_detection_head(self) -> bool:
        return self.adapter is not None and self.adapter.detection is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        return _to_plain(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MasaConfig:
        """Inverse of :meth:`to_dict`; unknown or misspelt keys raise ``ValueError`` naming them."""
        return _from_plain(cls, data, "MasaConfig")


def _to_plain(value: Any) -> Any:
    if is_dataclass(value):
        return {f.name: _to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_to_plain(v) for v in value]
    return value


def _from_plain(cls: type, data: Any, where: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown keys {unknown}; expected some of {sorted(known)}")
    values = {name: _convert(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**values)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _convert(hint: Any, value: Any, where: str) -> Any:
    """Convert a plain JSON value to the annotated type (dataclasses, tuples, dicts of dataclasses)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, where)
    if is_dataclass(hint):
        return _from_plain(hint, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{where}: expected a list, got {value!r}")
        return tuple(value)
    if origin is dict:
        value_type = typing.get_args(hint)[1]
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected a mapping, got {value!r}")
        return {k: _convert(value_type, v, f"{where}[{k!r}]") for k, v in value.items()}
    return value


# ---------------------------------------------------------------------------------------------
# Named configs

_MMDET_PRE = PreprocessConfig(max_size=(1024, 1024), size_divisor=32)
_SAM_PRE = PreprocessConfig(max_size=(1024, 1024), pad_to=1024)
_NATIVE_PRE = PreprocessConfig(max_size=(1024, 1024), size_divisor=32, upscale=False)


def _official(
    name: str,
    backbone: BackboneConfig,
    pyramid: str,
    fusion: str,
    roi_strides: tuple[int, ...],
    anchor_strides: tuple[int, ...],
    box_head: str,
    rpn_loss_bbox: str,
    preprocess: PreprocessConfig,
) -> MasaConfig:
    """An authors' variant: 256 channels, 5 levels, BN in the FPN, 3 fusion blocks, flat read on."""
    return MasaConfig(
        name=name,
        backbone=backbone,
        preprocess=preprocess,
        adapter=AdapterConfig(
            pyramid=PyramidConfig(kind=pyramid, norm="bn" if pyramid == "fpn" else "none"),  # type: ignore[arg-type]
            fusion=FusionConfig(kind=fusion, num_blocks=3, official_flat_read=True),  # type: ignore[arg-type]
            roi=RoIConfig(strides=roi_strides),
            track_head=TrackHeadConfig(),
            detection=DetectionHeadConfig(
                box_head=box_head, rpn_loss_bbox=rpn_loss_bbox, anchor_strides=anchor_strides  # type: ignore[arg-type]
            ),
        ),
    )


def _raw(name: str, backbone: str) -> MasaConfig:
    if backbone.startswith("sam_vit"):  # SAM needs the long side resized to 1024 and a 1024 x 1024 pad
        return MasaConfig(
            name=name, backbone=BackboneConfig(backbone, None), preprocess=_SAM_PRE, adapter=None, raw_features=RawFeaturesConfig()
        )
    strides = (4, 8, 16, 32) if backbone.startswith("efficientnet_lite") else None
    return MasaConfig(
        name=name, backbone=BackboneConfig(backbone, strides), preprocess=_NATIVE_PRE, adapter=None, raw_features=RawFeaturesConfig()
    )


_R4 = (4, 8, 16, 32)
_A4 = (4, 8, 16, 32, 64)
_A8 = (8, 16, 32, 64, 128)

#: Every named model. Raw baselines: ``raw_<backbone>``; ours: ``lite`` (CPU-friendly adapter on
#: EfficientNet-Lite0) and ``paper_*`` (the paper's sizes on our backbones); the authors':
#: ``masa_r50``, ``sam_vitb_masa``, ``sam_vith_masa``, ``detic_masa``, ``gdino_masa``.
MASA_CONFIGS: dict[str, MasaConfig] = {
    "raw_efficientnet_lite0": _raw("raw_efficientnet_lite0", "efficientnet_lite0"),
    "raw_efficientnet_lite1": _raw("raw_efficientnet_lite1", "efficientnet_lite1"),
    "raw_efficientnet_lite2": _raw("raw_efficientnet_lite2", "efficientnet_lite2"),
    "raw_resnet50": _raw("raw_resnet50", "resnet50"),
    "raw_sam_vit_b": _raw("raw_sam_vit_b", "sam_vit_b"),
    # The shipped default's architecture (trained weights: masa/weights/, docs/model_card.md).
    "masa_lite0": MasaConfig(
        name="masa_lite0",
        backbone=BackboneConfig("efficientnet_lite0", _R4),
        preprocess=_NATIVE_PRE,
        adapter=None,
        residual_head=ResidualHeadConfig(hidden=0),  # the learned metric (chosen by measurement: docs/training.md)
    ),
    "lite": MasaConfig(
        name="lite",
        backbone=BackboneConfig("efficientnet_lite0", (8, 16, 32)),
        preprocess=_NATIVE_PRE,
        adapter=AdapterConfig(
            pyramid=PyramidConfig(channels=128),
            fusion=FusionConfig(num_blocks=1),
            roi=RoIConfig(strides=(8, 16, 32)),
            track_head=TrackHeadConfig(fc_channels=512),
            detection=DetectionHeadConfig(fc_channels=512),
        ),
    ),
    "paper_efficientnet_lite0": MasaConfig(
        name="paper_efficientnet_lite0",
        backbone=BackboneConfig("efficientnet_lite0", _R4),
        preprocess=_MMDET_PRE,
        adapter=AdapterConfig(roi=RoIConfig(strides=_R4)),
    ),
    "paper_sam_vit_b": MasaConfig(
        name="paper_sam_vit_b",
        backbone=BackboneConfig("sam_vit_b", None),
        preprocess=_SAM_PRE,
        adapter=AdapterConfig(
            pyramid=PyramidConfig(kind="simple_fpn"), fusion=FusionConfig(kind="dyhead"), roi=RoIConfig(strides=_R4)
        ),
    ),
    "masa_r50": _official(
        "masa_r50", BackboneConfig("resnet50_caffe", None), "fpn", "deform_fusion", _R4, _A4, "shared4conv1fc", "l1", _MMDET_PRE
    ),
    "sam_vitb_masa": _official(
        "sam_vitb_masa", BackboneConfig("sam_vit_b", None), "simple_fpn", "dyhead", _R4, _A4, "shared2fc", "smooth_l1", _SAM_PRE
    ),
    "sam_vith_masa": _official(
        "sam_vith_masa", BackboneConfig("sam_vit_h", None), "simple_fpn", "dyhead", _R4, _A4, "shared2fc", "smooth_l1", _SAM_PRE
    ),
    "detic_masa": _official(
        "detic_masa", BackboneConfig("swin_b", None), "fpn", "deform_fusion", (8, 16, 32), _A8, "shared2fc", "smooth_l1", _MMDET_PRE
    ),
    "gdino_masa": _official(
        "gdino_masa",
        BackboneConfig("swin_b", None),
        "fpn",
        "deform_fusion",
        (8, 16, 32),
        _A8,
        "shared2fc",
        "smooth_l1",
        PreprocessConfig(max_size=(1333, 800), size_divisor=32),
    ),
}
# paper_resnet50: the authors' R50 architecture (Shared4Conv1FC box head, L1 RPN loss) for training
# here; only the fusion's offset read differs (the intended top-left crop, not mmcv's flat read).
_r50 = MASA_CONFIGS["masa_r50"]
MASA_CONFIGS["paper_resnet50"] = replace(
    _r50,
    name="paper_resnet50",
    adapter=replace(_r50.adapter, fusion=replace(_r50.adapter.fusion, official_flat_read=False)),  # type: ignore[arg-type]
)

#: Short names users may type for the raw baselines (the backbone's name, as in ``--appearance``).
_ALIASES = {name[len("raw_"):]: name for name in MASA_CONFIGS if name.startswith("raw_")}


def config_names() -> list[str]:
    """Every name :func:`get_config` accepts (registry keys, then backbone-name aliases)."""
    return [*MASA_CONFIGS, *_ALIASES]


def get_config(name: str) -> MasaConfig:
    """The named config (a :data:`MASA_CONFIGS` key, or a backbone name for its raw baseline)."""
    key = _ALIASES.get(name, name)
    if key not in MASA_CONFIGS:
        raise ValueError(f"unknown MASA model {name!r}; expected one of {config_names()} or a checkpoint file")
    return MASA_CONFIGS[key]
