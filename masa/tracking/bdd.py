"""``MasaBDDTracker``: the authors' QDTrack-style tracker used by all their BDD100K test configs.

Per non-empty frame (notes §3.2, authors' ``masa_bdd_tracker.py``):

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

from masa.structures import Detections, Tracks
from masa.tracking.memory import (
    BackdropFrame,
    TrackBank,
    TrackMemory,
    check_finite,
    check_frame_input,
    check_int,
    start_and_remember,
    tracks_from_rows,
)
from masa.tracking.similarity import (
    bisoftmax_scores,
    cosine_scores,
    greedy_assign,
    overlaps_earlier,
    softmax_scores,
)

__all__ = ["BddTrackerConfig", "MasaBDDTracker"]

MatchMetric = Literal["bisoftmax", "softmax", "cosine"]

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
        for name in (
            "init_score_thresh",
            "obj_score_thresh",
            "match_score_thresh",
            "suppress_conf_thresh",
            "backdrop_iou_thresh",
            "duplicate_iou_thresh",
        ):
            check_finite(name, getattr(self, name))
        if self.match_score_thresh < 0:
            # A track taken by a detection has its score zeroed for the others: with a negative
            # threshold that zero would still match and hand the same id out twice.
            raise ValueError(f"match_score_thresh must be >= 0, got {self.match_score_thresh}")
        check_int("memory_frames", self.memory_frames, 1)
        check_int("backdrop_frames", self.backdrop_frames, 0)
        check_finite("momentum", self.momentum)
        if not 0 < self.momentum <= 1:
            raise ValueError(f"momentum (weight of the new embedding) must be in (0, 1], got {self.momentum}")
        if not isinstance(self.class_aware, bool):
            raise ValueError(f"class_aware must be a bool, got {self.class_aware!r}")
        if self.match_metric not in _METRICS:
            raise ValueError(f"match_metric must be one of {sorted(_METRICS)}, got {self.match_metric!r}")

    @classmethod
    def bdd_benchmark(cls) -> BddTrackerConfig:
        """The authors' BDD100K MOT/MOTS test configs: init 0.5, obj 0.3, match 0.6, rest default."""
        return cls(init_score_thresh=0.5, obj_score_thresh=0.3, match_score_thresh=0.6)


class MasaBDDTracker:
    """Online appearance tracker with backdrops: the authors' ``MasaBDDTracker`` (module docstring).

    Use one instance per video; :meth:`reset` starts a new one. Instances share no state.
    """

    def __init__(self, config: BddTrackerConfig = BddTrackerConfig()) -> None:
        if not isinstance(config, BddTrackerConfig):
            raise TypeError(f"config must be a BddTrackerConfig, got {type(config).__name__}")
        self.config = config
        self._score_fn = _METRICS[config.match_metric]
        self.reset()

    def reset(self) -> None:
        """Forget every track and backdrop, restart ids at 0 and accept any ``frame_index`` again."""
        self._bank = TrackBank()
        self._backdrops: list[BackdropFrame] = []  # newest first
        self._next_id = 0
        self._last_frame_index: int | None = None
        self._embedding_dim: int | None = None

    @property
    def num_tracks(self) -> int:
        """Number of ids handed out since the last reset (the next new track gets this id)."""
        return self._next_id

    @property
    def memory(self) -> TrackMemory:
        """A read-only copy of the live tracks (ids, boxes, labels, scores, embeddings, last frames)."""
        return self._bank.snapshot()

    @property
    def backdrops(self) -> tuple[BackdropFrame, ...]:
        """The kept backdrop frames, newest first (at most ``backdrop_frames``; entries may be empty)."""
        return tuple(self._backdrops)

    def update(self, detections: Detections, frame_index: int) -> Tracks:
        """Associate one frame's detections with the tracks; return the rows that got an id.

        Args:
            detections: ``N`` detections of the frame: boxes ``float32[N, 4]`` xyxy in
                original-image pixels, scores, labels and ``embeddings float32[N, D]``
                (required unless ``N == 0``).
            frame_index: 0-based index of the frame; non-decreasing within a video.

        Returns:
            ``Tracks`` with the input rows that got an id (masks, embeddings and ``data`` carried
            over), sorted by ``det_index`` (the input row); ids are unique. Suppressed (``-2``)
            and unmatched rows are not returned.

        Raises:
            ValueError: missing/non-finite embeddings, a changed embedding dimension, or a
                ``frame_index`` that is negative or goes backwards.
        """
        cfg = self.config
        frame, embeds = check_frame_input(
            detections, frame_index, last_frame_index=self._last_frame_index, embedding_dim=self._embedding_dim
        )
        self._last_frame_index = frame
        empty_rows = torch.zeros(0, dtype=torch.int64)
        if len(detections) == 0:
            return tracks_from_rows(detections, empty_rows, empty_rows)  # memory and backdrops untouched
        assert embeds is not None
        self._embedding_dim = int(embeds.shape[1])
        device = detections.boxes.device
        self._bank.to(device)

        rows = torch.sort(detections.scores, descending=True, stable=True).indices  # [N] input rows
        boxes, scores, labels = detections.boxes[rows], detections.scores[rows], detections.labels[rows]
        embeds = embeds[rows]

        # Duplicates: IoU with any earlier box (removed or not) above 0.3 (low score) / 0.7.
        iou_thresh = torch.full_like(scores, cfg.duplicate_iou_thresh)
        iou_thresh[scores < cfg.obj_score_thresh] = cfg.backdrop_iou_thresh
        keep = ~overlaps_earlier(boxes, iou_thresh)
        rows, boxes, scores, labels, embeds = rows[keep], boxes[keep], scores[keep], labels[keep], embeds[keep]

        ids = torch.full((len(rows),), -1, dtype=torch.int64, device=device)
        bank = self._bank
        if len(bank) > 0:  # with no live track, backdrop columns alone could never give an id
            assert bank.embeddings is not None
            memo_embeds = torch.cat([bank.embeddings] + [b.embeddings.to(device) for b in self._backdrops])
            memo_labels = torch.cat([bank.labels] + [b.labels.to(device) for b in self._backdrops])
            num_backdrops = len(memo_labels) - len(bank)
            memo_ids = torch.cat([bank.ids, torch.full((num_backdrops,), -1, dtype=torch.int64, device=device)])
            match = self._score_fn(embeds, memo_embeds)  # [N, M + B]
            if cfg.class_aware:
                match = match * (labels[:, None] == memo_labels[None, :])
            ids = greedy_assign(
                match,
                scores,
                memo_ids,
                match_thresh=cfg.match_score_thresh,
                obj_score_thresh=cfg.obj_score_thresh,
                suppress_conf_thresh=cfg.suppress_conf_thresh,
            )

        tracked, self._next_id = start_and_remember(
            bank,
            ids,
            scores,
            boxes,
            labels,
            embeds,
            next_id=self._next_id,
            init_score_thresh=cfg.init_score_thresh,
            frame_index=frame,
            momentum=cfg.momentum,
            memory_frames=cfg.memory_frames,
        )
        self._push_backdrops(ids, boxes, labels, embeds, frame)
        return tracks_from_rows(detections, rows[tracked], ids[tracked])

    def _push_backdrops(self, ids: Tensor, boxes: Tensor, labels: Tensor, embeds: Tensor, frame: int) -> None:
        """Keep this frame's ``-1`` rows that overlap no earlier box (any row) by more than
        ``backdrop_iou_thresh``; push them (even none) in front and keep ``backdrop_frames`` frames."""
        iou_thresh = torch.full((len(ids),), math.inf, device=boxes.device)
        iou_thresh[ids == -1] = self.config.backdrop_iou_thresh
        keep = (ids == -1) & ~overlaps_earlier(boxes, iou_thresh)
        self._backdrops.insert(
            0, BackdropFrame(frame_index=frame, boxes=boxes[keep], labels=labels[keep], embeddings=embeds[keep])
        )
        del self._backdrops[self.config.backdrop_frames :]
