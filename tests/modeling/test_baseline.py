"""The off-the-shelf baseline (raw RoI features of a frozen backbone) through the one predictor."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from masa.modeling.adapter import MasaModel
from masa.modeling.backbones.base import Backbone
from masa.modeling.baseline import RawRoIFeatures
from masa.modeling.build import build_masa, build_predictor
from masa.modeling.config import BackboneConfig, RawFeaturesConfig, get_config
from masa.modeling.predictor import MasaPredictor
from masa.modeling.preprocess import PreprocessConfig

DEFAULT_SCALE = get_config("raw_efficientnet_lite0").raw_features.scale


@pytest.fixture(scope="module")
def embedder() -> MasaPredictor:
    return build_predictor("raw_efficientnet_lite0")


def random_frame(height: int = 240, width: int = 320, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


BOXES = torch.tensor([[10, 20, 90, 200], [100, 50, 180, 230], [200, 0, 319, 120], [-30, -10, 40, 60]], dtype=torch.float32)


def test_embed_shape_dtype_norm(embedder: MasaPredictor) -> None:
    assert DEFAULT_SCALE == 6.0
    assert embedder.embedding_dim == 24 + 40 + 112 + 320  # taps at strides 4, 8, 16, 32
    assert embedder.model.backbone.strides == (4, 8, 16, 32)
    out = embedder.embed(random_frame(), BOXES)
    assert out.shape == (4, embedder.embedding_dim) and out.dtype == torch.float32 and out.device.type == "cpu"
    assert torch.allclose(out.norm(dim=1), torch.full((4,), DEFAULT_SCALE), atol=1e-4)


def test_embed_empty_and_degenerate_boxes(embedder: MasaPredictor) -> None:
    empty = embedder.embed(random_frame(), torch.zeros(0, 4))
    assert empty.shape == (0, embedder.embedding_dim) and empty.dtype == torch.float32
    assert embedder.embed(random_frame(), np.zeros((0, 4), dtype=np.float32)).shape == (0, embedder.embedding_dim)
    # zero-area, inverted and fully outside boxes still give finite vectors of norm ``scale``
    odd = np.array([[50, 50, 50, 50], [120, 90, 80, 40], [400, 300, 500, 400]], dtype=np.float32)
    out = embedder.embed(random_frame(), odd)
    assert torch.isfinite(out).all()
    assert torch.allclose(out.norm(dim=1), torch.full((3,), DEFAULT_SCALE), atol=1e-4)


def test_embed_is_deterministic_and_row_independent(embedder: MasaPredictor) -> None:
    frame = random_frame(seed=3)
    first, second = embedder.embed(frame, BOXES), embedder.embed(frame, BOXES)
    assert torch.equal(first, second)
    reversed_rows = embedder.embed(frame, BOXES.flip(0))
    assert torch.allclose(reversed_rows.flip(0), first, atol=1e-5)
    read_only = frame.copy()
    read_only.flags.writeable = False
    assert torch.equal(embedder.embed(read_only, BOXES), first)


def test_scale_and_validation() -> None:
    config = replace(
        get_config("raw_efficientnet_lite0"),
        backbone=BackboneConfig("efficientnet_lite0", (8, 16, 32)),
        raw_features=RawFeaturesConfig(scale=2.5),
    )
    small = MasaPredictor(build_masa(config), config)
    assert small.embedding_dim == 40 + 112 + 320
    out = small.embed(random_frame(), BOXES[:2])
    assert torch.allclose(out.norm(dim=1), torch.full((2,), 2.5), atol=1e-4)
    with pytest.raises(ValueError, match="scale"):
        RawFeaturesConfig(scale=0.0)
    with pytest.raises(ValueError, match="unknown MASA model"):
        build_predictor("vgg16")
    with pytest.raises(ValueError, match="RGB image"):
        small.embed(np.zeros((10, 10), dtype=np.uint8), BOXES)


class IdentityBackbone(Backbone):
    """Returns the raw RGB input as a single stride-1 'feature map' (no normalisation)."""

    def __init__(self) -> None:
        super().__init__(out_channels=(3,), strides=(1,), pixel_mean=(0.0, 0.0, 0.0), pixel_std=(1.0, 1.0, 1.0))

    def forward(self, images: Tensor) -> list[Tensor]:
        return [self.normalize(images)]


def _identity_predictor(preprocess: PreprocessConfig) -> MasaPredictor:
    config = replace(get_config("raw_efficientnet_lite0"), preprocess=preprocess, raw_features=RawFeaturesConfig(scale=1.0))
    head = RawRoIFeatures(in_channels=(3,), in_strides=(1,), scale=1.0)
    return MasaPredictor(MasaModel(IdentityBackbone(), head), config, channels_last=False)


def test_boxes_follow_the_preprocessing_scale() -> None:
    """A 2048x1536 frame is shrunk to 1024x768: boxes must be scaled by 0.5 to hit the same pixels."""
    frame = np.zeros((1536, 2048, 3), dtype=np.uint8)
    frame[400:1000, 1200:1600] = (0, 200, 0)  # green rectangle (original pixels)
    frame[100:300, 100:500] = (200, 0, 0)  # red rectangle
    embedder = _identity_predictor(get_config("raw_efficientnet_lite0").preprocess)
    boxes = np.array([[1250, 450, 1550, 950], [150, 120, 450, 280]], dtype=np.float32)
    out = embedder.embed(frame, boxes)
    assert torch.allclose(out, torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]), atol=1e-3)
    # a frame that already fits is not upscaled: same answer at the original size
    small = frame[::4, ::4].copy()
    out_small = embedder.embed(small, boxes / 4)
    assert torch.allclose(out_small, out, atol=1e-3)
    assert embedder._pre.scale == 1.0 and embedder._pre.input_size == small.shape[:2]


def test_upscale_option_resizes_small_frames() -> None:
    embedder = _identity_predictor(PreprocessConfig(max_size=(1024, 1024), upscale=True))
    embedder.set_image(np.zeros((480, 640, 3), dtype=np.uint8))
    assert embedder._pre.scale == pytest.approx(1.6) and embedder._pre.input_size == (768, 1024)


@pytest.mark.data
def test_same_person_is_more_similar_across_frames(tud_campus: Path, embedder: MasaPredictor) -> None:
    """TUD-Campus frames 1 and 2 (gt boxes): same-id cosine > different-id cosine."""
    from PIL import Image

    gt = np.loadtxt(tud_campus / "gt" / "gt.txt", delimiter=",")
    embeddings, ids = [], []
    for frame_id in (1, 2):
        rows = gt[gt[:, 0] == frame_id]
        boxes = rows[:, 2:6].copy()
        boxes[:, 2:] += boxes[:, :2]
        image = np.asarray(Image.open(tud_campus / "img1" / f"{frame_id:06d}.jpg").convert("RGB"))
        embeddings.append(embedder.embed(image, torch.tensor(boxes, dtype=torch.float32)) / DEFAULT_SCALE)
        ids.append(rows[:, 1].astype(int))
    cosine = (embeddings[0] @ embeddings[1].T).numpy()
    same = ids[0][:, None] == ids[1][None, :]
    assert same.any() and (~same).any()
    assert cosine[same].mean() > cosine[~same].mean() + 0.05
    # every person of frame 2 is closest to themselves in frame 1
    for j in np.where(same.any(axis=0))[0]:
        assert ids[0][cosine[:, j].argmax()] == ids[1][j]
