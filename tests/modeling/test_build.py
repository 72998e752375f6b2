"""The one config, the one builder and our checkpoints: round trips, strictness, official conversion."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from masa.modeling.build import (
    build_adapter,
    build_embedder,
    build_masa,
    build_predictor,
    load_masa,
    masa_model_registry,
    resolve_device,
)
from masa.modeling.checkpoint import CheckpointError, read_masa_checkpoint, save_masa_checkpoint
from masa.modeling.config import (
    MASA_CONFIGS,
    BackboneConfig,
    MasaConfig,
    PyramidConfig,
    TrackHeadConfig,
    get_config,
)
from masa.modeling.official import adapter_to_official_key
from masa.modeling.predictor import MasaPredictor

LITE = MASA_CONFIGS["lite"]
SMALL = replace(
    LITE,
    name="small",
    adapter=replace(
        LITE.adapter,
        pyramid=PyramidConfig(channels=32),
        track_head=TrackHeadConfig(num_convs=1, fc_channels=64, embed_dim=16),
        detection=replace(LITE.adapter.detection, fc_channels=64),
    ),
)
IMAGE = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
BOXES = torch.tensor([[10.0, 10.0, 60.0, 100.0], [50.0, 20.0, 150.0, 110.0]])


def test_config_round_trip_and_strictness():
    for config in [SMALL, *MASA_CONFIGS.values()]:
        assert MasaConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    with pytest.raises(ValueError, match=r"unknown keys \['bogus'\]"):
        MasaConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match=r"MasaConfig.adapter.fusion: unknown keys \['blocks'\]"):
        MasaConfig.from_dict({"adapter": {"fusion": {"blocks": 3}}})
    with pytest.raises(ValueError, match="BackboneConfig.name"):
        BackboneConfig(name="vgg")
    with pytest.raises(ValueError, match="exactly one"):
        MasaConfig(adapter=None)
    with pytest.raises(ValueError, match="unknown MASA model"):
        get_config("nonsense")
    assert get_config("efficientnet_lite2") is MASA_CONFIGS["raw_efficientnet_lite2"]


def test_paper_resnet50_is_the_authors_r50_architecture():
    ours, theirs = MASA_CONFIGS["paper_resnet50"], MASA_CONFIGS["masa_r50"]
    assert ours.adapter.detection.box_head == theirs.adapter.detection.box_head == "shared4conv1fc"
    assert ours.adapter.detection.rpn_loss_bbox == theirs.adapter.detection.rpn_loss_bbox == "l1"
    assert not ours.adapter.fusion.official_flat_read and theirs.adapter.fusion.official_flat_read
    assert replace(ours.adapter, fusion=theirs.adapter.fusion) == theirs.adapter
    maps = {"in_channels": (256, 512, 1024, 2048), "in_strides": (4, 8, 16, 32)}
    a, b = build_adapter(ours.adapter, **maps).state_dict(), build_adapter(theirs.adapter, **maps).state_dict()
    assert {k: v.shape for k, v in a.items()} == {k: v.shape for k, v in b.items()}
    assert a["rpn_head.rpn_conv.weight"].shape == (256, 256, 3, 3) and "roi_head.shared_convs.3.conv.weight" in a


def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path):
    torch.manual_seed(0)
    model = build_masa(SMALL)
    path = save_masa_checkpoint(model, SMALL, tmp_path / "m.safetensors")
    config, state = read_masa_checkpoint(path)
    assert config == SMALL and all(k.startswith("adapter.") for k in state)
    loaded, config = load_masa(path)
    first = build_predictor(path).embed(IMAGE, BOXES)
    assert first.shape == (2, 16) and first.dtype == torch.float32
    direct = MasaPredictor(model, SMALL).embed(IMAGE, BOXES)
    torch.testing.assert_close(first, direct)
    assert build_embedder(model=path).embed(IMAGE, torch.zeros(0, 4)).shape == (0, 16)
    assert torch.equal(build_masa(SMALL, checkpoint=path).adapter.track_head.fc_embed.weight, model.adapter.track_head.fc_embed.weight)
    with pytest.raises(ValueError, match="not the requested"):
        build_masa(LITE, checkpoint=path)


def test_legacy_checkpoint_format_loads(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    model = build_masa(SMALL)
    legacy = {
        "backbone": "efficientnet_lite0", "backbone_strides": [8, 16, 32], "pyramid": "fpn", "pyramid_norm": "none",
        "channels": 32, "num_levels": 5, "fusion": "deform_fusion", "fusion_blocks": 1, "roi_strides": [8, 16, 32],
        "embed_dim": 16, "fc_channels": 64, "track_convs": 1, "detection_heads": True,
        "preprocess": {"max_size": [1024, 1024], "size_divisor": 32, "pad_to": None, "upscale": False},
    }  # fmt: skip
    state = {f"adapter.{k}": v.contiguous() for k, v in model.adapter.state_dict().items()}
    path = tmp_path / "old.safetensors"
    save_file(state, str(path), metadata={"format": "masa-adapter/1", "masa_config": json.dumps(legacy)})
    loaded, config = load_masa(path)
    assert replace(config, name="small") == SMALL
    torch.testing.assert_close(MasaPredictor(loaded, config).embed(IMAGE, BOXES), MasaPredictor(model, SMALL).embed(IMAGE, BOXES))


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_masa(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_masa(bad)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other))
    with pytest.raises(CheckpointError, match="not a masa checkpoint"):
        load_masa(other)
    newer = tmp_path / "newer.safetensors"
    save_file({"x": torch.zeros(1)}, str(newer), metadata={"format": "masa/2", "masa_config": json.dumps({"future": 1})})
    with pytest.raises(CheckpointError, match=r"unknown keys \['future'\]"):
        load_masa(newer)
    plain = tmp_path / "plain.pth"
    torch.save({"conv.weight": torch.zeros(1)}, plain)
    with pytest.raises(CheckpointError, match="not an official MASA checkpoint"):
        load_masa(plain)


def test_official_pth_converted_to_safetensors_gives_identical_outputs(tmp_path):
    """An authors'-format masa_r50.pth (random weights, their key names) -> ours -> same embeddings."""
    torch.manual_seed(0)
    reference = build_masa(MASA_CONFIGS["masa_r50"], warn_random_init=False)
    official = {adapter_to_official_key(k): v for k, v in reference.adapter.state_dict().items()}
    official |= {f"backbone.{k}": v for k, v in reference.backbone.state_dict().items()}
    pth = tmp_path / "masa_r50.pth"
    torch.save({"state_dict": official, "meta": {"epoch": 12}}, pth)
    model, config = load_masa(pth)
    assert config.name == "masa_r50" and config.adapter.fusion.official_flat_read
    converted = save_masa_checkpoint(model, config, tmp_path / "masa_r50.safetensors", include_backbone=True)
    again, config2 = load_masa(converted)
    assert config2 == config
    images = torch.rand(1, 3, 96, 128) * 255
    rois = torch.tensor([[0.0, 8.0, 8.0, 60.0, 90.0], [0.0, 40.0, 20.0, 120.0, 70.0]])
    outputs = []
    for m in (reference, model, again):
        m.eval()
        with torch.no_grad():
            outputs.append(m.adapter.embed(m.forward_features(images), rois))
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[1], outputs[2])


def test_named_builders_and_devices():
    assert set(masa_model_registry) >= {"raw", "lite", "masa_r50", "sam_vitb_masa", "sam_vith_masa"}
    raw = masa_model_registry["raw"]()
    assert raw.adapter.embedding_dim == 24 + 40 + 112 + 320
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="--device"):
        resolve_device("tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="Swin-B"):
        build_masa(MASA_CONFIGS["gdino_masa"])
