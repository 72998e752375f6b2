"""``MasaBDDTracker``: the authors' QDTrack-style tracker used by all their BDD100K test configs.

Per non-empty frame (authors' ``masa_bdd_tracker.py``; ``docs/tracker.md``). Steps 1, 5 and the
bank part of 6 are the shared frame loop of :class:`~masa.tracking.base.OnlineTracker`; steps 2-4
are :meth:`MasaBDDTracker._associate` and the backdrop push is :meth:`MasaBDDTracker._finish_frame`.

1. stable sort by score, descending (ties keep input order);
2. duplicate removal: detection ``i`` is dropped when its IoU with any earlier box (removed or not)
   is above ``backdrop_iou_thresh`` (0.3) if ``score_i < obj_score_thresh``, else above
   ``duplicate_iou_thresh`` (0.7); labels are kept as they are (negative ones too);
3. if at least one track exists: scores against the memory = live tracks followed by the
   *backdrops* of the last ``backdrop_frames`` frames (newest first). Backdrops are extra columns:
   they take part in the softmax normalisation but can never be matched. ``match_metric`` picks
   bi-softmax (default), row softmax or cosine; ``class_aware`` multiplies by a same-label mask;
4. greedy assignment in score order: if the best column has ``conf > match_score_thresh`` and is a
   track, a detection with ``score > obj_score_thresh`` takes it (column zeroed for the others);
   a weaker one whose ``conf > suppress_conf_thresh`` becomes ``-2`` (suppressed: no new track, no
   backdrop, and the track stays available);
5. detections still at ``-1`` with ``score > init_score_thresh`` start tracks;
6. tracks are updated (momentum embedding, box, label, score, frame); the detections still at
   ``-1`` that do not overlap any earlier box by more than ``backdrop_iou_thresh`` become this
   frame's backdrops, pushed even when there are none (so older ones are pushed out); tracks
   with ``frame_index - last_frame >= memory_frames`` expire.

An empty frame returns at once: no memory update, no backdrop push, no expiry. The authors also
keep a per-track velocity (a running mean of box motion) that nothing reads; it is not kept here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from masa.tracking.backdrops import BackdropFrame
from masa.tracking.base import FrameRows, OnlineTracker
from masa.tracking.similarity import bisoftmax_scores, cosine_scores, greedy_assign, overlaps_earlier, softmax_scores
from masa.tracking.validation import check_int, check_tracker_config

__all__ = ["BddTrackerConfig", "MasaBDDTracker"]

MatchMetric = Literal["bisoftmax", "softmax", "cosine"]

# Score function of each ``match_metric`` value: (detections [K, D], memory [M, D]) -> [K, M].
_METRICS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "bisoftmax": bisoftmax_scores,
    "softmax": softmax_scores,
    "cosine": cosine_scores,
}


@dataclass(frozen=True)
class BddTrackerConfig:
    """Settings of :class:`MasaBDDTracker`. Defaults are the constructor defaults of the authors'
    ``MasaBDDTracker``; :meth:`bdd_benchmark` is their ``bdd_test`` config.

    All thresholds are strict lower bounds (``value > thresh``), except that duplicate removal
    uses the backdrop IoU for ``score < obj_score_thresh``.

    Attributes:
        init_score_thresh: an unmatched detection starts a new track when its score is above this
            (``init_score_thr``, default 0.8).
        obj_score_thresh: a detection may take a track only when its score is above this
            (``obj_score_thr``, default 0.5).
        match_score_thresh: minimum match score (strictly above) to act on the best column
            (``match_score_thr``, default 0.5); must be >= 0.
        memory_frames: a track is forgotten when ``frame_index - last_frame >= memory_frames``
            (``memo_tracklet_frames``, default 10).
        backdrop_frames: backdrops of this many latest non-empty frames are kept, ``0`` for none
            (``memo_backdrop_frames``, default 1).
        momentum: weight of the *new* embedding in ``(1 - m) * old + m * new``
            (``memo_momentum``, default 0.8).
        suppress_conf_thresh: a detection with ``score <= obj_score_thresh`` whose best track
            scores above this is suppressed (id ``-2``) (``nms_conf_thr``, default 0.5).
        backdrop_iou_thresh: IoU above which a low-score detection is a duplicate of an earlier
            box, and above which an unmatched detection is not kept as a backdrop
            (``nms_backdrop_iou_thr``, default 0.3).
        duplicate_iou_thresh: IoU above which a detection with ``score >= obj_score_thresh`` is a
            duplicate of an earlier box (``nms_class_iou_thr``, default 0.7).
        class_aware: only match detections and memory entries with the same label
            (``with_cats``, default False).
        match_metric: ``"bisoftmax"`` (default), ``"softmax"`` (row softmax) or ``"cosine"``,
            all on raw embeddings (``match_metric``).
    """

    init_score_thresh: float = 0.8
    obj_score_thresh: float = 0.5
    match_score_thresh: float = 0.5
    memory_frames: int = 10
    backdrop_frames: int = 1
    momentum: float = 0.8
    suppress_conf_thresh: float = 0.5
    backdrop_iou_thresh: float = 0.3
    duplicate_iou_thresh: float = 0.7
    class_aware: bool = False
    match_metric: MatchMetric = "bisoftmax"

    def __post_init__(self) -> None:
        check_tracker_config(self, ("suppress_conf_thresh", "backdrop_iou_thresh", "duplicate_iou_thresh"))
        check_int("backdrop_frames", self.backdrop_frames, 0)
        if not isinstance(self.class_aware, bool):
            raise ValueError(f"class_aware must be a bool, got {self.class_aware!r}")
        if self.match_metric not in _METRICS:
            raise ValueError(f"match_metric must be one of {sorted(_METRICS)}, got {self.match_metric!r}")

    @classmethod
    def bdd_benchmark(cls) -> BddTrackerConfig:
        """The authors' BDD100K MOT/MOTS test configs: init 0.5, obj 0.3, match 0.6, rest default."""
        return cls(init_score_thresh=0.5, obj_score_thresh=0.3, match_score_thresh=0.6)


class MasaBDDTracker(OnlineTracker[BddTrackerConfig]):
    """Online appearance tracker with backdrops: the authors' ``MasaBDDTracker`` (module docstring).

    Use one instance per video; :meth:`reset` starts a new one. Instances share no state. The
    frame loop (validation, empty frames, new ids, memory update, expiry, output) is
    :class:`~masa.tracking.base.OnlineTracker`'s; this class adds the BDD rules in
    :meth:`_associate` and the backdrop push in :meth:`_finish_frame`. Labels are kept as given
    (negative ones too); suppressed (``-2``) rows are not returned.
    """

    config_type = BddTrackerConfig

    def __init__(self, config: BddTrackerConfig = BddTrackerConfig()) -> None:
        super().__init__(config)

    def reset(self) -> None:
        """Forget every track and backdrop, restart ids at 0 and accept any ``frame_index`` and ``D`` again."""
        super().reset()
        self._backdrops: list[BackdropFrame] = []  # newest first

    @property
    def backdrops(self) -> tuple[BackdropFrame, ...]:
        """The kept backdrop frames, newest first (at most ``backdrop_frames``; entries may be empty)."""
        return tuple(self._backdrops)

    def _associate(self, rows: FrameRows, frame_index: int) -> tuple[FrameRows, Tensor]:
        """Steps 2-4 of the module docstring on the score-sorted rows; returns kept rows and ids."""
        cfg = self.config
        # Duplicates: IoU with any earlier box (removed or not) above 0.3 (low score) / 0.7.
        iou_thresh = torch.full_like(rows.scores, cfg.duplicate_iou_thresh)
        iou_thresh[rows.scores < cfg.obj_score_thresh] = cfg.backdrop_iou_thresh
        rows = rows.select(~overlaps_earlier(rows.boxes, iou_thresh))

        bank = self._bank
        if len(bank) == 0:  # with no live track, backdrop columns alone could never give an id
            return rows, rows.unmatched_ids()
        # Memory columns: the live tracks, then the backdrops (id -1: never matched), newest first.
        device = rows.boxes.device
        memo_embeds = torch.cat([bank.embeddings] + [b.embeddings.to(device) for b in self._backdrops])
        memo_labels = torch.cat([bank.labels] + [b.labels.to(device) for b in self._backdrops])
        num_backdrops = len(memo_labels) - len(bank)
        memo_ids = torch.cat([bank.ids, torch.full((num_backdrops,), -1, dtype=torch.int64, device=device)])
        match = _METRICS[cfg.match_metric](rows.embeddings, memo_embeds)  # [K, M + B]
        if cfg.class_aware:
            match = match * (rows.labels[:, None] == memo_labels[None, :])
        ids = greedy_assign(
            match,
            rows.scores,
            memo_ids,
            match_thresh=cfg.match_score_thresh,
            obj_score_thresh=cfg.obj_score_thresh,
            suppress_conf_thresh=cfg.suppress_conf_thresh,
        )
        return rows, ids

    def _finish_frame(self, rows: FrameRows, ids: Tensor, frame_index: int) -> None:
        """Step 6: keep this frame's ``-1`` rows that overlap no earlier row (any id) by more than
        ``backdrop_iou_thresh``; push them (even none) in front and keep ``backdrop_frames`` frames."""
        unmatched = ids == -1
        iou_thresh = torch.full((len(ids),), math.inf, device=rows.boxes.device)
        iou_thresh[unmatched] = self.config.backdrop_iou_thresh
        keep = unmatched & ~overlaps_earlier(rows.boxes, iou_thresh)
        backdrops = BackdropFrame(
            frame_index=frame_index, boxes=rows.boxes[keep], labels=rows.labels[keep], embeddings=rows.embeddings[keep]
        )
        self._backdrops.insert(0, backdrops)
        del self._backdrops[self.config.backdrop_frames :]
