"""Rules specific to ``MasaBDDTracker`` (notes §3.2/§3.3), on hand-made frames with D=4 embeddings."""

from __future__ import annotations

import pytest
import torch

from masa.ops.boxes import box_iou
from masa.structures import Detections
from masa.tracking import BddTrackerConfig, MasaBDDTracker


def emb(i: int, scale: float = 3.0) -> list[float]:
    v = [0.0] * 4
    v[i] = scale
    return v


def dets(embeds, scores, boxes=None, **kw) -> Detections:
    n = len(scores)
    if boxes is None:
        boxes = [[100.0 * i, 0.0, 100.0 * i + 10, 10.0] for i in range(n)]
    return Detections(boxes=boxes, scores=scores, embeddings=torch.tensor(embeds).reshape(n, 4), **kw)


def far(i: int) -> list[float]:
    return [1000.0 + 100 * i, 0.0, 1010.0 + 100 * i, 10.0]


# -- configs -------------------------------------------------------------------------------------


def test_config_presets_match_the_authors_configs() -> None:
    c = BddTrackerConfig()
    assert (c.init_score_thresh, c.obj_score_thresh, c.match_score_thresh) == (0.8, 0.5, 0.5)
    assert (c.memory_frames, c.backdrop_frames, c.momentum) == (10, 1, 0.8)
    assert (c.suppress_conf_thresh, c.backdrop_iou_thresh, c.duplicate_iou_thresh) == (0.5, 0.3, 0.7)
    assert (c.class_aware, c.match_metric) == (False, "bisoftmax")
    b = BddTrackerConfig.bdd_benchmark()
    assert (b.init_score_thresh, b.obj_score_thresh, b.match_score_thresh) == (0.5, 0.3, 0.6)
    assert (b.memory_frames, b.backdrop_frames, b.momentum, b.match_metric) == (10, 1, 0.8, "bisoftmax")
    assert (b.suppress_conf_thresh, b.backdrop_iou_thresh, b.duplicate_iou_thresh) == (0.5, 0.3, 0.7)
    assert b.class_aware is False


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"match_metric": "dot"}, "match_metric must be one of"),
        ({"backdrop_frames": -1}, "backdrop_frames must be an integer >= 0"),
        ({"memory_frames": 0}, "memory_frames must be an integer >= 1"),
        ({"momentum": 0}, r"must be in \(0, 1\]"),
        ({"suppress_conf_thresh": float("inf")}, "suppress_conf_thresh must be a finite"),
        ({"match_score_thresh": -1.0}, "match_score_thresh must be >= 0"),
        ({"class_aware": 1}, "class_aware must be a bool"),
    ],
)
def test_config_validation(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        BddTrackerConfig(**kwargs)


# -- matching ------------------------------------------------------------------------------------


def test_match_threshold_is_strict() -> None:
    # Two identical detections, one track: bisoftmax = (1 + 0.5) / 2 = 0.75 exactly.
    tracker = MasaBDDTracker(BddTrackerConfig(match_score_thresh=0.75))
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(0), emb(0)], [0.9, 0.85]), 1).ids.tolist() == [1, 2]
    tracker = MasaBDDTracker(BddTrackerConfig(match_score_thresh=0.74))
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(0), emb(0)], [0.9, 0.85]), 1).ids.tolist() == [0, 1]


def test_one_detection_one_track_bisoftmax_is_one_whatever_the_appearance() -> None:
    tracker = MasaBDDTracker()
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(0, -3.0)], [0.9]), 1).ids.tolist() == [0]


@pytest.mark.parametrize(
    "metric, expected",
    [
        ("bisoftmax", [1, 2]),  # (1 + 0.5) / 2 = 0.75 < 0.8: neither continues track 0
        ("softmax", [0, 1]),  # row softmax over one track = 1: the first takes it
        ("cosine", [0, 1]),  # cosine 1
    ],
)
def test_match_metric_variants_two_lookalikes(metric, expected) -> None:
    tracker = MasaBDDTracker(BddTrackerConfig(match_score_thresh=0.8, match_metric=metric))
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(0), emb(0)], [0.9, 0.85]), 1).ids.tolist() == expected


@pytest.mark.parametrize("metric, expected", [("bisoftmax", [0]), ("softmax", [0]), ("cosine", [1])])
def test_match_metric_variants_orthogonal(metric, expected) -> None:
    # One detection, one track, orthogonal: the softmax metrics give 1, cosine gives 0.
    tracker = MasaBDDTracker(BddTrackerConfig(match_metric=metric))
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(1)], [0.9]), 1).ids.tolist() == expected


@pytest.mark.parametrize("class_aware, expected", [(False, [0]), (True, [1])])
def test_class_aware_matching(class_aware, expected) -> None:
    tracker = MasaBDDTracker(BddTrackerConfig(class_aware=class_aware))
    tracker.update(dets([emb(0)], [0.9], labels=[1]), 0)
    assert tracker.update(dets([emb(0)], [0.9], labels=[2]), 1).ids.tolist() == expected
    assert tracker.update(dets([emb(0)], [0.9], labels=[1]), 2).ids.tolist() == [0]


def test_negative_labels_are_kept() -> None:
    tracker = MasaBDDTracker()
    assert tracker.update(dets([emb(0)], [0.9], labels=[-1]), 0).ids.tolist() == [0]


# -- duplicate removal ---------------------------------------------------------------------------

A, B, C = [0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 11.0, 10.0], [2.0, 0.0, 12.0, 10.0]
SHIFT4 = [4.0, 0.0, 14.0, 10.0]


def test_box_premises() -> None:
    ious = box_iou(torch.tensor([A, B, C, SHIFT4]), torch.tensor([A, B, C, SHIFT4]))
    assert ious[0, 1] == pytest.approx(90 / 110)  # 0.82
    assert ious[0, 2] == pytest.approx(80 / 120)  # 0.67
    assert ious[1, 2] == pytest.approx(90 / 110)
    assert ious[0, 3] == pytest.approx(60 / 140)  # 0.43


def test_duplicate_thresholds_depend_on_score() -> None:
    tracker = MasaBDDTracker(BddTrackerConfig(init_score_thresh=0.3))
    # 0.85 at IoU 0.67 (< 0.7) kept; 0.4 (< obj 0.5) at IoU 0.43 (> 0.3) dropped.
    out = tracker.update(dets([emb(0), emb(1), emb(2)], [0.9, 0.85, 0.4], [A, C, SHIFT4]), 0)
    assert out.det_index.tolist() == [0, 1]
    out = MasaBDDTracker().update(dets([emb(0), emb(1)], [0.9, 0.85], [A, B]), 0)
    assert out.det_index.tolist() == [0]  # IoU 0.82 > 0.7


def test_duplicates_are_compared_with_removed_boxes() -> None:
    # C overlaps A by 0.67 only, but B (removed by A) overlaps C by 0.82.
    tracker = MasaBDDTracker()
    out = tracker.update(dets([emb(0), emb(1), emb(2)], [0.9, 0.88, 0.86], [A, B, C]), 0)
    assert out.det_index.tolist() == [0]
    assert len(tracker.backdrops[0]) == 0  # duplicates are gone, not backdrops


# -- backdrops -----------------------------------------------------------------------------------

T_EMB, L_EMB, Q_EMB = [2.0, 0, 0, 0], [0, 2.0, 0, 0], [2.1, 2.0, 0, 0]


def _track_and_backdrop(**kw) -> MasaBDDTracker:
    """Frame 0: track 0 (T_EMB) and a 0.2 detection (L_EMB) that becomes a backdrop."""
    tracker = MasaBDDTracker(BddTrackerConfig(match_score_thresh=0.8, **kw))
    out = tracker.update(dets([T_EMB, L_EMB], [0.9, 0.2]), 0)
    assert out.ids.tolist() == [0]
    return tracker


def test_backdrops_lower_the_match_score() -> None:
    # Q.T = 4.2, Q.L = 4.0: with the backdrop, bisoftmax(Q, T) = (sigmoid(0.2) + 1) / 2 = 0.775 < 0.8
    # (still the best column); without it, 1.
    tracker = _track_and_backdrop()
    assert len(tracker.backdrops) == 1 and len(tracker.backdrops[0]) == 1
    assert tracker.update(dets([Q_EMB], [0.9]), 1).ids.tolist() == [1]
    tracker = _track_and_backdrop(backdrop_frames=0)
    assert tracker.backdrops == ()
    assert tracker.update(dets([Q_EMB], [0.9]), 1).ids.tolist() == [0]


def test_a_backdrop_entry_is_pushed_on_every_non_empty_frame() -> None:
    tracker = _track_and_backdrop()
    # Frame 1: everything matched -> an empty backdrop entry pushes the old one out.
    assert tracker.update(dets([T_EMB], [0.9]), 1).ids.tolist() == [0]
    assert [len(b) for b in tracker.backdrops] == [0]
    assert tracker.update(dets([Q_EMB], [0.9]), 2).ids.tolist() == [0]


def test_an_empty_frame_does_not_push_backdrops() -> None:
    tracker = _track_and_backdrop()
    tracker.update(Detections.empty(embedding_dim=4), 1)
    assert [b.frame_index for b in tracker.backdrops] == [0]
    assert tracker.update(dets([Q_EMB], [0.9]), 2).ids.tolist() == [1]


def test_backdrops_keep_the_last_frames_newest_first() -> None:
    tracker = MasaBDDTracker(BddTrackerConfig(backdrop_frames=2))
    for frame in range(4):
        tracker.update(dets([emb(frame % 4)], [0.2]), frame)
    assert [b.frame_index for b in tracker.backdrops] == [3, 2]


def test_backdrops_are_never_matched() -> None:
    tracker = _track_and_backdrop()
    # Looks exactly like the backdrop: best column is the backdrop -> no id from it, new track.
    assert tracker.update(dets([L_EMB], [0.9]), 1).ids.tolist() == [1]
    # A weak detection whose best column is a backdrop is not suppressed: it becomes a backdrop.
    tracker = _track_and_backdrop()
    assert tracker.update(dets([L_EMB], [0.4]), 1).ids.tolist() == []
    assert [len(b) for b in tracker.backdrops] == [1]


def test_backdrop_nms_compares_with_all_earlier_boxes() -> None:
    # A starts a track; B (0.6, IoU 0.43 with A) and B2 (0.55, overlapping only B) get no id
    # (0.6 < init 0.8) and survive duplicate removal (0.7 for score >= 0.5), but overlap an earlier
    # box by more than 0.3, so only the far one (0.6) becomes a backdrop.
    tracker = MasaBDDTracker()
    B2 = [8.0, 0.0, 18.0, 10.0]
    out = tracker.update(dets([emb(0), emb(1), emb(2), emb(3)], [0.9, 0.6, 0.55, 0.6], [A, SHIFT4, B2, far(0)]), 0)
    assert out.det_index.tolist() == [0]
    assert tracker.backdrops[0].boxes.tolist() == [far(0)]


def test_matching_against_backdrops_only_gives_nothing() -> None:
    tracker = MasaBDDTracker()
    tracker.update(dets([emb(0)], [0.2]), 0)  # no track, one backdrop
    assert len(tracker.memory) == 0 and len(tracker.backdrops[0]) == 1
    assert tracker.update(dets([emb(0)], [0.9]), 1).ids.tolist() == [0]


# -- -2 suppression ------------------------------------------------------------------------------


def test_suppressed_detections_do_not_block_the_track() -> None:
    # init 0.3 < obj 0.5: a weak look-alike would start a track if it were left at -1.
    # Both weak detections score (1 + 0.5) / 2 = 0.75 with track 0 (> match 0.5, > suppress 0.5):
    # both become -2; had the first zeroed the column, the second would start track 1.
    tracker = MasaBDDTracker(BddTrackerConfig(init_score_thresh=0.3))
    tracker.update(dets([emb(0)], [0.9]), 0)
    out = tracker.update(dets([emb(0), emb(0)], [0.45, 0.4]), 1)
    assert out.ids.tolist() == []
    assert tracker.num_tracks == 1
    assert [len(b) for b in tracker.backdrops] == [0]  # -2 rows are not backdrops
    assert tracker.memory.last_frames.tolist() == [0]  # the track was not updated


def test_suppression_needs_conf_above_its_threshold() -> None:
    tracker = MasaBDDTracker(BddTrackerConfig(init_score_thresh=0.3, suppress_conf_thresh=0.75))
    tracker.update(dets([emb(0)], [0.9]), 0)
    # conf 0.75 is not > 0.75: both stay -1 and start tracks in score order.
    assert tracker.update(dets([emb(0), emb(0)], [0.45, 0.4]), 1).ids.tolist() == [1, 2]


def test_suppressed_detection_leaves_the_track_to_a_later_frame() -> None:
    tracker = MasaBDDTracker()
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert tracker.update(dets([emb(0)], [0.45]), 1).ids.tolist() == []
    assert tracker.backdrops[0].boxes.shape == (0, 4)
    assert tracker.update(dets([emb(0)], [0.9]), 2).ids.tolist() == [0]
