"""The one builder: :func:`build_masa` turns a :class:`~masa.modeling.config.MasaConfig` into a model.

In the shape of segment-anything's ``build_sam.py``: named ``build_masa_*()`` functions call one
builder with a registry config, and :func:`load_masa` rebuilds a model from any checkpoint file
(ours: the config is inside it; the authors' ``.pth``: the variant is recognised from its keys).
:func:`build_predictor` wraps a model into the per-frame :class:`~masa.modeling.predictor.MasaPredictor`,
which is what the pipeline, the CLI and the benchmarks use.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from masa.modeling.adapter import MasaAdapter, MasaModel
from masa.modeling.backbones import BACKBONE_BUILDERS, Backbone
from masa.modeling.baseline import RawRoIFeatures
from masa.modeling.checkpoint import CheckpointError, load_state_dict_file, load_strict, read_masa_checkpoint, strip_prefix
from masa.modeling.config import MASA_CONFIGS, UNIMPLEMENTED_BACKBONES, AdapterConfig, MasaConfig, get_config
from masa.modeling.det_head import RoIBoxHead, RPNHead
from masa.modeling.fusion import DeformFusion, DyHead
from masa.modeling.predictor import MasaPredictor
from masa.modeling.pyramid import FPN, SimpleFPN
from masa.modeling.residual_head import ResidualRoIHead
from masa.modeling.track_head import TrackHead

__all__ = [
    "build_masa",
    "build_backbone",
    "build_adapter",
    "load_masa",
    "build_predictor",
    "build_embedder",
    "resolve_device",
    "shipped_weights",
    "SHIPPED_WEIGHTS",
    "DEFAULT_MODEL",
    "build_masa_raw",
    "build_masa_lite",
    "build_masa_r50",
    "build_masa_sam_vit_b",
    "build_masa_sam_vit_h",
    "masa_model_registry",
]


def build_backbone(config: MasaConfig, **kwargs: Any) -> Backbone:
    """The frozen backbone of ``config`` (``kwargs`` go to its builder, e.g. ``checkpoint=``, ``pretrained=``)."""
    name = config.backbone.name
    if name in UNIMPLEMENTED_BACKBONES:
        raise ValueError(f"the {UNIMPLEMENTED_BACKBONES[name]} backbone is not implemented yet; it cannot be built or run")
    if config.backbone.out_strides is not None:
        kwargs.setdefault("out_strides", config.backbone.out_strides)
    return BACKBONE_BUILDERS[name](**kwargs)


def build_adapter(config: AdapterConfig, *, in_channels: tuple[int, ...], in_strides: tuple[int, ...]) -> MasaAdapter:
    """A randomly initialised :class:`MasaAdapter` for backbone maps of ``in_channels`` / ``in_strides``."""
    c = config.pyramid.channels
    if config.pyramid.kind == "simple_fpn":
        pyramid: nn.Module = SimpleFPN(in_channels[0], c, num_outs=config.pyramid.num_levels, in_stride=in_strides[0])
    else:
        pyramid = FPN(in_channels, c, num_outs=config.pyramid.num_levels, norm=config.pyramid.norm, in_strides=in_strides)
    out_strides = tuple(pyramid.strides)
    roi_strides = tuple(config.roi.strides)
    if roi_strides != out_strides[: len(roi_strides)]:
        raise ValueError(f"RoIConfig.strides {roi_strides} must be the first pyramid strides {out_strides}")
    fusion_cfg = config.fusion
    if fusion_cfg.kind == "deform_fusion":
        fusion: nn.Module = DeformFusion(c, num_blocks=fusion_cfg.num_blocks, official_flat_read=fusion_cfg.official_flat_read)
    elif fusion_cfg.kind == "dyhead":
        fusion = DyHead(c, num_blocks=fusion_cfg.num_blocks, official_flat_read=fusion_cfg.official_flat_read)
    else:
        fusion = nn.Identity()
    head = config.track_head
    track_head = TrackHead(
        in_channels=c, num_convs=head.num_convs, conv_channels=c, roi_size=config.roi.size, fc_channels=head.fc_channels,
        embed_dim=head.embed_dim,
    )  # fmt: skip
    rpn_head = roi_head = None
    det = config.detection
    if det is not None:
        anchor_strides = det.anchor_strides if det.anchor_strides is not None else out_strides
        if len(anchor_strides) != len(out_strides):
            raise ValueError(f"DetectionHeadConfig.anchor_strides: {len(anchor_strides)} strides for {len(out_strides)} pyramid levels")
        rpn_head = RPNHead(in_channels=c, feat_channels=c, anchor_strides=anchor_strides, loss_bbox=det.rpn_loss_bbox)
        convs, fcs = (4, 1) if det.box_head == "shared4conv1fc" else (0, 2)
        roi_head = RoIBoxHead(
            roi_strides=roi_strides, in_channels=c, roi_size=config.roi.size, num_shared_convs=convs, conv_channels=c,
            num_shared_fcs=fcs, fc_channels=det.fc_channels, finest_scale=config.roi.finest_scale,
        )  # fmt: skip
    return MasaAdapter(
        pyramid=pyramid,
        fusion=fusion,
        track_head=track_head,
        rpn_head=rpn_head,
        roi_head=roi_head,
        roi_strides=roi_strides,
        roi_size=config.roi.size,
        finest_scale=config.roi.finest_scale,
    )


def build_masa(config: MasaConfig, *, checkpoint: str | Path | None = None, **backbone_kwargs: Any) -> MasaModel:
    """The model ``config`` describes: frozen backbone + adapter (or the raw-RoI baseline head).

    ``checkpoint``: weights for it, ours (``.safetensors``, its config must equal ``config``) or
    the authors' (``.pth`` of the same variant). ``backbone_kwargs`` go to the backbone builder
    (``checkpoint=`` of a SAM backbone, ``weights=`` of ResNet-50, ``pretrained=`` of EfficientNet-Lite).
    Without a checkpoint the adapter is randomly initialised (use ``torch.manual_seed``).
    """
    if checkpoint is not None:
        model, stored = load_masa(checkpoint, **backbone_kwargs)
        if _architecture(stored) != _architecture(config):
            raise ValueError(f"{checkpoint}: holds a {stored.name or 'different'} model, not the requested {config.name or 'config'}")
        return model
    backbone = build_backbone(config, **backbone_kwargs)
    if config.raw_features is not None:
        head: nn.Module = RawRoIFeatures(
            in_channels=backbone.out_channels,
            in_strides=backbone.strides,
            roi_size=config.raw_features.roi_size,
            scale=config.raw_features.scale,
        )
    elif config.residual_head is not None:
        rc = config.residual_head
        head = ResidualRoIHead(
            in_channels=backbone.out_channels, in_strides=backbone.strides, roi_size=rc.roi_size, grid=rc.grid,
            hidden=rc.hidden, scale_init=rc.scale_init, sampling_ratio=rc.sampling_ratio,
        )  # fmt: skip
    else:
        assert config.adapter is not None  # MasaConfig guarantees exactly one head
        head = build_adapter(config.adapter, in_channels=backbone.out_channels, in_strides=backbone.strides)
    return MasaModel(backbone, head)


def _architecture(config: MasaConfig) -> MasaConfig:
    return replace(config, name="")


def load_masa(path: str | Path, *, sam_checkpoint: str | Path | None = None, **backbone_kwargs: Any) -> tuple[MasaModel, MasaConfig]:
    """Rebuild a model from a checkpoint file and return it with its config.

    * ``.safetensors`` written by :func:`masa.modeling.checkpoint.save_masa_checkpoint`: the
      config comes from the file; adapter (and backbone, if stored) load strictly.
    * anything else is read as an authors' release (``masa_r50.pth``, ``sam_vit{b,h}_masa.pth``)
      with ``torch.load(weights_only=True)``; SAM variants without encoder weights need
      ``sam_checkpoint`` (the original SAM file).
    """
    from masa.modeling.official import guess_official_variant, load_official_weights

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"MASA checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        config, state = read_masa_checkpoint(path)
        has_backbone = any(k.startswith("backbone.") for k in state)
        if has_backbone and config.backbone.name.startswith("efficientnet_lite"):
            backbone_kwargs.setdefault("pretrained", False)
        if config.backbone.name.startswith("resnet50"):
            backbone_kwargs.setdefault("warn_random_init", not has_backbone)
        model = build_masa(config, **backbone_kwargs)
        load_strict(model.adapter, strip_prefix(state, "adapter."), f"{path} (adapter)")
        if has_backbone:
            load_strict(model.backbone, strip_prefix(state, "backbone."), f"{path} (backbone)")
            model.backbone.freeze()
        return model, config
    state = load_state_dict_file(path)
    try:
        variant = guess_official_variant(state)
    except ValueError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    config = MASA_CONFIGS[variant]
    if config.backbone.name.startswith("resnet50"):
        backbone_kwargs.setdefault("warn_random_init", False)  # its weights come from the file
    model = build_masa(config, **backbone_kwargs)
    load_official_weights(model, state, variant, what=str(path), sam_checkpoint=sam_checkpoint)
    return model, config


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(spec)`` (validated)."""
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ValueError(f"--device: expected auto, cpu, cuda or cuda:N, got {spec!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
    return device


#: Named models whose trained weights ship inside the package (``masa/weights/``; model card: docs/model_card.md).
SHIPPED_WEIGHTS = {"masa_lite0": "masa_lite0.safetensors"}
#: The model ``masa track`` uses when none is named.
DEFAULT_MODEL = "masa_lite0"


def shipped_weights(name: str) -> Path:
    """The packaged weights file of a :data:`SHIPPED_WEIGHTS` model."""
    from importlib.resources import files

    path = Path(str(files("masa") / "weights" / SHIPPED_WEIGHTS[name]))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the packaged weights of {name!r} are missing (reinstall masa)")
    return path


def build_predictor(
    model: str | Path = DEFAULT_MODEL,
    *,
    device: str | torch.device = "cpu",
    fp16: bool = False,
    sam_checkpoint: str | Path | None = None,
) -> MasaPredictor:
    """A :class:`MasaPredictor` for ``model``: a registry name (``masa_lite0``, the shipped trained
    default; ``raw_efficientnet_lite0``, ``lite``, ..., or a backbone name for its raw baseline) or a
    checkpoint file (``.safetensors`` / ``.pth``).

    ``masa_lite0`` loads its packaged weights; other named adapters without a checkpoint have
    random weights (useful for speed tests only).
    """
    spec = str(model)
    path = Path(spec).expanduser()
    if spec in SHIPPED_WEIGHTS:
        masa_model, config = load_masa(shipped_weights(spec))
    elif path.suffix in (".safetensors", ".pth", ".pt", ".bin", ".ckpt") or path.is_file():
        masa_model, config = load_masa(path, sam_checkpoint=sam_checkpoint)
    else:
        config = get_config(spec)
        kwargs = {"checkpoint": sam_checkpoint} if config.backbone.name.startswith("sam_vit") and sam_checkpoint else {}
        masa_model = build_masa(config, **kwargs)
    return MasaPredictor(masa_model, config, device=resolve_device(device), fp16=fp16)


def build_embedder(
    model: str | Path | None = None,
    appearance: str = "efficientnet_lite0",
    device: torch.device | str = "cpu",
    fp16: bool = False,
    sam_checkpoint: str | Path | None = None,
) -> MasaPredictor:
    """masa 0.1 spelling of :func:`build_predictor`: ``model`` (a checkpoint) or else the raw features of ``appearance``."""
    return build_predictor(model if model is not None else appearance, device=device, fp16=fp16, sam_checkpoint=sam_checkpoint)


# ---------------------------------------------------------------------------------------------
# Named builders (segment-anything style)


def build_masa_raw(backbone: str = "efficientnet_lite0") -> MasaModel:
    """The off-the-shelf baseline on ``backbone`` (EfficientNet-Lite: packaged ImageNet weights)."""
    return build_masa(get_config(f"raw_{backbone}"))


def build_masa_lite(checkpoint: str | Path | None = None) -> MasaModel:
    """The CPU-friendly adapter on EfficientNet-Lite0 (``lite``)."""
    return build_masa(MASA_CONFIGS["lite"], checkpoint=checkpoint)


def build_masa_r50(checkpoint: str | Path | None = None) -> MasaModel:
    """The authors' MASA-R50 (``masa_r50.pth``)."""
    return build_masa(MASA_CONFIGS["masa_r50"], checkpoint=checkpoint, warn_random_init=checkpoint is None)


def build_masa_sam_vit_b(checkpoint: str | Path | None = None, sam_checkpoint: str | Path | None = None) -> MasaModel:
    """The authors' SAM-ViT-B MASA (``sam_vitb_masa.pth``; ``sam_checkpoint`` for the encoder if the file lacks it)."""
    if checkpoint is not None:
        return load_masa(checkpoint, sam_checkpoint=sam_checkpoint)[0]
    return build_masa(MASA_CONFIGS["sam_vitb_masa"], **({"checkpoint": sam_checkpoint} if sam_checkpoint else {}))


def build_masa_sam_vit_h(checkpoint: str | Path | None = None, sam_checkpoint: str | Path | None = None) -> MasaModel:
    """The authors' SAM-ViT-H MASA (``sam_vith_masa.pth``)."""
    if checkpoint is not None:
        return load_masa(checkpoint, sam_checkpoint=sam_checkpoint)[0]
    return build_masa(MASA_CONFIGS["sam_vith_masa"], **({"checkpoint": sam_checkpoint} if sam_checkpoint else {}))


#: name -> builder, as segment-anything's ``sam_model_registry``.
masa_model_registry = {
    "raw": build_masa_raw,
    "lite": build_masa_lite,
    "masa_r50": build_masa_r50,
    "sam_vitb_masa": build_masa_sam_vit_b,
    "sam_vith_masa": build_masa_sam_vit_h,
}
