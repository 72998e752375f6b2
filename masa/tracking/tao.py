"""``MasaTaoTracker``: the authors' tracker for the demos, TAO and open-vocabulary runs.

Per non-empty frame (authors' ``masa_tao_tracker.py``; ``docs/tracker.md``). Steps 1, 5 and 6 are
the shared frame loop of :class:`~masa.tracking.base.OnlineTracker`; steps 2-4 are
:meth:`MasaTaoTracker._associate`.

1. stable sort by score, descending (ties keep input order);
2. drop detections with a negative label, and *distractors*: a detection with
   ``score < distractor_score_thresh`` whose IoU with any earlier (higher-scored) box, removed or
   not, is ``> distractor_iou_thresh``;
3. if tracks exist: ``S = (bisoftmax + cosine) / 2`` on raw dot products (Eq. 2 of the paper),
   over *all* remaining detections (low-score ones too), optionally times the centre-distance gate;
4. greedy assignment in score order: a detection takes its best track when
   ``conf > match_score_thresh`` and ``score > obj_score_thresh``; the track's column is then zeroed
   for every other detection;
5. unmatched detections with ``score > init_score_thresh`` start tracks, ids from the per-instance
   counter in score order;
6. matched and new tracks store box, label, score, frame and the momentum-averaged embedding
   ``(1 - m) * old + m * new``; tracks with ``frame_index - last_frame >= memory_frames`` expire.

An empty frame returns at once: no memory update, no expiry.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from masa.tracking.base import FrameRows, OnlineTracker
from masa.tracking.similarity import bisoftmax_cosine_scores, center_distance_gate, greedy_assign, overlaps_earlier
from masa.tracking.validation import check_finite, check_tracker_config

__all__ = ["TaoTrackerConfig", "MasaTaoTracker"]


@dataclass(frozen=True)
class TaoTrackerConfig:
    """Settings of :class:`MasaTaoTracker`. Defaults are the constructor defaults of the authors'
    ``MasaTaoTracker``; :meth:`plug_and_play` and :meth:`tao_benchmark` are their configs.

    All score thresholds are strict lower bounds (``score > thresh``) except the distractor one.

    Attributes:
        init_score_thresh: an unmatched detection starts a new track when its score is above this
            (``init_score_thr``, default 0.8).
        obj_score_thresh: a detection may take an existing track only when its score is above this
            (``obj_score_thr``, default 0.5).
        match_score_thresh: minimum match score (strictly above) to continue a track
            (``match_score_thr``, default 0.5); must be >= 0.
        memory_frames: a track is forgotten when ``frame_index - last_frame >= memory_frames``
            (``memo_tracklet_frames``, default 10).
        momentum: weight of the *new* embedding in ``(1 - m) * old + m * new``
            (``memo_momentum``, default 0.8).
        distractor_score_thresh: detections scored below this are distractor candidates
            (``distractor_score_thr``, default 0.5).
        distractor_iou_thresh: a candidate is dropped when its IoU with an earlier box is above
            this (``distractor_nms_thr``, default 0.3).
        max_center_distance: radius in pixels of the centre-distance gate; ``None`` turns it off
            (the authors' ``max_distance=-1``, the default).
        fps: frame rate assumed by the gate only: ``growth_factor = fps / 6`` and
            ``smoothing = 100 / fps`` (default 1).
    """

    init_score_thresh: float = 0.8
    obj_score_thresh: float = 0.5
    match_score_thresh: float = 0.5
    memory_frames: int = 10
    momentum: float = 0.8
    distractor_score_thresh: float = 0.5
    distractor_iou_thresh: float = 0.3
    max_center_distance: float | None = None
    fps: float = 1.0

    def __post_init__(self) -> None:
        check_tracker_config(self, ("distractor_score_thresh", "distractor_iou_thresh"))
        check_finite("fps", self.fps)
        if self.fps <= 0:
            raise ValueError(f"fps must be > 0, got {self.fps}")
        if self.max_center_distance is not None:
            check_finite("max_center_distance", self.max_center_distance)
            if self.max_center_distance <= 0:
                raise ValueError(
                    f"max_center_distance must be > 0 pixels, or None to turn the gate off "
                    f"(the authors' -1), got {self.max_center_distance}"
                )

    @property
    def growth_factor(self) -> float:
        """``fps / 6``: the gate's radius grows as ``exp(frame_gap / growth_factor)``."""
        return self.fps / 6

    @property
    def distance_smoothing(self) -> float:
        """``100 / fps``: beyond the radius the gate decays as ``exp(-excess / distance_smoothing)``."""
        return 100 / self.fps

    @classmethod
    def plug_and_play(cls) -> TaoTrackerConfig:
        """The demo / plug-and-play configs (``masa_gdino_swinb_inference.py``, ``*_plug_and_play.py``):
        init 0.1, obj 0.01, match 0.5, memory 10, momentum 0.8, distance gate 100 px at 30 fps."""
        return cls(
            init_score_thresh=0.1,
            obj_score_thresh=0.01,
            match_score_thresh=0.5,
            memory_frames=10,
            momentum=0.8,
            max_center_distance=100.0,
            fps=30.0,
        )

    @classmethod
    def tao_benchmark(cls) -> TaoTrackerConfig:
        """The TAO TETA / open-vocabulary test configs: init 1e-4, obj 1e-4, match 0.5, memory 10,
        momentum 0.8, no distance gate, fps 1."""
        return cls(
            init_score_thresh=1e-4,
            obj_score_thresh=1e-4,
            match_score_thresh=0.5,
            memory_frames=10,
            momentum=0.8,
            max_center_distance=None,
            fps=1.0,
        )


class MasaTaoTracker(OnlineTracker[TaoTrackerConfig]):
    """Online appearance tracker: the authors' ``MasaTaoTracker`` (rules in the module docstring).

    Use one instance per video; :meth:`reset` starts a new one. Instances share no state. The
    frame loop (validation, empty frames, new ids, memory update, expiry, output) is
    :class:`~masa.tracking.base.OnlineTracker`'s; this class adds the TAO rules in
    :meth:`_associate`. Negative labels are dropped; frame gaps age the tracks and widen the
    distance gate.

    Example::

        tracker = MasaTaoTracker(TaoTrackerConfig.plug_and_play())
        for frame_index, dets in enumerate(frames):   # dets.embeddings: float32[N, D]
            tracks = tracker.update(dets, frame_index)

    The authors' ``with_cats`` flag is stored but never read by this tracker, so it has no
    equivalent here: matching is class-agnostic.
    """

    config_type = TaoTrackerConfig

    def __init__(self, config: TaoTrackerConfig = TaoTrackerConfig()) -> None:
        super().__init__(config)

    def _associate(self, rows: FrameRows, frame_index: int) -> tuple[FrameRows, Tensor]:
        """Steps 2-4 of the module docstring on the score-sorted rows; returns kept rows and ids."""
        cfg = self.config
        # Distractors: low-score boxes overlapping any earlier box (removed or not); negative labels.
        iou_thresh = torch.full_like(rows.scores, math.inf)
        iou_thresh[rows.scores < cfg.distractor_score_thresh] = cfg.distractor_iou_thresh
        rows = rows.select((rows.labels >= 0) & ~overlaps_earlier(rows.boxes, iou_thresh))

        bank = self._bank
        if len(rows) == 0 or len(bank) == 0:
            return rows, rows.unmatched_ids()
        match = bisoftmax_cosine_scores(rows.embeddings, bank.embeddings)  # [K, M]
        if cfg.max_center_distance is not None:
            match = match * center_distance_gate(
                rows.boxes,
                bank.boxes,
                (frame_index - bank.last_frames).abs(),
                max_distance=cfg.max_center_distance,
                growth_factor=cfg.growth_factor,
                smoothing=cfg.distance_smoothing,
            )
        ids = greedy_assign(
            match,
            rows.scores,
            bank.ids,
            match_thresh=cfg.match_score_thresh,
            obj_score_thresh=cfg.obj_score_thresh,
        )
        return rows, ids
