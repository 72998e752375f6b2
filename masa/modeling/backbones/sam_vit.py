"""SAM's ViT image encoder (official ``segment_anything`` modules) as a frozen multi-level backbone.

MASA's SAM variants (``configs/masa-sam/sam-vit{b,h}.py``) tap the outputs of the four
global-attention blocks of the encoder (ViT-B blocks 2, 5, 8, 11; ViT-L 5, 11, 17, 23; ViT-H 7, 15,
23, 31), each a ``(B, C, 64, 64)`` map at stride 16 for the padded 1024 x 1024 input; SAM's own
neck is *not* applied. The adapter's SimpleFPN turns the four maps into strides 4, 8, 16, 32.

Weights come from the user: the original SAM checkpoints (``sam_vit_b_01ec64.pth`` ..., a flat
state dict of the whole ``Sam`` model, encoder keys ``image_encoder.*``) or the mmdet-converted
ones (``sam_vit_b_01ec64_mmdet.pth``, encoder keys ``backbone.*``, possibly under
``'state_dict'``); see :func:`load_sam_checkpoint`. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from torch import Tensor, nn

from masa.modeling.backbones.base import Backbone

__all__ = [
    "SamViTConfig",
    "SAM_VIT_CONFIGS",
    "SAM_PIXEL_MEAN",
    "SAM_PIXEL_STD",
    "SamViTBackbone",
    "SamCheckpointReport",
    "build_sam_vit_backbone",
    "load_sam_checkpoint",
]

SAM_PIXEL_MEAN = (123.675, 116.28, 103.53)
SAM_PIXEL_STD = (58.395, 57.12, 57.375)

# Encoder prefixes seen in SAM checkpoints, tried in this order: original SAM, mmdet-converted
# SAM (SamMasa names the encoder ``backbone``), a full MASA-SAM checkpoint, a bare encoder.
_ENCODER_PREFIXES = ("image_encoder.", "backbone.", "detector.backbone.", "")


@dataclass(frozen=True)
class SamViTConfig:
    """Hyper-parameters of ``segment_anything.modeling.ImageEncoderViT``.

    The defaults are SAM ViT-B (``segment_anything.build_sam._build_sam``); ``taps`` defaults to
    ``global_attn_indexes``.
    """

    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    global_attn_indexes: tuple[int, ...] = (2, 5, 8, 11)
    img_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    out_chans: int = 256
    mlp_ratio: float = 4.0
    taps: tuple[int, ...] | None = None

    @property
    def tap_indexes(self) -> tuple[int, ...]:
        return tuple(self.taps if self.taps is not None else self.global_attn_indexes)


SAM_VIT_CONFIGS: dict[str, SamViTConfig] = {
    "vit_b": SamViTConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamViTConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamViTConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


def _image_encoder_class():
    try:
        from segment_anything.modeling import ImageEncoderViT
    except ImportError as error:
        raise ImportError(
            "SAM ViT backbones reuse the official modules of the pip package 'segment-anything' "
            "(pip install segment-anything, or the project's [sam] extra)"
        ) from error
    return ImageEncoderViT


class SamViTBackbone(Backbone):
    """Frozen SAM ViT encoder returning its global-attention block outputs.

    ``forward(images)``: ``images`` ``float32[B, 3, S, S]`` RGB in [0, 255], ``S = img_size``
    (1024; resize the long side to 1024 and pad bottom/right, ``PreprocessConfig(pad_to=1024)``)
    -> ``len(taps)`` maps ``(B, embed_dim, S/16, S/16)`` (stride 16 each), taken after the tapped
    blocks, before SAM's neck. ``image_embedding(images)`` is the official encoder output (with
    the neck), ``(B, out_chans, S/16, S/16)``.
    """

    def __init__(self, config: SamViTConfig = SamViTConfig(), frozen: bool = True) -> None:
        taps = config.tap_indexes
        if not taps or any(not 0 <= t < config.depth for t in taps) or list(taps) != sorted(set(taps)):
            raise ValueError(f"SamViTBackbone: taps must be increasing block indexes in [0, {config.depth}), got {taps}")
        stride = config.patch_size
        super().__init__([config.embed_dim] * len(taps), [stride] * len(taps), SAM_PIXEL_MEAN, SAM_PIXEL_STD, frozen=frozen)
        self.config = config
        self.taps = taps
        # Same arguments as segment_anything.build_sam._build_sam.
        self.encoder = _image_encoder_class()(
            depth=config.depth,
            embed_dim=config.embed_dim,
            img_size=config.img_size,
            mlp_ratio=config.mlp_ratio,
            norm_layer=partial(nn.LayerNorm, eps=1e-6),
            num_heads=config.num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=list(config.global_attn_indexes),
            window_size=config.window_size,
            out_chans=config.out_chans,
        )
        if frozen:
            self.freeze()

    def _check(self, images: Tensor) -> None:
        size = self.config.img_size
        if images.ndim != 4 or images.shape[1] != 3 or tuple(images.shape[-2:]) != (size, size):
            raise ValueError(
                f"SamViTBackbone: expected images (B, 3, {size}, {size}) (resize the long side to {size} "
                f"and pad bottom/right, e.g. PreprocessConfig(max_size=({size}, {size}), pad_to={size})), "
                f"got {list(images.shape)}"
            )

    def _tokens(self, images: Tensor) -> Tensor:
        self._check(images)
        x = self.encoder.patch_embed(self.normalize(images))  # (B, S/16, S/16, C)
        if self.encoder.pos_embed is not None:
            x = x + self.encoder.pos_embed
        return x

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self._tokens(images)
        outputs = []
        for index, block in enumerate(self.encoder.blocks[: self.taps[-1] + 1]):
            x = block(x)  # (B, h, w, C)
            if index in self.taps:
                outputs.append(x.permute(0, 3, 1, 2))  # (B, C, h, w)
        return outputs

    def forward_with_embedding(self, images: Tensor) -> tuple[list[Tensor], Tensor]:
        """The tapped maps of :meth:`forward` and SAM's image embedding, from one pass.

        For a unified model that feeds the taps to the adapter and the embedding to SAM's mask
        decoder. Returns ``(taps, embedding)``, ``embedding`` ``(B, out_chans, S/16, S/16)``.
        """
        x = self._tokens(images)
        outputs = []
        for index, block in enumerate(self.encoder.blocks):
            x = block(x)  # (B, h, w, C)
            if index in self.taps:
                outputs.append(x.permute(0, 3, 1, 2))  # (B, C, h, w)
        return outputs, self.encoder.neck(x.permute(0, 3, 1, 2))

    def image_embedding(self, images: Tensor) -> Tensor:
        """SAM's image embedding ``(B, out_chans, S/16, S/16)`` (all blocks + neck), as ``Sam.image_encoder``."""
        return self.forward_with_embedding(images)[1]


@dataclass(frozen=True)
class SamCheckpointReport:
    """What :func:`load_sam_checkpoint` did: the encoder prefix used and the ignored entries."""

    prefix: str
    loaded: int
    ignored_components: dict[str, int]


def _encoder_prefix(state: Mapping[str, Tensor]) -> str:
    for prefix in _ENCODER_PREFIXES:
        if f"{prefix}patch_embed.proj.weight" in state:
            return prefix
    raise ValueError(
        "not a SAM checkpoint: no 'patch_embed.proj.weight' under any of the encoder prefixes "
        f"{[p or '<none>' for p in _ENCODER_PREFIXES]} (first keys: {list(state)[:5]})"
    )


def load_sam_checkpoint(backbone: SamViTBackbone, path: str | Path | Mapping[str, Tensor]) -> SamCheckpointReport:
    """Load the image-encoder weights of a SAM checkpoint into ``backbone`` (strict).

    Accepts the original SAM files (``image_encoder.*``, ``prompt_encoder.*``, ``mask_decoder.*``)
    and mmdet-converted ones (``backbone.*``, optionally nested under ``'state_dict'``), read with
    ``torch.load(map_location="cpu", weights_only=True)``. Every encoder key must be present with
    the right shape and no unexpected encoder key may remain; the other components (prompt
    encoder, mask decoder, ...) are ignored and counted in the returned report.
    """
    from masa.modeling.checkpoint import load_state_dict_file, load_strict, strip_prefix

    state = load_state_dict_file(path) if isinstance(path, (str, Path)) else dict(path)
    prefix = _encoder_prefix(state)
    if prefix:
        encoder_state = strip_prefix(state, prefix)
        others = [k for k in state if not k.startswith(prefix)]
    else:
        expected = backbone.encoder.state_dict().keys()
        top = {k.split(".")[0] for k in expected}
        encoder_state = {k: v for k, v in state.items() if k.split(".")[0] in top}
        others = [k for k in state if k not in encoder_state]
    ignored: dict[str, int] = {}
    for key in others:
        component = key.split(".")[0]
        ignored[component] = ignored.get(component, 0) + 1
    name = Path(path).name if isinstance(path, (str, Path)) else "state dict"
    load_strict(backbone.encoder, encoder_state, f"SAM image encoder ({name}, prefix {prefix or '<none>'!r})")
    return SamCheckpointReport(prefix=prefix, loaded=len(encoder_state), ignored_components=ignored)


def build_sam_vit_backbone(
    variant: str | SamViTConfig = "vit_b",
    checkpoint: str | Path | None = None,
) -> SamViTBackbone:
    """Frozen SAM ViT backbone: ``variant`` in ``"vit_b" | "vit_l" | "vit_h"`` or a :class:`SamViTConfig`.

    Without ``checkpoint`` the weights are random (SAM weights are not on any package registry;
    pass ``sam_vit_b_01ec64.pth`` or its mmdet conversion).
    """
    if isinstance(variant, SamViTConfig):
        config = variant
    elif variant in SAM_VIT_CONFIGS:
        config = SAM_VIT_CONFIGS[variant]
    else:
        raise ValueError(f"unknown SAM variant {variant!r}; expected one of {sorted(SAM_VIT_CONFIGS)} or a SamViTConfig")
    backbone = SamViTBackbone(config)
    if checkpoint is not None:
        load_sam_checkpoint(backbone, checkpoint)
    return backbone.freeze()
