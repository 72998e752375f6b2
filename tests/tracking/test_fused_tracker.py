"""``FusedTracker``, rule by rule (the rules are the module docstring of ``masa/tracking/fused.py``).

Every scene is hand-made: boxes are small squares (``box(x)`` is 20x20 px at ``(x, 0)`` unless a
test says otherwise), embeddings are rows of ``eye(D)`` (cosine 0 between two objects: their
appearance similarity in stage 1 is 0) or rotations of them when a precise cosine is needed. The
tests only use the public API (``update``, ``observe_frame``, ``reset``, ``describe``, ``fps``,
``num_tracks``, ``needs_frames``); what happens inside is inferred from the ids.

Numbers worth keeping in mind (defaults): at 30 fps the motion weight one frame after a match is
``0.8 * 0.5 ** (1 / 30) = 0.78``, so a detection that does not overlap the predicted box scores
at most ``0.22`` in stage 1, below ``match_thresh = 0.3``, however alike it looks; at 2 fps it
is ``0.8 * 0.5 ** 0.5 = 0.57`` (appearance alone reaches ``0.43``).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from masa.ops.boxes import box_iou
from masa.structures import Detections, Tracks
from masa.tracking import FusedTracker, FusedTrackerConfig, TaoTrackerConfig

D = 8
E = torch.eye(D)


def box(x: float, y: float = 0.0, size: float = 20.0) -> list[float]:
    """An axis-aligned square, top-left ``(x, y)``, in xyxy pixels."""
    return [x, y, x + size, y + size]


def rotated(angle: float, dim: int = D) -> torch.Tensor:
    """Unit vector at ``angle`` radians from ``E[0]`` towards ``E[1]`` (cosine with ``E[0]``: ``cos(angle)``)."""
    v = torch.zeros(dim)
    v[0], v[1] = math.cos(angle), math.sin(angle)
    return v


def with_cosine(c: float) -> torch.Tensor:
    """An embedding whose cosine with ``E[0]`` is exactly ``c``."""
    return rotated(math.acos(c))


def noisy(i: int, seed: int, scale: float = 0.05, dim: int = D) -> torch.Tensor:
    """Row ``i`` of ``eye(dim)`` plus small Gaussian noise (fixed seed): the same object seen again."""
    g = torch.Generator().manual_seed(seed)
    return torch.eye(dim)[i] + scale * torch.randn(dim, generator=g)


def dets(boxes, embeds=None, scores=None, **kw) -> Detections:
    """``Detections`` of ``boxes``; embeddings default to ``E[0], E[1], ...``, scores to 0.9 (confident)."""
    n = len(boxes)
    if embeds is None:
        embeds = E[:n]
    embeds = torch.stack([torch.as_tensor(e, dtype=torch.float32) for e in embeds]) if n else torch.zeros(0, D)
    scores = [0.9] * n if scores is None else scores
    return Detections(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(n, 4), scores=scores, embeddings=embeds, **kw)


def ids(tracks: Tracks) -> list[int]:
    return tracks.ids.tolist()


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def iou(a: list[float], b: list[float]) -> float:
    return float(box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0])


def empty_frames(tracker: FusedTracker, frames) -> None:
    for f in frames:
        assert len(tracker.update(Detections.empty(), f)) == 0


# -- 1. Kalman prediction ------------------------------------------------------------------------


def test_prediction_keeps_a_fast_object_whose_box_left_its_last_box() -> None:
    """Rule 2 (predict): the predicted box, not the last one, is compared with the detections.

    At 2 fps an object 20 px wide moves 24 px per frame, so its box never overlaps its previous
    one. On the test frame it looks like another object (``E[1]``: appearance similarity 0), so
    only the overlap with the *predicted* box can keep its id. A standing object making the same
    24 px jump (no velocity learnt) loses it.
    """
    moving = FusedTracker(fps=2)
    assert [ids(moving.update(dets([box(24 * f)]), f)) for f in range(10)] == [[0]] * 10
    assert iou(box(240), box(24 * 9)) == 0.0
    assert ids(moving.update(dets([box(240)], [E[1]]), 10)) == [0]

    standing = FusedTracker(fps=2)
    for f in range(10):
        standing.update(dets([box(216)]), f)
    assert ids(standing.update(dets([box(240)], [E[1]]), 10)) == [1]


@pytest.mark.parametrize("frame, expected", [(17, [0]), (15, [1])], ids=["3 frames later: same id", "1 frame later: new id"])
def test_prediction_spans_the_frame_gap(frame: int, expected: list[int]) -> None:
    """Rule 2 (predict "over the frame gap"): a jump of ``frame_index`` by 3 predicts 3 frames ahead.

    10 fps, 12 px per frame, 20 px box, learnt over frames 0-14. The object is next seen at
    x = 204 (where it is on frame 17), looking like another object (appearance 0). Given as frame
    17 the 3-frame prediction is there: same id. The same box given as frame 15 is 24 px ahead of
    the 1-frame prediction (IoU 0.25, fused score 0.2 < 0.3): a new id.
    """
    tracker = FusedTracker(fps=10)
    for f in range(15):
        assert ids(tracker.update(dets([box(12 * f)]), f)) == [0]
    assert iou(box(204), box(12 * 14)) == 0.0  # no overlap with the last matched box
    assert ids(tracker.update(dets([box(204)], [E[1]]), frame)) == expected


# -- 2. gating -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fps, motion_weight, gate_sigmas, expected",
    [
        (30, 0.5, 6.0, [1]),
        (30, 0.5, None, [0]),
        (2, 0.8, 6.0, [1]),
        (2, 0.8, None, [0]),
        (30, 0.8, None, [1]),
    ],
    ids=["30fps-w0.5-gated", "30fps-w0.5-ungated", "2fps-gated", "2fps-ungated", "30fps-default-ungated"],
)
def test_kalman_gate_blocks_far_lookalikes(fps: float, motion_weight: float, gate_sigmas: float | None, expected) -> None:
    """Rule 4 (gate): a detection outside the Kalman gate cannot take an active track in stage 1.

    The track is matched on frame 0; on frame 1 a detection with the *same* embedding appears
    500 px away. Stage 3 cannot take it: it only re-identifies *lost* tracks and this one is still
    active (matched on the previous frame), so gated means a new id.

    Without the gate (``gate_sigmas=None``) stage 1 scores the pair ``(1 - w) * 1`` (IoU 0): it
    matches (a teleport) whenever the appearance weight ``1 - w`` reaches ``match_thresh`` (0.3):
    ``motion_weight=0.5`` at 30 fps (0.51), the default 0.8 at 2 fps (0.43); with the default at
    30 fps (0.22) it does not, gate or no gate.
    """
    tracker = FusedTracker(FusedTrackerConfig(motion_weight=motion_weight, gate_sigmas=gate_sigmas), fps=fps)
    tracker.update(dets([box(0)]), 0)
    assert ids(tracker.update(dets([box(500)]), 1)) == expected


@pytest.mark.parametrize("missed, expected", [(False, [0]), (True, [1])], ids=["active: matched", "lost: not matched"])
def test_lost_track_must_overlap_in_stage_1(missed: bool, expected) -> None:
    """Rule 4 (a lost track's prediction is uncertain: in stage 1 it must still overlap the box;
    far re-appearances are left to the stricter stage 3).

    2 fps; a lookalike (cosine 0.9: fused appearance 0.8, too little for stage 3's 0.95) 30 px
    away from the track's box (IoU 0, inside the gate). The active track takes it on appearance
    (0.43 * 0.8 = 0.35 >= 0.3); once the track is lost (one empty frame; 1 s, within
    ``lost_seconds``) it would score 0.6 * 0.8 = 0.48, but may not: a new id.
    """
    tracker = FusedTracker(fps=2)
    tracker.update(dets([box(0)]), 0)
    if missed:
        empty_frames(tracker, [1])
    assert iou(box(30), box(0)) == 0.0
    assert ids(tracker.update(dets([box(30)], [with_cosine(0.9)]), 2 if missed else 1)) == expected


# -- 3. two-stage matching -----------------------------------------------------------------------

WEAK, IGNORED = 0.2, 0.05  # low_score_thresh (0.1) <= WEAK < high_score_thresh (0.4); IGNORED < 0.1


@pytest.mark.parametrize("dx, expected", [(0, [0]), (5, [0]), (8, [])], ids=["iou-1", "iou-0.6", "iou-0.43"])
def test_weak_detection_continues_a_track_by_overlap(dx: float, expected) -> None:
    """Rule 5 (stage 2): a weak detection continues a track matched on the previous frame when its
    IoU with the predicted box is at least ``low_match_iou`` (0.5), whatever it looks like (here
    ``E[1]``, the appearance of an occluder); below that it is dropped (not a new track either)."""
    tracker = FusedTracker()
    tracker.update(dets([box(0)]), 0)
    assert iou(box(dx), box(0)) == pytest.approx({0: 1.0, 5: 0.6, 8: 12 / 28}[dx])
    assert ids(tracker.update(dets([box(dx)], [E[1]], [WEAK]), 1)) == expected
    assert tracker.num_tracks == 1


@pytest.mark.parametrize("new_track_thresh", [0.4, 0.1])
def test_weak_detections_never_start_tracks(new_track_thresh: float) -> None:
    """Rule 7: only confident detections start tracks (on the first frame too), even when
    ``new_track_thresh`` is below ``high_score_thresh``."""
    tracker = FusedTracker(FusedTrackerConfig(new_track_thresh=new_track_thresh))
    assert len(tracker.update(dets([box(0), box(100)], scores=[WEAK, 0.39]), 0)) == 0
    assert ids(tracker.update(dets([box(0), box(100), box(200)], scores=[WEAK, WEAK, 0.4]), 1)) == [0]
    assert tracker.num_tracks == 1


def test_detections_below_low_score_are_ignored() -> None:
    """Rule 3: a detection below ``low_score_thresh`` is not output, not even on its track's box,
    and does not keep the track alive (it becomes lost: the next weak box cannot continue it)."""
    tracker = FusedTracker()
    tracker.update(dets([box(0)]), 0)
    assert len(tracker.update(dets([box(0)], scores=[IGNORED]), 1)) == 0
    assert len(tracker.update(dets([box(0)], scores=[WEAK]), 2)) == 0
    assert tracker.num_tracks == 1


def test_weak_detection_only_continues_tracks_matched_on_the_previous_frame() -> None:
    """Rule 5: stage 2 only sees tracks matched on the previous frame, not lost ones."""
    tracker = FusedTracker()
    tracker.update(dets([box(0)]), 0)
    empty_frames(tracker, [1])
    assert len(tracker.update(dets([box(0)], scores=[WEAK]), 2)) == 0
    assert ids(tracker.update(dets([box(0)]), 3)) == [0]  # a confident box still finds the lost track


@pytest.mark.parametrize("score, expected", [(WEAK, [1]), (0.9, [0])], ids=["weak: appearance kept", "confident: learnt"])
def test_weak_detection_does_not_update_the_appearance(score: float, expected) -> None:
    """Rule 5 ("weak boxes ... their appearance describes the occluder"): a weak match does not
    change the track's embedding.

    ``momentum=1`` (a confident match replaces the embedding), 2 fps. Frame 1 continues the track
    (``E[0]``) with a box looking like ``E[1]``. After 3.5 s unseen (motion weight 0.07, still
    inside ``lost_seconds=5``) a confident ``E[1]`` box on the same spot is a match only if the
    track learnt ``E[1]`` (fused score 1.0 against 0.07; the gallery holds ``E[0]`` only, so
    stage 3 does not take it either).
    """
    tracker = FusedTracker(FusedTrackerConfig(momentum=1.0, lost_seconds=5.0), fps=2)
    tracker.update(dets([box(0)]), 0)
    assert ids(tracker.update(dets([box(0)], [E[1]], [score]), 1)) == [0]
    empty_frames(tracker, range(2, 8))
    assert ids(tracker.update(dets([box(0)], [E[1]]), 8)) == expected


# -- 4. lifecycle in seconds ---------------------------------------------------------------------


@pytest.mark.parametrize("fps, expected", [(30, [0]), (5, [1])])
def test_lost_seconds_count_time_not_frames(fps: float, expected) -> None:
    """Rule 7 (lost tracks are matched by motion + appearance for ``lost_seconds``, 1.5 s).

    The object is missing for 20 frames: 0.67 s at 30 fps, 4 s at 5 fps. It comes back on the
    same spot looking a bit different (cosine 0.9: stage 1 accepts it, fused score ~0.9; the
    stricter stage 3, 0.95, does not). Only at 30 fps is the lost track still in stage 1.
    """
    tracker = FusedTracker(FusedTrackerConfig(lost_seconds=1.5), fps=fps)
    tracker.update(dets([box(0)]), 0)
    empty_frames(tracker, range(1, 20))
    assert ids(tracker.update(dets([box(0)], [with_cosine(0.9)]), 20)) == expected


@pytest.mark.parametrize("back_at, expected", [(20, [0]), (22, [1])], ids=["2.0 s: kept", "2.2 s: removed"])
def test_reid_seconds_then_removed(back_at: int, expected) -> None:
    """Rule 7 (then **removed**): a track unseen for more than ``reid_seconds`` is gone; the
    object coming back (same look, elsewhere) gets a new id. 10 fps, ``reid_seconds=2``."""
    tracker = FusedTracker(FusedTrackerConfig(lost_seconds=1.0, reid_seconds=2.0), fps=10)
    tracker.update(dets([box(0)]), 0)
    empty_frames(tracker, range(1, back_at))
    assert ids(tracker.update(dets([box(300)]), back_at)) == expected


@pytest.mark.parametrize(
    "fps, jump, where, embed",
    [
        pytest.param(5, 20, box(0), with_cosine(0.9), id="4 s gap > lost_seconds 1.5"),
        pytest.param(30, 3000, box(300), E[0], id="100 s gap > reid_seconds 30"),
    ],
)
def test_frame_gaps_count_as_time(fps: float, jump: int, where, embed) -> None:
    """Module docstring: "frame gaps (``frame_index`` jumps) count as time" -- a gap must age a
    track like the same time spent in empty frames: past ``lost_seconds`` it leaves stage 1, past
    ``reid_seconds`` it is removed. Both cases give a new id with empty frames."""
    tracker = FusedTracker(fps=fps)
    tracker.update(dets([box(0)]), 0)
    assert ids(tracker.update(dets([where], [embed]), jump)) == [1]


def test_tentative_track_is_removed_when_missed_once() -> None:
    """Rule 7: a track started after the first frame is tentative; missed once, it is removed
    (the object coming back gets a new id), while a confirmed track (2 hits) is only lost."""
    tracker = FusedTracker()
    assert ids(tracker.update(dets([box(0)]), 0)) == [0]
    assert ids(tracker.update(dets([box(0), box(200)]), 1)) == [0, 1]  # 1: tentative
    assert ids(tracker.update(dets([box(0)]), 2)) == [0]  # 1 missed: removed
    assert ids(tracker.update(dets([box(0), box(200)]), 3)) == [0, 2]
    assert ids(tracker.update(dets([box(0), box(200)]), 4)) == [0, 2]  # 2: confirmed (2 hits)
    assert ids(tracker.update(dets([box(0)]), 5)) == [0]  # 2 missed: lost
    assert ids(tracker.update(dets([box(0), box(200)]), 6)) == [0, 2]


@pytest.mark.parametrize("confirm_hits", [1, 2, 3])
def test_confirmed_after_confirm_hits_and_at_once_on_the_first_frame(confirm_hits: int) -> None:
    """Rule 7: a track is confirmed after ``confirm_hits`` matched frames, on a video's first frame
    at once. Seen with ``output_tentative=False``, which outputs confirmed tracks only."""
    tracker = FusedTracker(FusedTrackerConfig(confirm_hits=confirm_hits, output_tentative=False))
    assert ids(tracker.update(dets([box(0), box(100)]), 0)) == [0, 1]  # first frame: confirmed
    outputs = [ids(tracker.update(dets([box(0), box(100), box(200)]), f)) for f in range(1, 5)]
    first = confirm_hits - 1  # index in ``outputs`` of the frame with the new track's confirm_hits-th hit
    assert outputs[:first] == [[0, 1]] * first
    assert outputs[first:] == [[0, 1, 2]] * (4 - first)


# -- 5. long-term re-identification --------------------------------------------------------------


@pytest.mark.parametrize(
    "embeds, expected",
    [([noisy(0, seed=1)], [0]), ([E[1]], [1]), ([noisy(0, seed=1), E[1]], [0, 1])],
    ids=["same object", "another object", "both"],
)
def test_reid_after_two_seconds_far_away(embeds, expected) -> None:
    """Rule 6 (stage 3): at 30 fps an object gone for 60 frames (2 s: longer than the authors'
    10-frame memory and than ``lost_seconds``) comes back 300 px away looking (nearly) the same:
    it gets its id back; another object appearing there gets a new one."""
    seen = [noisy(0, seed=100 + f) for f in range(10)]
    assert all(cosine(s, noisy(0, seed=1)) > 0.95 for s in seen)  # above reid_thresh
    tracker = FusedTracker(fps=30)
    for f in range(10):
        assert ids(tracker.update(dets([box(0)], [seen[f]]), f)) == [0]
    empty_frames(tracker, range(10, 70))
    assert ids(tracker.update(dets([box(300, 100), box(100, 150)][: len(embeds)], embeds), 70)) == expected


@pytest.mark.parametrize("gallery_size, expected", [(10, [0]), (1, [1])])
def test_reid_searches_the_gallery_of_past_looks(gallery_size: int, expected) -> None:
    """Rule 6 (best cosine over the track's gallery of past embeddings).

    At 30 fps a standing object's look turns from ``E[0]`` to ``E[1]`` (1.5 degrees a frame)
    over 2 s; the gallery takes an entry every ``gallery_interval`` = 0.5 s (15 frames): frames
    0, 15, 30, 45 and 60. After 2 s away it comes back elsewhere looking like ``E[0]`` again
    (cosine 0 with its last look): a 10-entry gallery still holds the frame-0 look, a 1-entry one
    only the last (frame 60).
    """
    tracker = FusedTracker(FusedTrackerConfig(gallery_size=gallery_size), fps=30)
    for f in range(61):
        assert ids(tracker.update(dets([box(0)], [rotated(math.pi / 2 * f / 60)]), f)) == [0]
    empty_frames(tracker, range(61, 121))
    assert ids(tracker.update(dets([box(300)], [E[0]]), 121)) == expected


# -- 6. camera-motion compensation ---------------------------------------------------------------


def _panning_run(cmc: str, observe: bool = True) -> list[list[int]]:
    """Ids of 3 objects standing in the world while the picture shifts 16 px right, 12 px down per frame (a panning camera).

    The frame is smooth random texture (320x240); objects are 24x24 boxes moving with it. No
    memory of lost tracks (``lost_seconds = reid_seconds = 0``: a lost track is removed at once),
    so a broken track cannot be re-identified later.
    """
    import cv2

    rng = np.random.default_rng(0)
    texture = cv2.GaussianBlur(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8), (0, 0), 8.0)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    start = torch.tensor([box(40, 30, 24), box(140, 90, 24), box(60, 140, 24)])
    tracker = FusedTracker(FusedTrackerConfig(cmc=cmc, lost_seconds=0.0, reid_seconds=0.0))
    out = []
    for f in range(6):
        dx, dy = 16 * f, 12 * f
        image = np.roll(texture, (dy, dx), axis=(0, 1))
        boxes = start + torch.tensor([dx, dy, dx, dy], dtype=torch.float32)
        if observe:
            tracker.observe_frame(image, boxes)
        out.append(ids(tracker.update(dets(boxes.tolist(), E[:3]), f)))
    return out


@pytest.mark.parametrize("cmc", ["sparse-flow", "ecc"])
def test_camera_motion_compensation_keeps_ids_while_panning(cmc: str) -> None:
    """Rule 2 (predictions warped by the camera motion of ``observe_frame``): with CMC the three
    objects keep their ids through a 20 px/frame pan; without it every track breaks on every
    frame (the boxes move 16x12 px per frame: IoU 0.09 with the unwarped prediction, fused score
    0.78 * 0.09 + 0.22 = 0.29 < 0.3, and outside the gate)."""
    assert _panning_run(cmc) == [[0, 1, 2]] * 6
    off = _panning_run("off")
    assert off == [[3 * f, 3 * f + 1, 3 * f + 2] for f in range(6)]
    assert _panning_run("off", observe=False) == off  # observe_frame changes nothing when off


def test_needs_frames_only_with_camera_motion() -> None:
    """``needs_frames`` is true exactly when ``cmc != "off"``; ``observe_frame`` is then a no-op
    (it does not even look at the image)."""
    assert FusedTracker().needs_frames is False
    assert FusedTracker(FusedTrackerConfig(cmc="sparse-flow")).needs_frames is True
    assert FusedTracker(FusedTrackerConfig(cmc="ecc")).needs_frames is True
    FusedTracker().observe_frame(np.zeros((2, 2, 2, 2), dtype=np.uint8))  # not an image: ignored
    with pytest.raises(ValueError, match="image"):
        FusedTracker(FusedTrackerConfig(cmc="sparse-flow")).observe_frame(np.zeros((2, 2, 2, 2), dtype=np.uint8))


# -- 7. class-aware ------------------------------------------------------------------------------


def _relabelled(stage: str, class_aware: bool) -> list[int]:
    """A track of label 1; then a detection of label 2 that would continue it in ``stage``."""
    tracker = FusedTracker(FusedTrackerConfig(class_aware=class_aware, lost_seconds=1.5), fps=2)
    tracker.update(dets([box(0)], labels=[1]), 0)
    if stage == "stage 1":
        return ids(tracker.update(dets([box(0)], labels=[2]), 1))
    if stage == "stage 2":
        return ids(tracker.update(dets([box(0)], scores=[WEAK], labels=[2]), 1))
    empty_frames(tracker, range(1, 5))  # 2.5 s unseen at frame 5: beyond lost_seconds, stage 3 only
    return ids(tracker.update(dets([box(300)], labels=[2]), 5))


@pytest.mark.parametrize("stage", ["stage 1", "stage 2", "stage 3"])
@pytest.mark.parametrize("class_aware", [True, False])
def test_class_aware_matches_equal_labels_only(stage: str, class_aware: bool) -> None:
    """Rule 4 (``class_aware``): in every stage a detection of another label cannot continue a
    track (a confident one starts a new track, a weak one is dropped); class-agnostic, it can."""
    expected = {"stage 1": [1], "stage 2": [], "stage 3": [1]}[stage] if class_aware else [0]
    assert _relabelled(stage, class_aware) == expected


def test_class_aware_track_keeps_its_label() -> None:
    """Config ``class_aware``: a track keeps the label it was created with: after a label-2 box took
    a new id on its spot, the label-1 track still takes label-1 boxes, the new one label-2 boxes."""
    tracker = FusedTracker(FusedTrackerConfig(class_aware=True))
    tracker.update(dets([box(0)], labels=[1]), 0)
    assert ids(tracker.update(dets([box(0)], labels=[2]), 1)) == [1]
    assert ids(tracker.update(dets([box(0), box(0)], [E[0], E[0]], labels=[2, 1]), 2)) == [1, 0]


# -- 8. output -----------------------------------------------------------------------------------


def test_a_crowd_of_50_overlapping_boxes_all_get_ids_at_once() -> None:
    """Rule 8 + "no detection is suppressed": 50 confident boxes 2 px apart (neighbours' IoU 0.9)
    appearing after the first frame (tentative tracks) are all output at once with unique ids,
    and the next frame every box keeps its id (appearance separates them)."""
    dim = 64
    crowd_embeds = [noisy(i, seed=i, dim=dim) for i in range(50)]
    crowd = [[2.0 * i, 0.0, 2.0 * i + 40, 80.0] for i in range(50)]
    tracker = FusedTracker()
    tracker.update(Detections(boxes=[box(500)], scores=[0.9], embeddings=torch.eye(dim)[63:]), 0)
    first = tracker.update(Detections(boxes=crowd, scores=[0.9] * 50, embeddings=torch.stack(crowd_embeds)), 1)
    assert first.det_index.tolist() == list(range(50))
    assert sorted(ids(first)) == list(range(1, 51))
    second = tracker.update(Detections(boxes=crowd, scores=[0.9] * 50, embeddings=torch.stack(crowd_embeds)), 2)
    assert ids(second) == ids(first)


def test_without_output_tentative_ids_have_no_gaps() -> None:
    """Rule 8: with ``output_tentative=False`` a new track is output once confirmed; tracks that
    die tentative never take a public id, so the ids over the video are 0..K-1."""
    tracker = FusedTracker(FusedTrackerConfig(output_tentative=False))
    a, b, c, d = box(0), box(100), box(200), box(300)
    frames = [[a], [a, b, c], [a, b], [a, b, d], [a, b, d]]  # c: tentative once, removed
    out = [ids(tracker.update(dets(boxes), f)) for f, boxes in enumerate(frames)]
    assert out == [[0], [0], [0, 1], [0, 1], [0, 1, 2]]
    assert tracker.num_tracks == 3


def test_public_ids_are_handed_out_in_score_order() -> None:
    """Rule 8: ids are handed out in score order when a track is first output."""
    tracker = FusedTracker()
    out = tracker.update(dets([box(0), box(100), box(200)], scores=[0.5, 0.9, 0.7]), 0)
    assert out.det_index.tolist() == [0, 1, 2] and ids(out) == [2, 0, 1]


# -- 9. contract ---------------------------------------------------------------------------------


def _rich_frame(order: list[int]) -> Detections:
    """Five rows (in ``order``): confident 0.9 / 0.8 / 0.6, a weak one far from any track, one below
    ``low_score_thresh``; with masks, embeddings and three kinds of ``data`` columns."""
    rows = [
        (box(0), 0.9, 3),
        (box(100), IGNORED, 4),
        (box(200), WEAK, 5),
        (box(300), 0.6, 6),
        (box(400), 0.8, 7),
    ]
    rows = [rows[i] for i in order]
    masks = torch.zeros(5, 6, 6, dtype=torch.bool)
    for r, (_, _, label) in enumerate(rows):
        masks[r, label % 6] = True
    return Detections(
        boxes=[r[0] for r in rows],
        scores=[r[1] for r in rows],
        labels=[r[2] for r in rows],
        masks=masks,
        embeddings=torch.stack([E[r[2]] * (1 + r[2]) for r in rows]),  # not unit-norm: carried as given
        data={"name": [f"row{r[2]}" for r in rows], "arr": np.array([10 * r[2] for r in rows]), "t": torch.tensor([r[2] for r in rows])},
    )


def test_output_maps_back_to_input_rows_with_every_field() -> None:
    """``update`` returns the input rows that got an id, sorted by ``det_index``, with boxes,
    scores, labels, masks, embeddings and ``data`` columns of those rows."""
    tracker = FusedTracker()
    for f, order in enumerate([[0, 1, 2, 3, 4], [4, 2, 0, 1, 3]]):
        frame = _rich_frame(order)
        out = tracker.update(frame, f)
        assert isinstance(out, Tracks)
        rows = out.det_index.tolist()
        assert rows == sorted(rows)
        assert sorted(frame.scores[rows].tolist()) == pytest.approx([0.6, 0.8, 0.9])  # weak (no track) and ignored rows dropped
        picked = frame[out.det_index]
        for name in ("boxes", "scores", "labels", "masks", "embeddings"):
            assert torch.equal(getattr(out, name), getattr(picked, name)), name
        assert out.data["name"] == picked.data["name"]
        assert np.array_equal(out.data["arr"], picked.data["arr"]) and torch.equal(out.data["t"], picked.data["t"])
        # ids follow the objects (labels 3, 6, 7), handed out in score order on frame 0
        assert dict(zip(out.labels.tolist(), ids(out))) == {3: 0, 7: 1, 6: 2}


def _random_scene(seed: int) -> list[Detections]:
    """12 frames of 8 objects walking at random, with random scores (some weak or ignored) and drop-outs."""
    g = torch.Generator().manual_seed(seed)
    pos = torch.rand(8, 2, generator=g) * 400
    vel = (torch.rand(8, 2, generator=g) - 0.5) * 10
    looks = torch.eye(D).repeat(2, 1)[:8] + 0.3 * torch.rand(8, D, generator=g)
    frames = []
    for _ in range(12):
        pos = pos + vel
        keep = torch.rand(8, generator=g) > 0.15
        boxes = torch.cat([pos, pos + 30], dim=1)[keep]
        embeds = (looks + 0.05 * torch.randn(8, D, generator=g))[keep]
        frames.append(Detections(boxes=boxes, scores=torch.rand(int(keep.sum()), generator=g), embeddings=embeds))
    return frames


def _play(tracker: FusedTracker, frames: list[Detections]) -> list[tuple[list[int], list[int]]]:
    return [(ids(t), t.det_index.tolist()) for t in (tracker.update(d, f) for f, d in enumerate(frames))]


def test_deterministic_and_reset_restarts_the_video() -> None:
    """Same input, same output (two trackers); ``reset()`` restarts ids at 0 and accepts frame 0 again."""
    frames = _random_scene(0)
    first = FusedTracker()
    reference = _play(first, frames)
    assert sum(len(i) for i, _ in reference) > 20 and first.num_tracks > 0
    assert _play(FusedTracker(), frames) == reference
    first.reset()
    assert first.num_tracks == 0
    assert _play(first, frames) == reference


def test_empty_frame_returns_empty_tracks_and_ages_the_tracks() -> None:
    """Rule 1: an empty frame (with or without ``[0, D]`` embeddings) returns empty ``Tracks`` and
    still ages the tracks: the tentative one is removed, the confirmed one lost (then found again)."""
    tracker = FusedTracker()
    tracker.update(dets([box(0)]), 0)
    assert ids(tracker.update(dets([box(0), box(200)]), 1)) == [0, 1]  # 1: tentative
    for f, frame in ((2, Detections.empty()), (3, Detections.empty(embedding_dim=D))):
        out = tracker.update(frame, f)
        assert isinstance(out, Tracks) and len(out) == 0 and out.ids.dtype == torch.int64
    assert ids(tracker.update(dets([box(0), box(200)]), 4)) == [0, 2]


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"low_score_thresh": 0.5, "high_score_thresh": 0.4}, "low_score_thresh"),
        ({"reid_seconds": 1.0, "lost_seconds": 2.0}, "reid_seconds"),
        ({"cmc": "orb"}, "cmc"),
        ({"momentum": 0.0}, "momentum"),
        ({"gate_sigmas": -1.0}, "gate_sigmas"),
        ({"match_thresh": float("nan")}, "match_thresh"),
        ({"motion_weight": 1.5}, "motion_weight"),
        ({"motion_half_life": 0.0}, "motion_half_life"),
        ({"reid_thresh": 1.0}, "reid_thresh"),
        ({"confirm_hits": 0}, "confirm_hits"),
        ({"gallery_size": 2.5}, "gallery_size"),
    ],
)
def test_config_validation_names_the_field(kwargs, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        FusedTrackerConfig(**kwargs)


@pytest.mark.parametrize("fps", [0, -5.0, float("nan"), float("inf")])
def test_fps_must_be_positive_and_finite(fps: float) -> None:
    with pytest.raises(ValueError, match="fps"):
        FusedTracker(fps=fps)


def test_config_must_be_a_fused_tracker_config() -> None:
    with pytest.raises(TypeError, match="FusedTrackerConfig"):
        FusedTracker(TaoTrackerConfig())  # type: ignore[arg-type]


def test_bad_update_raises_and_leaves_the_tracker_usable() -> None:
    """``update`` raises ``ValueError`` for a backwards ``frame_index``, missing embeddings or a
    changed ``D``; the tracker is unchanged (it goes on exactly like one that never saw them)."""
    good = [dets([box(0), box(100)]), dets([box(2), box(101)]), dets([box(4), box(102)])]
    reference = FusedTracker()
    expected = [ids(reference.update(good[0], 0)), ids(reference.update(good[1], 5)), ids(reference.update(good[2], 6))]
    tracker = FusedTracker()
    out = [ids(tracker.update(good[0], 0)), ids(tracker.update(good[1], 5))]
    bad = [
        (good[2], 3, "backwards"),
        (Detections(boxes=[box(4)], scores=[0.9]), 6, "embeddings"),
        (Detections(boxes=[box(4)], scores=[0.9], embeddings=torch.ones(1, D + 1)), 6, "dimension"),
        (good[2], -1, "frame_index"),
    ]
    for frame, index, message in bad:
        with pytest.raises(ValueError, match=message):
            tracker.update(frame, index)
    out.append(ids(tracker.update(good[2], 6)))
    assert out == expected == [[0, 1], [0, 1], [0, 1]]


def test_describe_names_fps_and_main_settings() -> None:
    text = FusedTracker(fps=12.5).describe()
    assert text.startswith("fused tracker") and "12.5 fps" in text
    for part in ("confident >= 0.4", "weak >= 0.1", "match >= 0.3", "re-id cosine >= 0.95", "lost 1.5 s", "re-id memory 30 s"):
        assert part in text, part
    assert "camera motion off" in text and "class-aware" not in text
    custom = FusedTracker(FusedTrackerConfig(cmc="ecc", class_aware=True, reid_seconds=60), fps=25).describe()
    assert "25 fps" in custom and "camera motion ecc" in custom and "class-aware" in custom and "re-id memory 60 s" in custom


# -- 10. frame-rate aware motion weight ----------------------------------------------------------

A0, B0 = [100.0, 0.0, 140.0, 40.0], [130.0, 0.0, 170.0, 40.0]
A1, B1 = [125.0, 0.0, 165.0, 40.0], [105.0, 0.0, 145.0, 40.0]  # A moved 25 px right, B 25 px left


@pytest.mark.parametrize(
    "fps, motion_weight, expected",
    [(2, 0.8, [0, 1]), (2, 1.0, [1, 0]), (30, 0.8, [1, 0])],
    ids=["2fps: appearance decides", "2fps motion_weight=1: swapped", "30fps: motion decides"],
)
def test_low_frame_rate_lets_appearance_decide(fps: float, motion_weight: float, expected) -> None:
    """Rule 4 (the motion weight falls with the seconds since a track's last match, so at low
    frame rate appearance counts more).

    Two objects of distinct looks (``E[0]``, ``E[1]``) cross: by overlap each new box belongs to
    the other track (IoU 0.78 against 0.23). At 2 fps the motion weight is 0.57 and appearance
    (1 against 0) outweighs the overlap: ids follow the looks. With ``motion_weight=1`` (0.71 at
    2 fps) or at 30 fps (0.78) the overlap wins and they swap.
    """
    assert iou(A1, B0) == pytest.approx(35 / 45) and iou(A1, A0) == pytest.approx(15 / 65)
    assert iou(B1, A0) == pytest.approx(35 / 45) and iou(B1, B0) == pytest.approx(15 / 65)
    tracker = FusedTracker(FusedTrackerConfig(motion_weight=motion_weight), fps=fps)
    assert ids(tracker.update(dets([A0, B0]), 0)) == [0, 1]
    assert ids(tracker.update(dets([A1, B1]), 1)) == expected
