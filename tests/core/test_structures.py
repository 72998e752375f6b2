"""Detections / Tracks: validation, indexing, concatenation, empties, interop."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masa.structures import Detections, Tracks


def make(n: int = 3) -> Detections:
    boxes = torch.tensor([[0, 0, 10, 10], [5, 5, 20, 30], [1, 2, 3, 4]], dtype=torch.float32)[:n]
    return Detections(
        boxes=boxes,
        scores=torch.linspace(0.9, 0.1, 3)[:n],
        labels=torch.arange(n),
        embeddings=torch.randn(n, 8),
        masks=torch.zeros(n, 40, 30, dtype=torch.bool),
        data={"line": np.arange(n) + 10, "name": [f"d{i}" for i in range(n)]},
    )


def test_defaults_and_dtypes():
    dets = Detections(boxes=[[0, 0, 1, 1]])
    assert dets.boxes.dtype == torch.float32
    assert dets.scores.tolist() == [1.0] and dets.labels.tolist() == [0]
    assert dets.labels.dtype == torch.int64
    assert len(dets) == 1 and not dets.is_empty()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"boxes": [[0, 0, 1]]}, "expected shape \\[N, 4\\]"),
        ({"boxes": [[0, 0, float("nan"), 1]]}, "not finite"),
        ({"boxes": [[5, 0, 1, 1]]}, "x2 < x1"),
        ({"boxes": [[0, 0, 1, 1]], "scores": [0.5, 0.2]}, "scores: expected shape \\[1\\]"),
        ({"boxes": [[0, 0, 1, 1]], "scores": [float("inf")]}, "scores: row 0 is not finite"),
        ({"boxes": [[0, 0, 1, 1]], "embeddings": torch.zeros(2, 4)}, "embeddings: expected shape"),
        ({"boxes": [[0, 0, 1, 1]], "masks": torch.zeros(1, 4)}, "masks: expected shape"),
        ({"boxes": [[0, 0, 1, 1]], "data": {"x": [1, 2]}}, "data\\['x'\\]: expected 1 rows"),
    ],
)
def test_validation_messages(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Detections(**kwargs)


def test_data_column_type_checked():
    with pytest.raises(TypeError, match="data\\['x'\\]"):
        Detections(boxes=[[0, 0, 1, 1]], data={"x": 5})


def test_indexing_by_mask_indices_slice_int():
    dets = make()
    kept = dets[dets.scores > 0.4]
    assert len(kept) == 2 and kept.data["name"] == ["d0", "d1"]
    assert kept.data["line"].tolist() == [10, 11]
    picked = dets[[2, 0]]
    assert picked.data["name"] == ["d2", "d0"] and torch.equal(picked.boxes[1], dets.boxes[0])
    assert picked.masks.shape == (2, 40, 30) and picked.embeddings.shape == (2, 8)
    assert len(dets[1:]) == 2 and len(dets[-1]) == 1
    assert len(dets[torch.tensor([], dtype=torch.int64)]) == 0
    with pytest.raises(IndexError):
        dets[5]
    with pytest.raises(IndexError):
        dets[torch.tensor([True, False])]


def test_cat_and_empty():
    dets = make()
    both = Detections.cat([dets, dets[:1]])
    assert len(both) == 4 and both.data["name"][-1] == "d0" and both.data["line"].tolist() == [10, 11, 12, 10]
    empty = Detections.empty()
    assert len(empty) == 0 and empty.boxes.shape == (0, 4)
    assert Detections.cat([]).is_empty()
    with pytest.raises(ValueError, match="is set on some items and not on others"):
        Detections.cat([dets, Detections(boxes=[[0, 0, 1, 1]], data={"line": np.array([1]), "name": ["x"]})])
    assert Detections.empty(embedding_dim=16).embeddings.shape == (0, 16)


def test_tracks_map_back_to_input_rows():
    dets = make()
    tracks = Tracks.from_detections(dets[[0, 2]], ids=[7, 3], det_index=[0, 2])
    assert tracks.ids.tolist() == [7, 3] and tracks.det_index.tolist() == [0, 2]
    assert tracks.data["name"] == ["d0", "d2"]
    sub = tracks[tracks.ids > 5]
    assert sub.det_index.tolist() == [0] and sub.ids.tolist() == [7]
    with pytest.raises(ValueError, match="ids >= 0"):
        Tracks(boxes=[[0, 0, 1, 1]], ids=[-1])
    assert len(Tracks.cat([tracks, tracks])) == 4
    assert Tracks.empty().ids.shape == (0,)


def test_xywh_and_centers():
    dets = Detections(boxes=[[10, 20, 30, 60]])
    assert dets.xywh.tolist() == [[10, 20, 20, 40]]
    assert dets.centers.tolist() == [[20, 40]]


def test_supervision_round_trip():
    pytest.importorskip("supervision")
    from masa.interop import from_supervision, to_supervision

    dets = make()
    tracks = Tracks.from_detections(dets, ids=[1, 2, 3])
    sv_dets = to_supervision(tracks)
    assert sv_dets.tracker_id.tolist() == [1, 2, 3]
    assert sv_dets.data["det_index"].tolist() == [0, 1, 2]
    back = from_supervision(sv_dets)
    assert torch.allclose(back.boxes, dets.boxes) and back.embeddings.shape == (3, 8)
    assert back.masks.shape == (3, 40, 30)


def test_tracks_from_detection_rows_equals_indexing_then_wrapping():
    """The trackers' one-step output path gives what ``from_detections(dets[rows])`` gives."""
    dets = Detections(
        boxes=torch.tensor([[0.0, 0, 10, 10], [5, 5, 20, 30], [1, 2, 3, 4]]),
        scores=torch.tensor([0.9, 0.5, 0.1]),
        labels=torch.tensor([3, 1, 2]),
        masks=torch.zeros(3, 4, 5, dtype=torch.bool),
        embeddings=torch.randn(3, 8),
        data={"line": np.array([7, 8, 9]), "name": ["a", "b", "c"]},
    )
    rows, ids = torch.tensor([2, 0]), torch.tensor([5, 1])
    fast = Tracks.from_detection_rows(dets, rows, ids)
    slow = Tracks.from_detections(dets[rows], ids=ids, det_index=rows)
    for name in ("boxes", "scores", "labels", "masks", "embeddings", "ids", "det_index"):
        assert torch.equal(getattr(fast, name), getattr(slow, name)), name
    assert fast.data["line"].tolist() == [9, 7] and fast.data["name"] == ["c", "a"]
    with pytest.raises(ValueError, match="ids >= 0"):
        Tracks.from_detection_rows(dets, rows, torch.tensor([1, -1]))
    with pytest.raises(ValueError, match="Tracks.ids"):
        Tracks.from_detection_rows(dets, rows, torch.tensor([1]))
