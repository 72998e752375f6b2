"""Builders: MASA models from small configs, checkpoints (ours and the authors'), embedders, devices.

Our checkpoints are safetensors files holding the adapter weights (``adapter.*``), optionally the
frozen backbone (``backbone.*``), and in the metadata the :class:`AdapterConfig` that built them
(``masa_config``, JSON), so ``load_masa_checkpoint(path)`` rebuilds the exact model. The authors'
released ``.pth`` files are read with ``torch.load(weights_only=True)`` (see
:mod:`masa.modeling.official`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from masa.modeling.adapter import MasaAdapter, MasaEmbedder, MasaModel
from masa.modeling.backbones import BACKBONE_BUILDERS, Backbone
from masa.modeling.det_head import RoIBoxHead, RPNHead
from masa.modeling.embedder import Embedder
from masa.modeling.fusion import DeformFusion, DyHead
from masa.modeling.preprocess import PreprocessConfig
from masa.modeling.pyramid import FPN, SimpleFPN
from masa.modeling.track_head import TrackHead

__all__ = [
    "AdapterConfig",
    "ADAPTER_CONFIGS",
    "build_backbone",
    "build_adapter",
    "build_masa_model",
    "save_masa_checkpoint",
    "load_masa_checkpoint",
    "load_official_model",
    "build_embedder",
    "resolve_device",
]

CHECKPOINT_FORMAT = "masa-adapter/1"


@dataclass(frozen=True)
class AdapterConfig:
    """Everything that determines a MASA model's architecture (stored in its checkpoints).

    backbone: name in :data:`masa.modeling.backbones.BACKBONE_BUILDERS` (frozen).
    backbone_strides: tapped backbone levels (EfficientNet-Lite: any of 4, 8, 16, 32; ignored by
        backbones with fixed taps such as SAM and ResNet-50).
    pyramid: ``"fpn"`` for hierarchical backbones, ``"simple_fpn"`` for plain ViTs (SAM).
    pyramid_norm: BatchNorm in the FPN convs (the authors' configs) or none.
    channels: width of the pyramid, fusion and heads (256 in the paper).
    num_levels: pyramid outputs (5 in the paper; the extra ones are max-pooled).
    fusion: ``"deform_fusion"`` (GDINO/Detic/R50), ``"dyhead"`` (SAM) or ``"none"``.
    fusion_blocks: stacked fusion blocks (3 in the paper).
    roi_strides: pyramid levels that RoIs are pooled from (the first ``len(roi_strides)`` levels).
    embed_dim, fc_channels, track_convs: track head sizes (256, 1024, 4 in the paper).
    detection_heads: build the RPN + RoI box head (object-prior distillation).
    preprocess: resize/pad of frames before the backbone.
    """

    backbone: str = "efficientnet_lite0"
    backbone_strides: tuple[int, ...] = (8, 16, 32)
    pyramid: Literal["fpn", "simple_fpn"] = "fpn"
    pyramid_norm: Literal["bn", "none"] = "none"
    channels: int = 256
    num_levels: int = 5
    fusion: Literal["deform_fusion", "dyhead", "none"] = "deform_fusion"
    fusion_blocks: int = 3
    roi_strides: tuple[int, ...] = (8, 16, 32)
    embed_dim: int = 256
    fc_channels: int = 1024
    track_convs: int = 4
    detection_heads: bool = True
    preprocess: PreprocessConfig = field(default_factory=lambda: PreprocessConfig(max_size=(1024, 1024), size_divisor=32))

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONE_BUILDERS:
            raise ValueError(f"AdapterConfig.backbone: expected one of {sorted(BACKBONE_BUILDERS)}, got {self.backbone!r}")
        for name, allowed in (("pyramid", ("fpn", "simple_fpn")), ("pyramid_norm", ("bn", "none")), ("fusion", ("deform_fusion", "dyhead", "none"))):
            if getattr(self, name) not in allowed:
                raise ValueError(f"AdapterConfig.{name}: expected one of {allowed}, got {getattr(self, name)!r}")
        if self.channels < 16 or self.channels % 16:
            raise ValueError(f"AdapterConfig.channels: expected a multiple of 16 (GroupNorm), got {self.channels}")
        if self.fusion_blocks < 1 and self.fusion != "none":
            raise ValueError(f"AdapterConfig.fusion_blocks: expected >= 1, got {self.fusion_blocks}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"AdapterConfig: unknown fields {unknown} (checkpoint from a newer masa?)")
        data = dict(data)
        if isinstance(data.get("preprocess"), dict):
            pre = dict(data["preprocess"])
            if pre.get("max_size") is not None:
                pre["max_size"] = tuple(pre["max_size"])
            data["preprocess"] = PreprocessConfig(**pre)
        for key in ("backbone_strides", "roi_strides"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


#: Named architectures. ``lite`` is the CPU-friendly default on EfficientNet-Lite0; ``paper_*``
#: follow the paper's sizes (256 channels, 3 fusion blocks).
ADAPTER_CONFIGS: dict[str, AdapterConfig] = {
    "lite": AdapterConfig(
        backbone="efficientnet_lite0",
        backbone_strides=(8, 16, 32),
        channels=128,
        fusion_blocks=1,
        fc_channels=512,
        preprocess=PreprocessConfig(max_size=(1024, 1024), size_divisor=32, upscale=False),
    ),
    "paper_efficientnet_lite0": AdapterConfig(backbone="efficientnet_lite0", backbone_strides=(4, 8, 16, 32), roi_strides=(4, 8, 16, 32)),
    "paper_resnet50": AdapterConfig(
        backbone="resnet50_caffe", backbone_strides=(4, 8, 16, 32), pyramid_norm="bn", roi_strides=(4, 8, 16, 32)
    ),
    "paper_sam_vit_b": AdapterConfig(
        backbone="sam_vit_b",
        backbone_strides=(16, 16, 16, 16),
        pyramid="simple_fpn",
        fusion="dyhead",
        roi_strides=(4, 8, 16, 32),
        preprocess=PreprocessConfig(max_size=(1024, 1024), pad_to=1024),
    ),
}


def build_backbone(config: AdapterConfig, **kwargs: Any) -> Backbone:
    """The frozen backbone named by ``config`` (``kwargs`` go to its builder, e.g. ``checkpoint=``)."""
    if config.backbone.startswith("efficientnet_lite"):
        kwargs.setdefault("out_strides", config.backbone_strides)
    return BACKBONE_BUILDERS[config.backbone](**kwargs)


def build_adapter(config: AdapterConfig, in_channels: tuple[int, ...], in_strides: tuple[int, ...]) -> MasaAdapter:
    """A randomly initialised :class:`MasaAdapter` for backbone outputs of ``in_channels``/``in_strides``."""
    c = config.channels
    if config.pyramid == "simple_fpn":
        pyramid: nn.Module = SimpleFPN(in_channels[0], c, num_outs=config.num_levels, in_stride=in_strides[0])
        out_strides = pyramid.strides
    else:
        pyramid = FPN(in_channels, c, num_outs=config.num_levels, norm=config.pyramid_norm, in_strides=in_strides)
        out_strides = pyramid.strides
    if tuple(config.roi_strides) != tuple(out_strides[: len(config.roi_strides)]):
        raise ValueError(f"AdapterConfig.roi_strides {config.roi_strides} must be the first pyramid strides {tuple(out_strides)}")
    if config.fusion == "deform_fusion":
        fusion: nn.Module = DeformFusion(c, num_blocks=config.fusion_blocks, official_flat_read=False)
    elif config.fusion == "dyhead":
        fusion = DyHead(c, num_blocks=config.fusion_blocks, official_flat_read=False)
    else:
        fusion = nn.Identity()
    track_head = TrackHead(in_channels=c, conv_channels=c, fc_channels=config.fc_channels, embed_dim=config.embed_dim, num_convs=config.track_convs)
    rpn_head = roi_head = None
    if config.detection_heads:
        rpn_head = RPNHead(c, c, anchor_strides=tuple(out_strides))
        roi_head = RoIBoxHead(config.roi_strides, in_channels=c, conv_channels=c, fc_channels=config.fc_channels)
    return MasaAdapter(pyramid, fusion, track_head, rpn_head, roi_head, roi_strides=config.roi_strides)


def build_masa_model(config: AdapterConfig = ADAPTER_CONFIGS["lite"], **backbone_kwargs: Any) -> MasaModel:
    """Frozen backbone + randomly initialised adapter, as described by ``config``."""
    backbone = build_backbone(config, **backbone_kwargs)
    adapter = build_adapter(config, backbone.out_channels, backbone.strides)
    return MasaModel(backbone, adapter)


def save_masa_checkpoint(model: MasaModel, config: AdapterConfig, path: str | Path, include_backbone: bool = False) -> Path:
    """Write ``model`` as safetensors: ``adapter.*`` (+ ``backbone.*``), config in the metadata."""
    from safetensors.torch import save_file

    state = {f"adapter.{k}": v.detach().cpu().contiguous() for k, v in model.adapter.state_dict().items()}
    if include_backbone:
        state.update({f"backbone.{k}": v.detach().cpu().contiguous() for k, v in model.backbone.state_dict().items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": CHECKPOINT_FORMAT, "masa_config": json.dumps(config.to_dict())}
    save_file(state, str(path), metadata=metadata)
    return path


def load_masa_checkpoint(path: str | Path, **backbone_kwargs: Any) -> tuple[MasaModel, AdapterConfig]:
    """Rebuild the model saved by :func:`save_masa_checkpoint` (strict key and shape check)."""
    from safetensors import safe_open

    from masa.modeling.checkpoint_io import load_strict

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MASA checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:
        raise ValueError(f"{path}: not a readable safetensors file ({exc})") from exc
    if metadata.get("format") != CHECKPOINT_FORMAT or "masa_config" not in metadata:
        raise ValueError(f"{path}: not a masa adapter checkpoint (metadata format {metadata.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    config = AdapterConfig.from_dict(json.loads(metadata["masa_config"]))
    has_backbone = any(k.startswith("backbone.") for k in state)
    if has_backbone and config.backbone.startswith("efficientnet_lite"):
        backbone_kwargs.setdefault("pretrained", False)
    model = build_masa_model(config, **backbone_kwargs)
    load_strict(model.adapter, {k[len("adapter."):]: v for k, v in state.items() if k.startswith("adapter.")}, f"{path} (adapter)")
    if has_backbone:
        load_strict(model.backbone, {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}, f"{path} (backbone)")
        model.backbone.freeze()
    return model, config


def _guess_official_variant(state: dict[str, torch.Tensor]) -> str:
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


def load_official_model(
    path: str | Path, variant: str | None = None, sam_checkpoint: str | Path | None = None
) -> tuple[MasaModel, PreprocessConfig]:
    """A :class:`MasaModel` from the authors' released ``.pth`` (``weights_only=True``).

    The adapter loads strictly. The frozen backbone comes from the same file (``backbone.*`` for
    ``masa_r50``, ``detector.backbone.*`` for the SAM variants) or, for SAM variants whose file lacks
    it, from ``sam_checkpoint`` (an original SAM checkpoint such as ``sam_vit_b_01ec64.pth``).
    """
    from masa.modeling.backbones import build_resnet50_caffe, build_sam_vit_backbone, load_sam_checkpoint
    from masa.modeling.checkpoint_io import load_strict
    from masa.modeling.official import (
        OFFICIAL_VARIANTS,
        build_adapter_for_official,
        load_official_adapter,
        read_official_checkpoint,
        sam_image_encoder_state_dict,
    )

    state = read_official_checkpoint(path)
    variant = variant or _guess_official_variant(state)
    spec = OFFICIAL_VARIANTS[variant]
    adapter = build_adapter_for_official(variant)
    parts = load_official_adapter(adapter, state, variant)
    if variant == "masa_r50":
        backbone: Backbone = build_resnet50_caffe(warn_random_init=False)
        load_strict(backbone, parts.backbone, f"{path} (backbone)")
        backbone.freeze()
    else:
        encoder = sam_image_encoder_state_dict(parts.detector) if parts.detector else {}
        backbone = build_sam_vit_backbone("vit_h" if variant == "sam_vith_masa" else "vit_b")
        if encoder:
            load_sam_checkpoint(backbone, {f"image_encoder.{k}": v for k, v in encoder.items()})
        elif sam_checkpoint is not None:
            load_sam_checkpoint(backbone, sam_checkpoint)
        else:
            raise ValueError(f"{path}: holds no SAM image-encoder weights; pass the original SAM checkpoint (--sam-checkpoint)")
    return MasaModel(backbone, adapter), spec.preprocess


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(spec)`` (validated)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ValueError(f"--device: expected auto, cpu, cuda or cuda:N, got {spec!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
    return device


def build_embedder(
    model: str | Path | None = None,
    appearance: str = "efficientnet_lite0",
    device: torch.device | str = "cpu",
    fp16: bool = False,
    sam_checkpoint: str | Path | None = None,
) -> Embedder:
    """The appearance model for tracking.

    ``model``: our ``.safetensors`` adapter checkpoint or an official MASA ``.pth``; when ``None``,
    raw RoI features of the frozen ``appearance`` backbone (the paper's off-the-shelf baseline).
    """
    if model is None:
        from masa.modeling.baseline import build_baseline_embedder

        return build_baseline_embedder(appearance, device=device)
    path = Path(model)
    if not path.is_file():
        raise FileNotFoundError(f"--model: checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        masa_model, config = load_masa_checkpoint(path)
        return MasaEmbedder(masa_model, preprocess=config.preprocess, device=device, fp16=fp16)
    masa_model, preprocess = load_official_model(path, sam_checkpoint=sam_checkpoint)
    return MasaEmbedder(masa_model, preprocess=preprocess, device=device, fp16=fp16)
