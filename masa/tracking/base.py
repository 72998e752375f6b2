"""The frame loop both MASA trackers share, written once: :class:`OnlineTracker`.

Per ``update(detections, frame_index)`` call:

1. validate the call (:func:`~masa.tracking.validation.check_frame_input`);
2. an empty frame returns empty ``Tracks`` at once: no memory update, no expiry;
3. sort the detections by score, descending (stable: ties keep input order) into :class:`FrameRows`;
4. **hook** :meth:`OnlineTracker._associate`: the tracker's own algorithm drops rows and gives
   each remaining row an id (``>= 0``), ``-1`` (unmatched) or ``-2`` (suppressed);
5. unmatched rows scoring ``> init_score_thresh`` get new ids from the per-instance counter, in
   score order; every row with an id is written to the :class:`~masa.tracking.track_bank.TrackBank`
   (momentum update); tracks with ``frame_index - last_frame >= memory_frames`` expire;
6. **hook** :meth:`OnlineTracker._finish_frame` (default: nothing): per-frame state beyond the
   bank, e.g. the BDD tracker's backdrops;
7. return the input rows that got an id as ``Tracks``, in input order, ``det_index`` = input row.

A subclass sets :attr:`OnlineTracker.config_type` and implements ``_associate``; if it keeps
state beyond the bank it overrides :meth:`OnlineTracker.reset` (calling ``super().reset()``)
and ``_finish_frame``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

import torch
from torch import Tensor

from masa.structures import Detections, Tracks
from masa.tracking.track_bank import TrackBank, TrackMemory
from masa.tracking.validation import check_frame_input

__all__ = ["OnlineTracker", "FrameRows", "SharedConfig", "gather_tracks"]


class SharedConfig(Protocol):
    """The config fields :class:`OnlineTracker` itself reads (both tracker configs have them)."""

    @property
    def init_score_thresh(self) -> float: ...

    @property
    def momentum(self) -> float: ...

    @property
    def memory_frames(self) -> int: ...


ConfigT = TypeVar("ConfigT", bound=SharedConfig)


@dataclass(frozen=True, eq=False)
class FrameRows:
    """The current frame's candidate detections, sorted by descending score (``K`` rows).

    Attributes:
        det_index: ``int64[K]`` row of each candidate in the ``Detections`` given to ``update()``.
        boxes: ``float32[K, 4]`` xyxy, original-image pixels.
        scores: ``float32[K]``, non-increasing.
        labels: ``int64[K]``.
        embeddings: ``float32[K, D]``.
    """

    det_index: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    embeddings: Tensor

    @classmethod
    def sorted_by_score(cls, detections: Detections, embeddings: Tensor) -> FrameRows:
        """All ``N`` rows of ``detections`` (with ``embeddings float32[N, D]``), stable-sorted by score."""
        order = torch.sort(detections.scores, descending=True, stable=True).indices  # [N] input rows
        return cls(
            det_index=order,
            boxes=detections.boxes[order],
            scores=detections.scores[order],
            labels=detections.labels[order],
            embeddings=embeddings[order],
        )

    def __len__(self) -> int:
        return int(self.det_index.shape[0])

    def select(self, keep: Tensor) -> FrameRows:
        """The rows where ``keep`` (``bool[K]``) is true, order unchanged."""
        return FrameRows(
            det_index=self.det_index[keep],
            boxes=self.boxes[keep],
            scores=self.scores[keep],
            labels=self.labels[keep],
            embeddings=self.embeddings[keep],
        )

    def unmatched_ids(self) -> Tensor:
        """``int64[K]`` filled with ``-1`` (no id yet), on the rows' device."""
        return torch.full((len(self),), -1, dtype=torch.int64, device=self.boxes.device)


class OnlineTracker(Generic[ConfigT]):
    """One video's online tracker: the shared frame loop (module docstring) around two hooks.

    Use one instance per video; :meth:`reset` starts a new one. Instances share no state: each has
    its own track bank and id counter.

    Subclass API:
        ``config_type``: the config class the constructor accepts (checked with ``isinstance``).
        ``_associate(rows, frame_index) -> (rows, ids)``: required, see its docstring.
        ``_finish_frame(rows, ids, frame_index)``: optional, runs after the bank update.
        ``reset()``: override to clear extra state, and call ``super().reset()``.
        ``self._bank``: the live tracks (:class:`~masa.tracking.track_bank.TrackBank`), which
        ``_associate`` reads and only the skeleton writes.
    """

    config_type: ClassVar[type]

    def __init__(self, config: ConfigT) -> None:
        if not isinstance(config, self.config_type):
            raise TypeError(f"config must be a {self.config_type.__name__}, got {type(config).__name__}")
        self.config: ConfigT = config
        self.reset()

    def reset(self) -> None:
        """Forget every track, restart ids at 0 and accept any ``frame_index`` and ``D`` again."""
        self._bank = TrackBank()
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

    def update(self, detections: Detections, frame_index: int) -> Tracks:
        """Associate one frame's detections with the tracks; return the rows that got an id.

        Args:
            detections: ``N`` detections of the frame: boxes ``float32[N, 4]`` xyxy in
                original-image pixels, scores, labels and ``embeddings float32[N, D]`` (required
                unless ``N == 0``). Which rows may be dropped (negative labels, distractors,
                duplicates) is the tracker's rule: see its class docstring.
            frame_index: 0-based index of the frame; non-decreasing within a video (gaps allowed:
                they age the tracks).

        Returns:
            ``Tracks`` with the input rows that got an id (masks, embeddings and ``data`` carried
            over), sorted by ``det_index`` (the input row); ids are unique. Unmatched and
            suppressed rows are not returned.

        Raises:
            ValueError: missing/non-finite embeddings, a changed embedding dimension, or a
                ``frame_index`` that is not an integer, is negative or goes backwards.
            TypeError: ``detections`` is not a ``masa.structures.Detections``.
        """
        frame, embeds = check_frame_input(
            detections, frame_index, last_frame_index=self._last_frame_index, embedding_dim=self._embedding_dim
        )
        self._last_frame_index = frame
        if len(detections) == 0:
            empty = torch.zeros(0, dtype=torch.int64)
            return gather_tracks(detections, empty, empty)  # memory (and any hook state) untouched
        assert embeds is not None
        self._embedding_dim = int(embeds.shape[1])
        self._bank.to(detections.boxes.device)

        rows, ids = self._associate(FrameRows.sorted_by_score(detections, embeds), frame)
        tracked = self._start_and_remember(rows, ids, frame)
        self._finish_frame(rows, ids, frame)
        return gather_tracks(detections, rows.det_index[tracked], ids[tracked])

    # -- hooks ------------------------------------------------------------------------------------

    def _associate(self, rows: FrameRows, frame_index: int) -> tuple[FrameRows, Tensor]:
        """The tracker's algorithm for one non-empty frame: filter, score against the bank, assign.

        Args:
            rows: all ``N`` detections of the frame, sorted by descending score.
            frame_index: the current 0-based frame.

        Returns:
            ``(kept, ids)``: the rows still in play (a subset of ``rows``, same order; the others
            are gone: no id, no new track, no memory update) and their ``int64[K]`` ids on the
            rows' device: a live track id, ``-1`` (unmatched: may start a track) or ``-2``
            (suppressed: no new track). Must not modify ``self._bank``.
        """
        raise NotImplementedError

    def _finish_frame(self, rows: FrameRows, ids: Tensor, frame_index: int) -> None:
        """Runs after new ids are given and the bank is updated (default: nothing).

        ``rows`` and ``ids`` are what :meth:`_associate` returned, with the new ids filled in:
        rows still at ``-1`` neither matched nor started a track.
        """

    # -- shared steps -----------------------------------------------------------------------------

    def _start_and_remember(self, rows: FrameRows, ids: Tensor, frame_index: int) -> Tensor:
        """New ids, momentum update of the bank and expiry; return the ``bool[K]`` mask of tracked rows.

        Rows at ``-1`` scoring ``> init_score_thresh`` get the ids ``num_tracks, num_tracks + 1, ...``
        in row (score) order, written into ``ids`` in place.
        """
        cfg = self.config
        new = (ids == -1) & (rows.scores > cfg.init_score_thresh)
        num_new = int(new.sum())
        ids[new] = torch.arange(self._next_id, self._next_id + num_new, device=ids.device)
        self._next_id += num_new
        tracked = ids >= 0
        self._bank.update(
            ids[tracked],
            rows.boxes[tracked],
            rows.labels[tracked],
            rows.scores[tracked],
            rows.embeddings[tracked],
            frame_index=frame_index,
            momentum=cfg.momentum,
        )
        self._bank.expire(frame_index, cfg.memory_frames)
        return tracked


def gather_tracks(detections: Detections, det_index: Tensor, ids: Tensor) -> Tracks:
    """``Tracks`` of the input rows ``det_index`` (``int64[K]``) with ``ids``, sorted by input row.

    Every field of those rows (masks, embeddings, ``data`` columns) is carried over.
    """
    order = det_index.argsort()
    det_index, ids = det_index[order].cpu(), ids[order]
    return Tracks.from_detection_rows(detections, det_index, ids)
