"""MasaPredictor: one preprocessing and backbone pass per frame, embeddings for given boxes, own detections."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_adapter import EMBED, _sam_like_model, _swin_like_model

from masa.modeling.config import get_config
from masa.modeling.predictor import MasaPredictor
from masa.modeling.preprocess import PreprocessConfig, preprocess_image
from masa.ops.roi import boxes_to_rois
from masa.structures import Detections


def _config(preprocess: PreprocessConfig):
    return replace(get_config("lite"), preprocess=preprocess)


def test_embeddings_follow_the_preprocessing_scale():
    model = _swin_like_model()
    predictor = MasaPredictor(model, _config(PreprocessConfig(max_size=(96, 64), size_divisor=32)))
    assert predictor.embedding_dim == EMBED and predictor.has_detector
    image = np.random.default_rng(0).integers(0, 256, size=(50, 100, 3), dtype=np.uint8)  # resized by 0.96 to 48x96
    boxes = torch.tensor([[0.0, 0.0, 40.0, 30.0], [50.0, 10.0, 99.0, 49.0], [10.0, 5.0, 12.0, 9.0]])
    emb = predictor.embed(image, boxes)
    assert emb.shape == (3, EMBED) and emb.dtype == torch.float32 and emb.device.type == "cpu"
    assert predictor.embed(image, torch.zeros(0, 4)).shape == (0, EMBED)
    # the same as running the pieces by hand with boxes scaled to network pixels
    pre = preprocess_image(image, predictor.config.preprocess, pad_value=model.backbone.pixel_mean.flatten())
    assert pre.scale == pytest.approx(0.96)
    with torch.no_grad():
        expected = model.adapter.embed(model.forward_features(pre.images), boxes_to_rois(boxes * pre.scale))
    torch.testing.assert_close(emb, expected)


def test_one_backbone_pass_serves_many_box_sets():
    predictor = MasaPredictor(_swin_like_model(), _config(PreprocessConfig(max_size=(96, 64), size_divisor=32)))
    image = np.random.default_rng(2).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    boxes = torch.tensor([[0.0, 0.0, 40.0, 30.0], [50.0, 10.0, 90.0, 60.0]])
    calls = []
    hook = predictor.model.backbone.register_forward_hook(lambda *_: calls.append(1))
    predictor.set_image(image)
    a = predictor.embed_boxes(boxes)
    b = predictor.embed_boxes(boxes[1:])
    dets = predictor.predict(detections=Detections(boxes=boxes, scores=[0.9, 0.4], data={"line": np.array([3, 7])}))
    hook.remove()
    assert len(calls) == 1
    torch.testing.assert_close(a[1:], b)
    torch.testing.assert_close(dets.embeddings, a)
    assert dets.data["line"].tolist() == [3, 7] and dets.scores.tolist() == pytest.approx([0.9, 0.4])


def test_boxes_outside_the_frame_are_clipped_once_for_every_model():
    predictor = MasaPredictor(_swin_like_model(), _config(PreprocessConfig(max_size=None)))
    image = np.random.default_rng(3).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    inside = predictor.embed(image, torch.tensor([[0.0, 0.0, 40.0, 30.0]]))
    outside = predictor.embed(image, torch.tensor([[-50.0, -20.0, 40.0, 30.0]]))
    torch.testing.assert_close(inside, outside)
    far = predictor.embed(image, torch.tensor([[500.0, 500.0, 600.0, 600.0]]))
    assert torch.isfinite(far).all()


def test_predict_with_own_detection_head_in_frame_pixels():
    config = _config(PreprocessConfig(max_size=(64, 64), size_divisor=32))
    config = replace(config, adapter=replace(config.adapter, detection=replace(config.adapter.detection, score_thresh=0.0, max_per_img=5)))
    predictor = MasaPredictor(_sam_like_model(), config)
    image = np.random.default_rng(1).integers(0, 256, size=(40, 120, 3), dtype=np.uint8)  # scale 64/120
    dets = predictor.predict(image)
    assert isinstance(dets, Detections) and 0 < len(dets) <= 5
    assert float(dets.boxes[:, 2].max()) <= 120 and float(dets.boxes[:, 3].max()) <= 40
    assert dets.embeddings is not None and dets.embeddings.shape == (len(dets), EMBED)
    torch.testing.assert_close(predictor.detect().boxes, dets.boxes)


def test_errors_and_flags():
    predictor = MasaPredictor(_swin_like_model(), _config(PreprocessConfig()), fp16=True)
    assert not predictor.fp16  # CUDA only
    with pytest.raises(RuntimeError, match="set_image"):
        predictor.embed_boxes(torch.tensor([[0.0, 0.0, 4.0, 4.0]]))
    with pytest.raises(ValueError, match="RGB image"):
        predictor.set_image(np.zeros((10, 10), dtype=np.uint8))
    raw = get_config("raw_efficientnet_lite0")
    from masa.modeling.build import build_masa

    baseline = MasaPredictor(build_masa(raw), raw)
    assert not baseline.has_detector
    with pytest.raises(ValueError, match="no detection head"):
        baseline.predict(np.zeros((32, 32, 3), dtype=np.uint8))
    empty = baseline.predict(np.zeros((32, 32, 3), dtype=np.uint8), Detections.empty())
    assert len(empty) == 0 and empty.embeddings.shape == (0, baseline.embedding_dim)


class _BoxMasks:
    def segment(self, image, boxes):
        masks = torch.zeros(len(boxes), *image.shape[:2], dtype=torch.bool)
        for i, (x1, y1, x2, y2) in enumerate(boxes.round().long().tolist()):
            masks[i, y1:y2, x1:x2] = True
        return masks


def test_mask_slot():
    predictor = MasaPredictor(_swin_like_model(), _config(PreprocessConfig()), segmenter=_BoxMasks())
    image = np.zeros((32, 48, 3), dtype=np.uint8)
    dets = predictor.predict(image, torch.tensor([[2.0, 3.0, 10.0, 12.0]]))
    assert dets.masks.shape == (1, 32, 48) and int(dets.masks.sum()) == 8 * 9


def test_chunked_embedding_is_exact():
    model = _swin_like_model()
    config = _config(PreprocessConfig(max_size=None))
    image = np.random.default_rng(4).integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    xy = torch.rand(50, 2, generator=torch.Generator().manual_seed(0)) * 60
    boxes = torch.cat([xy, xy + 20], dim=1)
    whole = MasaPredictor(model, config).embed(image, boxes)
    chunked = MasaPredictor(model, config, max_boxes_per_pass=7).embed(image, boxes)
    torch.testing.assert_close(chunked, whole)
    with pytest.raises(ValueError, match="max_boxes_per_pass"):
        MasaPredictor(model, config, max_boxes_per_pass=0)
