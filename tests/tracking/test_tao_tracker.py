"""Rules specific to ``MasaTaoTracker`` (notes §3.1), on hand-made frames with D=4 embeddings."""

from __future__ import annotations

import math

import pytest
import torch

from masa.ops.boxes import box_iou
from masa.structures import Detections
from masa.tracking import MasaTaoTracker, TaoTrackerConfig


def emb(i: int, scale: float = 3.0) -> list[float]:
    v = [0.0] * 4
    v[i] = scale
    return v


def dets(embeds, scores, boxes=None, **kw) -> Detections:
    n = len(scores)
    if boxes is None:
        boxes = [[100.0 * i, 0.0, 100.0 * i + 10, 10.0] for i in range(n)]
    return Detections(boxes=boxes, scores=scores, embeddings=torch.tensor(embeds).reshape(n, 4), **kw)


def square_at(cx: float, cy: float = 5.0) -> list[float]:
    return [cx - 5, cy - 5, cx + 5, cy + 5]


# -- configs -------------------------------------------------------------------------------------


def test_config_presets_match_the_authors_configs() -> None:
    default = TaoTrackerConfig()
    assert (default.init_score_thresh, default.obj_score_thresh, default.match_score_thresh) == (0.8, 0.5, 0.5)
    assert (default.memory_frames, default.momentum, default.max_center_distance, default.fps) == (10, 0.8, None, 1.0)
    assert (default.distractor_score_thresh, default.distractor_iou_thresh) == (0.5, 0.3)
    demo = TaoTrackerConfig.plug_and_play()
    assert (demo.init_score_thresh, demo.obj_score_thresh, demo.match_score_thresh) == (0.1, 0.01, 0.5)
    assert (demo.memory_frames, demo.momentum, demo.max_center_distance, demo.fps) == (10, 0.8, 100.0, 30.0)
    assert (demo.distractor_score_thresh, demo.distractor_iou_thresh) == (0.5, 0.3)
    assert demo.growth_factor == 5.0 and demo.distance_smoothing == pytest.approx(100 / 30)
    tao = TaoTrackerConfig.tao_benchmark()
    assert (tao.init_score_thresh, tao.obj_score_thresh, tao.match_score_thresh) == (1e-4, 1e-4, 0.5)
    assert (tao.memory_frames, tao.momentum, tao.max_center_distance, tao.fps) == (10, 0.8, None, 1.0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"init_score_thresh": float("nan")}, "init_score_thresh must be a finite"),
        ({"match_score_thresh": -0.1}, "match_score_thresh must be >= 0"),
        ({"memory_frames": 0}, "memory_frames must be an integer >= 1"),
        ({"memory_frames": 2.5}, "memory_frames must be an integer"),
        ({"momentum": 0.0}, r"momentum .* must be in \(0, 1\]"),
        ({"momentum": 1.5}, r"must be in \(0, 1\]"),
        ({"fps": 0.0}, "fps must be > 0"),
        ({"max_center_distance": -1}, "None to turn the gate off"),
        ({"max_center_distance": float("inf")}, "max_center_distance must be a finite"),
    ],
)
def test_config_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        TaoTrackerConfig(**kwargs)


def test_config_is_frozen() -> None:
    with pytest.raises(AttributeError):
        TaoTrackerConfig().fps = 30  # type: ignore[misc]


# -- matching ------------------------------------------------------------------------------------


def test_match_threshold_is_strict() -> None:
    # One detection, one track, orthogonal embeddings: bisoftmax 1, cosine 0 -> score exactly 0.5.
    tracker = MasaTaoTracker()
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(1)], [0.9]), 1).ids.tolist() == [1]
    tracker = MasaTaoTracker(TaoTrackerConfig(match_score_thresh=0.49))
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(1)], [0.9]), 1).ids.tolist() == [0]


def test_score_mixes_bisoftmax_and_cosine() -> None:
    # Opposite appearance: bisoftmax alone is 1 (one detection, one track) and would match;
    # the mix (1 + (-1)) / 2 = 0 does not, so the detection starts track 1.
    tracker = MasaTaoTracker()
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(0, -3.0)], [0.9]), 1).ids.tolist() == [1]


def test_class_agnostic_matching() -> None:
    tracker = MasaTaoTracker()
    tracker.update(dets([emb(0)], [0.9], labels=[1]), 0)
    assert tracker.update(dets([emb(0)], [0.9], labels=[2]), 1).ids.tolist() == [0]


# -- distractors and labels ----------------------------------------------------------------------

A, B, C = [0.0, 0.0, 10.0, 10.0], [4.0, 0.0, 14.0, 10.0], [8.0, 0.0, 18.0, 10.0]


def test_box_premises() -> None:
    ious = box_iou(torch.tensor([A, B, C]), torch.tensor([A, B, C]))
    assert ious[0, 1] == pytest.approx(60 / 140) and ious[1, 2] == pytest.approx(60 / 140)
    assert ious[0, 2] == pytest.approx(20 / 180)


def test_low_score_box_overlapping_a_higher_one_is_dropped() -> None:
    tracker = MasaTaoTracker(TaoTrackerConfig(init_score_thresh=0.1))
    out = tracker.update(dets([emb(0), emb(1)], [0.9, 0.4], [A, B], labels=[0, 5]), 0)
    assert out.det_index.tolist() == [0]  # B dropped (IoU 0.43 > 0.3), whatever its label


def test_distractor_score_bound_is_strict() -> None:
    tracker = MasaTaoTracker(TaoTrackerConfig(init_score_thresh=0.1))
    out = tracker.update(dets([emb(0), emb(1)], [0.9, 0.5], [A, B]), 0)
    assert out.det_index.tolist() == [0, 1]  # 0.5 is not < 0.5: not a distractor candidate


def test_distractor_compares_with_removed_boxes() -> None:
    # C overlaps only B (IoU 0.11 with A); B is itself removed, and still removes C.
    tracker = MasaTaoTracker(TaoTrackerConfig(init_score_thresh=0.1))
    out = tracker.update(dets([emb(0), emb(1), emb(2)], [0.9, 0.4, 0.35], [A, B, C]), 0)
    assert out.det_index.tolist() == [0]


def test_negative_labels_are_dropped_but_still_remove_distractors() -> None:
    tracker = MasaTaoTracker(TaoTrackerConfig(init_score_thresh=0.1))
    out = tracker.update(dets([emb(0), emb(1), emb(2)], [0.9, 0.4, 0.9], [A, B, square_at(500)], labels=[-1, 0, 0]), 0)
    assert out.det_index.tolist() == [2]  # row 0: label -1; row 1: overlaps the dropped row 0
    assert out.ids.tolist() == [0] and tracker.num_tracks == 1


def test_a_frame_of_negative_labels_is_not_empty() -> None:
    # Unlike an empty frame, it still runs the update step, so old tracks expire.
    tracker = MasaTaoTracker()
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert len(tracker.update(dets([emb(0)], [0.9], labels=[-1]), 10)) == 0
    assert len(tracker.memory) == 0


# -- centre-distance gate ------------------------------------------------------------------------


def _gated_pair(distance: float, frame: int) -> list[int]:
    """Track at x=5 in frame 0; the same appearance ``distance`` px to the right at ``frame``."""
    tracker = MasaTaoTracker(TaoTrackerConfig.plug_and_play())  # 100 px, fps 30
    tracker.update(dets([emb(0)], [0.9], [square_at(5)]), 0)
    return tracker.update(dets([emb(0)], [0.9], [square_at(5 + distance)]), frame).ids.tolist()


def test_distance_gate_allows_near_and_blocks_far() -> None:
    assert _gated_pair(120.0, 1) == [0]  # radius at gap 1: 100 * exp(1/5) = 122.1 px
    assert _gated_pair(200.0, 1) == [1]  # score 1 * exp(-(200 - 122.1) / 3.33) ~ 0


def test_distance_gate_exact_decay() -> None:
    # Score 1 (same appearance, one pair) times exp(-(d - A) / (100/30)) stays > 0.5 while
    # d - A < (100/30) * ln 2 = 2.31 px.
    radius = 100 * math.exp(1 / 5)
    assert _gated_pair(radius + 2.0, 1) == [0]
    assert _gated_pair(radius + 2.6, 1) == [1]


def test_distance_gate_grows_with_the_frame_gap() -> None:
    # 170 px: too far one frame later (radius 122 px), fine three frames later (100 * exp(3/5) = 182 px).
    assert _gated_pair(170.0, 1) == [1]
    assert _gated_pair(170.0, 3) == [0]


def test_distance_gate_is_off_by_default() -> None:
    tracker = MasaTaoTracker()
    tracker.update(dets([emb(0)], [0.9], [square_at(5)]), 0)
    assert tracker.update(dets([emb(0)], [0.9], [square_at(5000)]), 1).ids.tolist() == [0]
