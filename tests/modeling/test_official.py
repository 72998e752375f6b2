"""Official checkpoint key maps: a hand-written copy of the authors' key list (notes §5) loads strictly."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from masa.modeling.adapter import MasaAdapter
from masa.modeling.build import build_adapter
from masa.modeling.checkpoint import CheckpointError, load_state_dict_file
from masa.modeling.config import MASA_CONFIGS, get_config
from masa.modeling.official import (
    OFFICIAL_CHECKPOINT_FILES,
    adapter_to_official_key,
    load_official_adapter,
    official_to_adapter_key,
    split_official_state_dict,
)

# Backbone outputs (channels, strides) of the authors' variants.
_BACKBONE_MAPS = {
    "masa_r50": ((256, 512, 1024, 2048), (4, 8, 16, 32)),
    "sam_vitb_masa": ((768,) * 4, (16,) * 4),
    "gdino_masa": ((256, 512, 1024), (8, 16, 32)),
}


def _bn(prefix: str, channels: int) -> dict[str, tuple[int, ...]]:
    keys = {f"{prefix}.{n}": (channels,) for n in ("weight", "bias", "running_mean", "running_var")}
    keys[f"{prefix}.num_batches_tracked"] = ()
    return keys


def _dcn_blocks(offset_channels: int, attention: bool) -> dict[str, tuple[int, ...]]:
    keys: dict[str, tuple[int, ...]] = {}
    for b in range(3):
        p = f"masa_adapter.1.dyhead_blocks.{b}"
        keys[f"{p}.spatial_conv_offset.weight"] = (offset_channels, 256, 3, 3)
        keys[f"{p}.spatial_conv_offset.bias"] = (offset_channels,)
        for branch in ("high", "mid", "low"):
            keys[f"{p}.spatial_conv_{branch}.conv.weight"] = (256, 256, 3, 3)
            keys[f"{p}.spatial_conv_{branch}.norm.weight"] = (256,)
            keys[f"{p}.spatial_conv_{branch}.norm.bias"] = (256,)
        if attention:
            keys[f"{p}.scale_attn_module.1.weight"] = (1, 256, 1, 1)
            keys[f"{p}.scale_attn_module.1.bias"] = (1,)
            keys[f"{p}.task_attn_module.conv1.conv.weight"] = (64, 256, 1, 1)
            keys[f"{p}.task_attn_module.conv1.conv.bias"] = (64,)
            keys[f"{p}.task_attn_module.conv2.conv.weight"] = (1024, 64, 1, 1)
            keys[f"{p}.task_attn_module.conv2.conv.bias"] = (1024,)
    return keys


def _common_heads() -> dict[str, tuple[int, ...]]:
    keys = {
        "rpn_head.rpn_conv.weight": (256, 256, 3, 3),
        "rpn_head.rpn_conv.bias": (256,),
        "rpn_head.rpn_cls.weight": (3, 256, 1, 1),
        "rpn_head.rpn_cls.bias": (3,),
        "rpn_head.rpn_reg.weight": (12, 256, 1, 1),
        "rpn_head.rpn_reg.bias": (12,),
        "roi_head.bbox_head.fc_cls.weight": (2, 1024),
        "roi_head.bbox_head.fc_cls.bias": (2,),
        "roi_head.bbox_head.fc_reg.weight": (4, 1024),
        "roi_head.bbox_head.fc_reg.bias": (4,),
        "track_head.embed_head.fcs.0.weight": (1024, 12544),
        "track_head.embed_head.fcs.0.bias": (1024,),
        "track_head.embed_head.fc_embed.weight": (256, 1024),
        "track_head.embed_head.fc_embed.bias": (256,),
    }
    for i in range(4):
        keys[f"track_head.embed_head.convs.{i}.conv.weight"] = (256, 256, 3, 3)
        keys[f"track_head.embed_head.convs.{i}.gn.weight"] = (256,)
        keys[f"track_head.embed_head.convs.{i}.gn.bias"] = (256,)
    return keys


def sam_vitb_keys() -> dict[str, tuple[int, ...]]:
    """``sam_vitb_masa.pth`` adapter keys: SimpleFPN (C=768) + DyHead + Shared2FC."""
    c = 768
    keys = {
        "masa_adapter.0.fpn1.0.weight": (c, c, 2, 2),
        "masa_adapter.0.fpn1.0.bias": (c,),
        "masa_adapter.0.fpn1.1.ln.weight": (c,),
        "masa_adapter.0.fpn1.1.ln.bias": (c,),
        "masa_adapter.0.fpn1.3.weight": (c, c, 2, 2),
        "masa_adapter.0.fpn1.3.bias": (c,),
        "masa_adapter.0.fpn2.0.weight": (c, c, 2, 2),
        "masa_adapter.0.fpn2.0.bias": (c,),
        "roi_head.bbox_head.shared_fcs.0.weight": (1024, 12544),
        "roi_head.bbox_head.shared_fcs.0.bias": (1024,),
        "roi_head.bbox_head.shared_fcs.1.weight": (1024, 1024),
        "roi_head.bbox_head.shared_fcs.1.bias": (1024,),
    }
    for i in range(4):
        keys[f"masa_adapter.0.lateral_convs.{i}.conv.weight"] = (256, c, 1, 1)
        keys[f"masa_adapter.0.lateral_convs.{i}.conv.bias"] = (256,)
        keys[f"masa_adapter.0.fpn_convs.{i}.conv.weight"] = (256, 256, 3, 3)
        keys[f"masa_adapter.0.fpn_convs.{i}.conv.bias"] = (256,)
    return keys | _dcn_blocks(27, attention=True) | _common_heads()


def r50_keys() -> dict[str, tuple[int, ...]]:
    """``masa_r50.pth`` adapter keys: FPN (4 inputs, BN) + DeformFusion + Shared4Conv1FC."""
    keys: dict[str, tuple[int, ...]] = {
        "roi_head.bbox_head.shared_fcs.0.weight": (1024, 12544),
        "roi_head.bbox_head.shared_fcs.0.bias": (1024,),
    }
    for i, c in enumerate((256, 512, 1024, 2048)):
        keys[f"masa_adapter.0.lateral_convs.{i}.conv.weight"] = (256, c, 1, 1)
        keys |= _bn(f"masa_adapter.0.lateral_convs.{i}.bn", 256)
        keys[f"masa_adapter.0.fpn_convs.{i}.conv.weight"] = (256, 256, 3, 3)
        keys |= _bn(f"masa_adapter.0.fpn_convs.{i}.bn", 256)
        keys[f"roi_head.bbox_head.shared_convs.{i}.conv.weight"] = (256, 256, 3, 3)
        keys |= _bn(f"roi_head.bbox_head.shared_convs.{i}.bn", 256)
    return keys | _dcn_blocks(81, attention=False) | _common_heads()


def _random_state(keys: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """A distinct value per key (cheap to make at official sizes), so misplaced tensors show up."""
    state = {}
    for i, (key, shape) in enumerate(sorted(keys.items())):
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100 + i, dtype=torch.int64)
        else:
            state[key] = torch.full(shape, float(i) + 0.5)
    return state


_ADAPTERS: dict[tuple[str, bool], MasaAdapter] = {}


def _adapter(variant: str, with_detection_heads: bool = True) -> MasaAdapter:
    """Official-size adapters are slow to initialise: build each once per module."""
    key = (variant, with_detection_heads)
    if key not in _ADAPTERS:
        config = MASA_CONFIGS[variant].adapter
        if not with_detection_heads:
            config = replace(config, detection=None)
        channels, strides = _BACKBONE_MAPS[variant]
        _ADAPTERS[key] = build_adapter(config, in_channels=channels, in_strides=strides)
    return _ADAPTERS[key]


@pytest.fixture(scope="module", autouse=True)
def _release_adapters():
    yield
    _ADAPTERS.clear()


@pytest.mark.parametrize(
    ("variant", "keys", "extra"),
    [
        ("sam_vitb_masa", sam_vitb_keys, {"detector.backbone.patch_embed.proj.weight": (768, 3, 16, 16)}),
        ("masa_r50", r50_keys, {"backbone.conv1.weight": (64, 3, 7, 7), "backbone.layer1.0.bn1.weight": (64,)}),
    ],
)
def test_official_checkpoint_loads_strictly(tmp_path, variant, keys, extra):
    official = _random_state(keys())
    full = official | _random_state(extra) | {"data_preprocessor.something": torch.zeros(1)}
    path = tmp_path / f"{variant}.pth"
    torch.save({"state_dict": full, "meta": {"epoch": 12, "mmengine_version": "0.10.3"}}, path)

    adapter = _adapter(variant)
    parts = load_official_adapter(adapter, load_state_dict_file(path))

    ours = adapter.state_dict()
    assert len(ours) == len(official)
    for key, value in official.items():
        assert torch.equal(ours[official_to_adapter_key(key)], value), key
    assert parts.other.keys() == {"data_preprocessor.something"}
    if variant == "masa_r50":
        assert set(parts.backbone) == {"conv1.weight", "layer1.0.bn1.weight"} and not parts.detector
    else:
        assert set(parts.detector) == {"backbone.patch_embed.proj.weight"}
        assert not parts.backbone


def test_key_map_round_trip_and_split():
    for key in sam_vitb_keys():
        assert adapter_to_official_key(official_to_adapter_key(key)) == key
    assert official_to_adapter_key("detector.backbone.pos_embed") is None
    parts = split_official_state_dict({"masa_adapter.1.dyhead_blocks.0.spatial_conv_offset.bias": torch.zeros(81)})
    assert set(parts.adapter) == {"fusion.dyhead_blocks.0.spatial_conv_offset.bias"}
    with pytest.raises(KeyError):
        adapter_to_official_key("backbone.conv1.weight")


def test_missing_unexpected_and_mismatched_keys_are_listed():
    official = _random_state(r50_keys())
    adapter = _adapter("masa_r50")
    broken = dict(official)
    del broken["track_head.embed_head.fc_embed.bias"]
    broken["masa_adapter.1.dyhead_blocks.3.spatial_conv_offset.bias"] = torch.zeros(81)
    broken["rpn_head.rpn_cls.weight"] = torch.zeros(6, 256, 1, 1)
    with pytest.raises(ValueError) as info:
        load_official_adapter(adapter, broken)
    message = str(info.value)
    assert "track_head.embed_head.fc_embed.bias" in message
    assert "masa_adapter.1.dyhead_blocks.3.spatial_conv_offset.bias" in message
    assert "rpn_head.rpn_cls.weight" in message
    with pytest.raises(ValueError, match="missing"):  # a SAM checkpoint into an R50 adapter
        load_official_adapter(adapter, _random_state(sam_vitb_keys()))


def test_adapter_without_detection_heads_skips_them():
    adapter = _adapter("sam_vitb_masa", with_detection_heads=False)
    official = _random_state(sam_vitb_keys())
    load_official_adapter(adapter, official)
    assert torch.equal(adapter.track_head.fc_embed.weight, official["track_head.embed_head.fc_embed.weight"])


def test_variants_and_unsafe_files(tmp_path):
    assert set(OFFICIAL_CHECKPOINT_FILES) == {"masa_r50", "sam_vitb_masa", "sam_vith_masa", "detic_masa", "gdino_masa"}
    assert set(OFFICIAL_CHECKPOINT_FILES) <= set(MASA_CONFIGS)
    for name in OFFICIAL_CHECKPOINT_FILES:  # the mmcv flat-read quirk: on for the authors' weights only
        assert MASA_CONFIGS[name].adapter.fusion.official_flat_read
    gdino = _adapter("gdino_masa")
    assert gdino.roi_strides == (8, 16, 32) and gdino.rpn_head.anchor_strides == (8, 16, 32, 64, 128)
    assert gdino.pyramid.strides == (8, 16, 32, 64, 128)
    with pytest.raises(ValueError, match="unknown"):
        get_config("masa_swin_t")
    path = tmp_path / "unsafe.pth"
    torch.save({"state_dict": {}, "meta": {"obj": _Opaque()}}, path)
    with pytest.raises(CheckpointError, match="refused for safety"):
        load_state_dict_file(path)
    with pytest.raises(FileNotFoundError):
        load_state_dict_file(tmp_path / "absent.pth")


class _Opaque:
    """An arbitrary Python object: refused by torch.load(weights_only=True)."""
