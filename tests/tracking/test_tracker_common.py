"""Rules both trackers share, checked on hand-made frames with tiny (D=4) embeddings.

Unless a test says otherwise, boxes are 10x10 squares 100 px apart (no overlaps) and the configs
are the authors' defaults (init 0.8, obj 0.5, match 0.5, memory 10 frames, momentum 0.8).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from masa.structures import Detections, Tracks
from masa.tracking import BddTrackerConfig, MasaBDDTracker, MasaTaoTracker, TaoTrackerConfig

Tracker = MasaTaoTracker | MasaBDDTracker


def emb(i: int, scale: float = 3.0) -> list[float]:
    """One-hot D=4 embedding times ``scale``."""
    v = [0.0] * 4
    v[i] = scale
    return v


def dets(embeds: list[list[float]], scores: list[float], boxes: list[list[float]] | None = None, **kw) -> Detections:
    n = len(scores)
    if boxes is None:
        boxes = [[100.0 * i, 0.0, 100.0 * i + 10, 10.0] for i in range(n)]
    return Detections(boxes=boxes, scores=scores, embeddings=torch.tensor(embeds).reshape(n, 4), **kw)


TRACKERS: dict[str, Callable[..., Tracker]] = {
    "tao": lambda **kw: MasaTaoTracker(TaoTrackerConfig(**kw)),
    "bdd": lambda **kw: MasaBDDTracker(BddTrackerConfig(**kw)),
}


@pytest.fixture(params=sorted(TRACKERS))
def make(request: pytest.FixtureRequest) -> Callable[..., Tracker]:
    return TRACKERS[request.param]


def ids_of(tracks: Tracks) -> list[int]:
    return tracks.ids.tolist()


def test_init_threshold_is_strict(make) -> None:
    tracker = make()
    assert ids_of(tracker.update(dets([emb(0)], [0.8]), 0)) == []
    assert tracker.num_tracks == 0
    assert ids_of(tracker.update(dets([emb(0)], [0.81]), 1)) == [0]


def test_obj_threshold_is_strict(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    # Same appearance but score 0.5: may not continue the track (and is below init: no new track).
    assert ids_of(tracker.update(dets([emb(0)], [0.5]), 1)) == []
    assert ids_of(tracker.update(dets([emb(0)], [0.51]), 2)) == [0]


def test_a_track_is_taken_by_one_detection_only(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    # Both look exactly like track 0; the first (higher score) takes it, its column is zeroed for
    # the second, which becomes a new track (0.85 > init 0.8).
    assert ids_of(tracker.update(dets([emb(0), emb(0)], [0.9, 0.85]), 1)) == [0, 1]


def test_higher_score_has_priority(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    out = tracker.update(dets([emb(0), emb(0)], [0.85, 0.9]), 1)
    assert out.det_index.tolist() == [0, 1]
    assert ids_of(out) == [1, 0]


def test_equal_scores_keep_input_order(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert ids_of(tracker.update(dets([emb(0), emb(0)], [0.9, 0.9]), 1)) == [0, 1]
    # 64 new tracks with equal scores: ids follow input order (an unstable sort would shuffle them).
    tracker = make()
    n = 64
    boxes = [[20.0 * i, 0.0, 20.0 * i + 10, 10.0] for i in range(n)]
    out = tracker.update(dets([emb(i % 4) for i in range(n)], [0.9] * n, boxes), 0)
    assert ids_of(out) == list(range(n))


def test_low_score_detections_take_part_in_the_normalisation(make) -> None:
    # A 0.3 detection that looks like the track halves the column softmax of the 0.9 one:
    # TAO: (bisoftmax 0.75 + cosine 1) / 2 = 0.875 < 0.9; BDD: bisoftmax 0.75 < 0.8.
    # Scored alone, the 0.9 detection would reach 1.0 and continue track 0.
    thresh = 0.9 if make is TRACKERS["tao"] else 0.8
    tracker = make(match_score_thresh=thresh)
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert ids_of(tracker.update(dets([emb(0), emb(0)], [0.9, 0.3]), 1)) == [1]
    tracker = make(match_score_thresh=thresh)
    tracker.update(dets([emb(0)], [0.9]), 0)
    assert ids_of(tracker.update(dets([emb(0)], [0.9]), 1)) == [0]


def test_momentum_update_weights_the_new_embedding_by_0_8(make) -> None:
    tracker = make()
    tracker.update(dets([[1.0, 0, 0, 0]], [0.9]), 0)
    out = tracker.update(
        dets([[0.6, 0.8, 0, 0]], [0.85], boxes=[[1.0, 2.0, 11.0, 12.0]], labels=[3]), 4
    )  # cos 0.6: TAO score (1 + 0.6) / 2 = 0.8, BDD bisoftmax 1
    assert ids_of(out) == [0]
    memory = tracker.memory
    torch.testing.assert_close(memory.embeddings, torch.tensor([[0.2 * 1 + 0.8 * 0.6, 0.8 * 0.8, 0.0, 0.0]]))
    torch.testing.assert_close(memory.boxes, torch.tensor([[1.0, 2.0, 11.0, 12.0]]))
    torch.testing.assert_close(memory.scores, torch.tensor([0.85]))
    assert memory.labels.tolist() == [3]
    assert memory.last_frames.tolist() == [4]
    # The output carries the detection's own embedding, not the averaged one.
    torch.testing.assert_close(out.embeddings, torch.tensor([[0.6, 0.8, 0.0, 0.0]]))


def test_expiry_at_exactly_memory_frames(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    unrelated = dets([emb(1)], [0.3])  # non-empty frame, no new track
    tracker.update(unrelated, 9)
    assert tracker.memory.ids.tolist() == [0]  # 9 - 0 < 10
    tracker.update(unrelated, 10)
    assert tracker.memory.ids.tolist() == []  # 10 - 0 >= 10
    assert ids_of(tracker.update(dets([emb(0)], [0.9]), 11)) == [1]


def test_expiry_runs_after_matching(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    # At frame 10 the track is 10 frames old but still in memory while this frame is matched.
    assert ids_of(tracker.update(dets([emb(0)], [0.9]), 10)) == [0]
    assert tracker.memory.last_frames.tolist() == [10]


def test_empty_frames_change_nothing(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0)], [0.9]), 0)
    for frame in range(1, 31):
        out = tracker.update(Detections.empty(embedding_dim=4), frame)
        assert len(out) == 0 and isinstance(out, Tracks)
    out = tracker.update(Detections(boxes=torch.zeros(0, 4)), 31)  # no embeddings needed when empty
    assert len(out) == 0
    assert tracker.memory.ids.tolist() == [0] and tracker.memory.last_frames.tolist() == [0]
    assert ids_of(tracker.update(dets([emb(0)], [0.9]), 32)) == [0]


def test_reset_restarts_ids_and_clears_memory(make) -> None:
    tracker = make()
    tracker.update(dets([emb(0), emb(1)], [0.9, 0.9]), 5)
    assert tracker.num_tracks == 2
    tracker.reset()
    assert tracker.num_tracks == 0 and len(tracker.memory) == 0
    # frame 0 is accepted again, and a different embedding dimension too
    out = tracker.update(Detections(boxes=[[0, 0, 10, 10]], scores=[0.9], embeddings=torch.ones(1, 8)), 0)
    assert ids_of(out) == [0]


def test_two_instances_are_independent(make) -> None:
    a, b = make(), make()
    assert ids_of(a.update(dets([emb(0), emb(1)], [0.9, 0.9]), 0)) == [0, 1]
    assert ids_of(b.update(dets([emb(2)], [0.9]), 0)) == [0]
    a.reset()
    assert ids_of(b.update(dets([emb(2), emb(3)], [0.9, 0.9]), 1)) == [0, 1]
    assert ids_of(a.update(dets([emb(3)], [0.9]), 3)) == [0]


def test_output_maps_back_to_input_rows_with_pass_through_fields(make) -> None:
    tracker = make()
    masks = torch.zeros(4, 2, 3, dtype=torch.bool)
    for i in range(4):
        masks[i].view(-1)[i] = True
    detections = dets(
        [emb(i) for i in range(4)],
        [0.3, 0.9, 0.95, 0.85],
        masks=masks,
        labels=[4, 5, 6, 7],
        data={"name": ["a", "b", "c", "d"], "arr": np.arange(4) * 10, "t": torch.arange(4) + 100},
    )
    out = tracker.update(detections, 0)
    # Rows 1, 2, 3 start tracks in score order (row 2 first); output is in input order.
    assert out.det_index.tolist() == [1, 2, 3]
    assert ids_of(out) == [1, 0, 2]
    assert torch.equal(out.boxes, detections.boxes[1:])
    assert torch.equal(out.scores, detections.scores[1:])
    assert out.labels.tolist() == [5, 6, 7]
    assert torch.equal(out.masks, masks[1:])
    assert torch.equal(out.embeddings, detections.embeddings[1:])
    assert out.data["name"] == ["b", "c", "d"]
    assert out.data["arr"].tolist() == [10, 20, 30]
    assert out.data["t"].tolist() == [101, 102, 103]


def test_error_messages(make) -> None:
    tracker = make()
    with pytest.raises(ValueError, match="no embeddings"):
        tracker.update(Detections(boxes=[[0, 0, 10, 10]]), 0)
    tracker.update(dets([emb(0)], [0.9]), 3)
    with pytest.raises(ValueError, match="dimension changed"):
        tracker.update(Detections(boxes=[[0, 0, 10, 10]], embeddings=torch.ones(1, 8)), 4)
    with pytest.raises(ValueError, match="went backwards"):
        tracker.update(dets([emb(0)], [0.9]), 2)
    with pytest.raises(ValueError, match=">= 0"):
        tracker.update(dets([emb(0)], [0.9]), -1)
    with pytest.raises(ValueError, match="integer"):
        tracker.update(dets([emb(0)], [0.9]), 4.0)
    with pytest.raises(ValueError, match="not finite"):
        tracker.update(dets([[float("nan"), 0, 0, 0]], [0.9]), 4)
    with pytest.raises(TypeError, match="Detections"):
        tracker.update(torch.zeros(1, 4), 4)
    # Failed calls left the state alone: same frame index still accepted, track 0 continued.
    assert ids_of(tracker.update(dets([emb(0)], [0.9]), 3)) == [0]
    tracker.update(Detections.empty(), 7)
    with pytest.raises(ValueError, match="went backwards"):  # empty frames count too
        tracker.update(dets([emb(0)], [0.9]), 6)


@pytest.mark.parametrize(
    "config",
    [
        TaoTrackerConfig(),
        TaoTrackerConfig.plug_and_play(),
        BddTrackerConfig.bdd_benchmark(),
        BddTrackerConfig(match_metric="softmax", class_aware=True, backdrop_frames=3),
        BddTrackerConfig(match_metric="cosine", init_score_thresh=0.2),
    ],
    ids=lambda c: type(c).__name__,
)
def test_random_videos_keep_the_output_contract(config) -> None:
    tracker = MasaTaoTracker(config) if isinstance(config, TaoTrackerConfig) else MasaBDDTracker(config)
    g = torch.Generator().manual_seed(0)
    objects = torch.randn(12, 16, generator=g) * 2
    centres = torch.rand(12, 2, generator=g) * 400
    frame = 0
    for _ in range(30):
        frame += int(torch.randint(1, 3, (1,), generator=g))
        n = int(torch.randint(0, 15, (1,), generator=g))
        which = torch.randint(0, 12, (n,), generator=g)
        centres += torch.randn(12, 2, generator=g) * 5
        xy = centres[which] + torch.randn(n, 2, generator=g) * 3
        boxes = torch.cat([xy - 15, xy + 15], dim=1)
        detections = Detections(
            boxes=boxes,
            scores=torch.rand(n, generator=g),
            labels=torch.randint(0, 3, (n,), generator=g),
            embeddings=objects[which] + torch.randn(n, 16, generator=g) * 0.5,
            data={"row": list(range(n))},
        )
        out = tracker.update(detections, frame)
        ids = out.ids.tolist()
        assert len(set(ids)) == len(ids), "ids unique within a frame"
        assert all(0 <= i < tracker.num_tracks for i in ids)
        rows = out.det_index.tolist()
        assert rows == sorted(set(rows)) and all(0 <= r < n for r in rows), "subset of input rows, input order"
        assert out.data["row"] == rows
        assert torch.equal(out.boxes, detections.boxes[out.det_index])
        memory = tracker.memory
        assert memory.ids.tolist() == sorted(set(memory.ids.tolist()))
        assert set(ids) <= set(memory.ids.tolist())
        if n > 0:  # empty frames skip expiry
            assert bool((frame - memory.last_frames < config.memory_frames).all())
