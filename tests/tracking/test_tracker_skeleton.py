"""The shared frame loop (``OnlineTracker``), the track bank and the config checks, on their own.

The skeleton is driven here by a toy tracker whose hook never matches anything, so that every
id, memory row and expiry seen comes from the shared steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

from masa.structures import Detections
from masa.tracking import BddTrackerConfig, MasaBDDTracker, MasaTaoTracker, TaoTrackerConfig
from masa.tracking.base import FrameRows, OnlineTracker
from masa.tracking.track_bank import TrackBank
from masa.tracking.validation import check_tracker_config


@dataclass(frozen=True)
class ToyConfig:
    init_score_thresh: float = 0.5
    momentum: float = 0.8
    memory_frames: int = 3
    drop_below: float = 0.0  # the toy hook drops rows scoring below this


class ToyTracker(OnlineTracker[ToyConfig]):
    """Drops rows below ``drop_below``, never matches; records what the hooks saw."""

    config_type = ToyConfig

    def reset(self) -> None:
        super().reset()
        self.calls: list[tuple[str, int]] = []
        self.finished_ids: list[list[int]] = []

    def _associate(self, rows: FrameRows, frame_index: int) -> tuple[FrameRows, Tensor]:
        self.calls.append(("associate", frame_index))
        rows = rows.select(rows.scores >= self.config.drop_below)
        return rows, rows.unmatched_ids()

    def _finish_frame(self, rows: FrameRows, ids: Tensor, frame_index: int) -> None:
        self.calls.append(("finish", frame_index))
        self.finished_ids.append(ids.tolist())


def dets(scores: list[float], dim: int = 2) -> Detections:
    n = len(scores)
    boxes = [[10.0 * i, 0.0, 10.0 * i + 5, 5.0] for i in range(n)]
    return Detections(boxes=boxes, scores=scores, embeddings=torch.arange(n * dim, dtype=torch.float32).reshape(n, dim))


def test_both_trackers_run_the_shared_loop() -> None:
    for cls in (MasaTaoTracker, MasaBDDTracker):
        assert issubclass(cls, OnlineTracker)
        assert cls.update is OnlineTracker.update
    assert MasaTaoTracker.config_type is TaoTrackerConfig and MasaBDDTracker.config_type is BddTrackerConfig


def test_config_type_is_checked() -> None:
    with pytest.raises(TypeError, match="config must be a ToyConfig, got TaoTrackerConfig"):
        ToyTracker(TaoTrackerConfig())
    with pytest.raises(TypeError, match="config must be a TaoTrackerConfig, got BddTrackerConfig"):
        MasaTaoTracker(BddTrackerConfig())


def test_new_ids_in_score_order_above_the_init_threshold() -> None:
    tracker = ToyTracker(ToyConfig())
    out = tracker.update(dets([0.6, 0.5, 0.9, 0.7]), 0)
    # 0.5 is not above init 0.5; the others get 0, 1, 2 in score order, output in input order.
    assert out.det_index.tolist() == [0, 2, 3]
    assert out.ids.tolist() == [2, 0, 1]
    assert tracker.finished_ids == [[0, 1, 2, -1]]  # the hook sees the new ids, in row (score) order
    assert tracker.num_tracks == 3
    assert tracker.memory.ids.tolist() == [0, 1, 2]
    assert tracker.memory.last_frames.tolist() == [0, 0, 0]
    torch.testing.assert_close(tracker.memory.embeddings, torch.tensor([[4.0, 5.0], [6.0, 7.0], [0.0, 1.0]]))


def test_rows_dropped_by_the_hook_get_nothing() -> None:
    tracker = ToyTracker(ToyConfig(drop_below=0.8))
    out = tracker.update(dets([0.6, 0.9, 0.7]), 0)
    assert out.det_index.tolist() == [1] and out.ids.tolist() == [0]
    assert tracker.finished_ids == [[0]]


def test_empty_frames_skip_the_hooks_and_expiry() -> None:
    tracker = ToyTracker(ToyConfig(memory_frames=3))
    tracker.update(dets([0.9]), 0)
    out = tracker.update(Detections(boxes=torch.zeros(0, 4)), 10)
    assert len(out) == 0 and out.ids.dtype == torch.int64
    assert tracker.calls == [("associate", 0), ("finish", 0)]
    assert tracker.memory.ids.tolist() == [0]  # not expired: empty frames do not run expiry
    # A non-empty frame whose rows are all dropped still runs the loop, and so expiry.
    tracker.config = ToyConfig(memory_frames=3, drop_below=2.0)
    out = tracker.update(dets([0.9]), 10)
    assert len(out) == 0 and tracker.calls[-2:] == [("associate", 10), ("finish", 10)]
    assert tracker.memory.ids.tolist() == []


def test_reset_calls_the_subclass_reset_and_restarts_ids() -> None:
    tracker = ToyTracker(ToyConfig())
    tracker.update(dets([0.9, 0.9]), 4)
    tracker.reset()
    assert tracker.calls == [] and tracker.num_tracks == 0 and len(tracker.memory) == 0
    assert tracker.update(dets([0.9], dim=3), 0).ids.tolist() == [0]  # frame 0 and a new D accepted
    bdd = MasaBDDTracker()
    bdd.update(dets([0.3]), 0)
    assert len(bdd.backdrops) == 1
    bdd.reset()
    assert bdd.backdrops == ()


def test_frame_rows_sort_is_stable_and_select_keeps_order() -> None:
    d = dets([0.5, 0.9, 0.5, 0.7])
    rows = FrameRows.sorted_by_score(d, d.embeddings)
    assert rows.det_index.tolist() == [1, 3, 0, 2]
    assert torch.equal(rows.boxes, d.boxes[rows.det_index])
    assert torch.equal(rows.embeddings, d.embeddings[rows.det_index])
    kept = rows.select(torch.tensor([True, False, True, True]))
    assert kept.det_index.tolist() == [1, 0, 2] and len(kept) == 3
    assert kept.unmatched_ids().tolist() == [-1, -1, -1]


def test_track_bank_update_append_expire_snapshot() -> None:
    bank = TrackBank()
    assert len(bank) == 0 and bank.snapshot().embeddings.shape == (0, 0)

    def write(ids: list[int], embeds: list[list[float]], frame: int) -> None:
        k = len(ids)
        bank.update(
            torch.tensor(ids),
            torch.zeros(k, 4),
            torch.tensor(ids) * 10,
            torch.full((k,), 0.5),
            torch.tensor(embeds),
            frame_index=frame,
            momentum=0.25,
        )

    write([3, 1], [[3.0], [1.0]], 0)  # new ids in any order are stored ascending
    assert bank.ids.tolist() == [1, 3] and bank.embeddings.tolist() == [[1.0], [3.0]]
    write([5, 3], [[5.0], [7.0]], 2)  # 3 updated (0.75 * 3 + 0.25 * 7), 5 appended
    assert bank.ids.tolist() == [1, 3, 5]
    assert bank.embeddings.tolist() == [[1.0], [4.0], [5.0]]
    assert bank.labels.tolist() == [10, 30, 50] and bank.last_frames.tolist() == [0, 2, 2]
    with pytest.raises(AssertionError, match="larger"):
        write([2], [[0.0]], 3)
    snapshot = bank.snapshot()
    snapshot.ids[0] = 99  # a copy
    assert bank.ids.tolist() == [1, 3, 5]
    bank.expire(4, memory_frames=4)  # 4 - 0 >= 4: track 1 goes
    assert bank.ids.tolist() == [3, 5] and bank.embeddings.tolist() == [[4.0], [5.0]]
    bank.expire(6, memory_frames=4)
    assert len(bank) == 0 and bank.embeddings.shape == (0, 1)
    write([7], [[2.0]], 6)
    assert bank.ids.tolist() == [7] and bank.embeddings.tolist() == [[2.0]]


def test_update_never_aliases_user_tensors() -> None:
    tracker = ToyTracker(ToyConfig())
    d = dets([0.9])
    tracker.update(d, 0)
    d.embeddings.add_(100)
    assert tracker.memory.embeddings.tolist() == [[0.0, 1.0]]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"obj_score_thresh": float("inf")}, "obj_score_thresh must be a finite number"),
        ({"extra": True}, "extra must be a finite number"),
        ({"match_score_thresh": -1.0}, "match_score_thresh must be >= 0"),
        ({"memory_frames": True}, "memory_frames must be an integer >= 1"),
        ({"momentum": float("nan")}, "momentum must be a finite number"),
        ({"momentum": -0.5}, r"momentum \(weight of the new embedding\) must be in \(0, 1\]"),
    ],
)
def test_check_tracker_config(changes: dict, message: str) -> None:
    @dataclass
    class Config:
        init_score_thresh: float = 0.5
        obj_score_thresh: float = 0.5
        match_score_thresh: float = 0.5
        memory_frames: int = 10
        momentum: float = 0.8
        extra: float = 0.1

    check_tracker_config(Config(), ("extra",))
    with pytest.raises(ValueError, match=message):
        check_tracker_config(Config(**changes), ("extra",))
