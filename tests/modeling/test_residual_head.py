"""The residual head: equals the raw baseline at initialisation; the shipped default loads and is the default."""

from __future__ import annotations

import math

import numpy as np
import torch

from masa.modeling.baseline import RawRoIFeatures
from masa.modeling.build import DEFAULT_MODEL, SHIPPED_WEIGHTS, build_predictor, shipped_weights
from masa.modeling.config import MasaConfig, get_config
from masa.modeling.residual_head import ResidualRoIHead
from masa.pipeline import PipelineConfig
from masa.structures import Detections

CHANNELS, STRIDES = (8, 16), (4, 8)


def _features(seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(2, 8, 32, 32, generator=g), torch.rand(2, 16, 16, 16, generator=g)]


ROIS = torch.tensor([[0, 4.0, 4.0, 60.0, 90.0], [1, 10.0, 20.0, 40.0, 50.0], [0, 0.0, 0.0, 127.0, 127.0]])


def test_initial_embedding_equals_the_raw_baseline() -> None:
    for hidden in (0, 32):
        head = ResidualRoIHead(in_channels=CHANNELS, in_strides=STRIDES, hidden=hidden, scale_init=6.0, sampling_ratio=0)
        raw = RawRoIFeatures(in_channels=CHANNELS, in_strides=STRIDES, scale=6.0)
        torch.testing.assert_close(head.embed(_features(), ROIS), raw.embed(_features(), ROIS))


def test_embedding_norm_is_the_learned_scale_and_gradients_reach_every_parameter() -> None:
    head = ResidualRoIHead(in_channels=CHANNELS, in_strides=STRIDES, hidden=16, grid=2)
    with torch.no_grad():
        head.log_scale.fill_(math.log(3.0))
        head.fc2.weight.normal_()
    emb = head.embed(_features(), ROIS)
    assert emb.shape == (3, sum(CHANNELS))
    torch.testing.assert_close(emb.norm(dim=1), torch.full((3,), 3.0))
    emb.sum().backward()
    assert all(p.grad is not None for p in head.parameters())


def test_bad_rois_are_refused() -> None:
    head = ResidualRoIHead(in_channels=CHANNELS, in_strides=STRIDES)
    try:
        head.embed(_features(), ROIS[:, 1:])
    except ValueError as exc:
        assert "rois [K, 5]" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


def test_config_round_trip() -> None:
    config = get_config("masa_lite0")
    assert config.residual_head is not None and config.adapter is None
    assert MasaConfig.from_dict(config.to_dict()) == config


def test_shipped_default_is_packaged_and_is_the_default() -> None:
    assert DEFAULT_MODEL in SHIPPED_WEIGHTS and PipelineConfig().model == DEFAULT_MODEL
    path = shipped_weights(DEFAULT_MODEL)
    assert path.stat().st_size < 8_000_000
    predictor = build_predictor(DEFAULT_MODEL)
    assert predictor.config.residual_head is not None
    image = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    dets = predictor.predict(image, Detections(boxes=[[10, 10, 60, 100], [70, 20, 150, 110]], scores=[0.9, 0.8]))
    assert dets.embeddings.shape == (2, predictor.embedding_dim) and torch.isfinite(dets.embeddings).all()
