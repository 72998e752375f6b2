"""Builders and our safetensors checkpoints: config round trip, strict loading, official variants."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from masa.modeling.build import (
    ADAPTER_CONFIGS,
    AdapterConfig,
    build_embedder,
    build_masa_model,
    load_masa_checkpoint,
    resolve_device,
    save_masa_checkpoint,
)

SMALL = replace(ADAPTER_CONFIGS["lite"], channels=32, fc_channels=64, embed_dim=16)


def test_config_round_trip():
    for config in [SMALL, *ADAPTER_CONFIGS.values()]:
        assert AdapterConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown fields"):
        AdapterConfig.from_dict({"bogus": 1})
    with pytest.raises(ValueError, match="backbone"):
        AdapterConfig(backbone="vgg")


def test_checkpoint_round_trip_gives_identical_embeddings(tmp_path):
    model = build_masa_model(SMALL)
    path = save_masa_checkpoint(model, SMALL, tmp_path / "m.safetensors")
    loaded, config = load_masa_checkpoint(path)
    assert config == SMALL
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    boxes = torch.tensor([[10.0, 10.0, 60.0, 100.0], [50.0, 20.0, 150.0, 110.0]])
    first = build_embedder(model=path).embed(image, boxes)
    assert first.shape == (2, 16) and first.dtype == torch.float32
    from masa.modeling.adapter import MasaEmbedder

    direct = MasaEmbedder(model, preprocess=SMALL.preprocess).embed(image, boxes)
    assert torch.allclose(first, direct, atol=1e-5)
    assert build_embedder(model=path).embed(image, torch.zeros(0, 4)).shape == (0, 16)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_masa_checkpoint(tmp_path / "none.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="safetensors"):
        load_masa_checkpoint(bad)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(other))
    with pytest.raises(ValueError, match="not a masa adapter checkpoint"):
        load_masa_checkpoint(other)


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="--device"):
        resolve_device("tpu:banana")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
