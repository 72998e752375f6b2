"""Per-video tracker state and the bookkeeping both trackers share.

* :class:`TrackBank`: the live tracks as a struct of arrays (one row per track, ordered by id,
  which is also creation order), with the momentum update and the expiry rule.
* :class:`TrackMemory`: a read-only snapshot of a bank, for tests and debugging.
* :class:`BackdropFrame`: the backdrops (unmatched detections used as negatives) of one frame,
  kept by :class:`~masa.tracking.MasaBDDTracker`.
* :func:`check_frame_input` / :func:`tracks_from_rows`: input validation and output assembly.

The authors keep the tracks in a ``dict[int, dict[str, Tensor]]`` and restack it every frame; a
bank ordered by id holds the same rows in the same column order (Python dicts keep insertion
order and ids are handed out in increasing order), so match scores, ties and results agree.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import torch
from torch import Tensor

from masa.structures import Detections, Tracks

__all__ = ["TrackMemory", "BackdropFrame", "TrackBank", "check_frame_input", "tracks_from_rows", "start_and_remember"]


@dataclass(frozen=True, eq=False)
class TrackMemory:
    """Read-only snapshot of a tracker's live tracks (copies: changing them changes nothing).

    Attributes:
        ids: ``int64[M]`` track ids, ascending.
        boxes: ``float32[M, 4]`` xyxy box of the last matched detection, original-image pixels.
        labels: ``int64[M]`` label of the last matched detection.
        scores: ``float32[M]`` score of the last matched detection.
        embeddings: ``float32[M, D]`` momentum-averaged appearance embedding.
        last_frames: ``int64[M]`` frame index (0-based) at which each track was last matched.
    """

    ids: Tensor
    boxes: Tensor
    labels: Tensor
    scores: Tensor
    embeddings: Tensor
    last_frames: Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, eq=False)
class BackdropFrame:
    """Backdrops of one frame: detections that got no id, kept as extra softmax columns.

    Attributes:
        frame_index: the 0-based frame they come from.
        boxes: ``float32[K, 4]`` xyxy, original-image pixels (kept for inspection only).
        labels: ``int64[K]`` (used by the class-aware mask).
        embeddings: ``float32[K, D]``.
    """

    frame_index: int
    boxes: Tensor
    labels: Tensor
    embeddings: Tensor

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


class TrackBank:
    """The live tracks of one video as struct-of-arrays tensors, rows ordered by ascending id.

    Fields (``M`` live tracks): ``ids int64[M]``, ``boxes float32[M, 4]``, ``labels int64[M]``,
    ``scores float32[M]``, ``embeddings float32[M, D]`` (``None`` before the first track) and
    ``last_frames int64[M]``. Velocity is not kept: the authors' BDD tracker maintains a running
    mean velocity per track but never reads it.
    """

    def __init__(self) -> None:
        self.ids = torch.zeros(0, dtype=torch.int64)
        self.boxes = torch.zeros(0, 4)
        self.labels = torch.zeros(0, dtype=torch.int64)
        self.scores = torch.zeros(0)
        self.embeddings: Tensor | None = None
        self.last_frames = torch.zeros(0, dtype=torch.int64)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to(self, device: torch.device) -> None:
        """Move every field to ``device`` (in place)."""
        for name in ("ids", "boxes", "labels", "scores", "embeddings", "last_frames"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))

    def update(
        self,
        ids: Tensor,
        boxes: Tensor,
        labels: Tensor,
        scores: Tensor,
        embeddings: Tensor,
        *,
        frame_index: int,
        momentum: float,
    ) -> None:
        """Write this frame's tracked detections into the bank.

        Args:
            ids: ``int64[K]`` unique ids ``>= 0``. Ids already in the bank are updated; the others
                are new tracks and must be larger than every id in the bank.
            boxes, labels, scores, embeddings: ``[K, 4]``, ``[K]``, ``[K]``, ``[K, D]`` rows of the
                detections that carry those ids.
            frame_index: the current 0-based frame, stored as ``last_frames``.
            momentum: weight of the *new* embedding: ``embed = (1 - m) * old + m * new``.

        Box, label, score and last frame are replaced by the new detection's.
        """
        if ids.numel() == 0:
            return
        frames = torch.full_like(ids, frame_index)
        if len(self) == 0:
            self._append(ids, boxes, labels, scores, embeddings, frames)
            return
        assert self.embeddings is not None
        pos = torch.searchsorted(self.ids, ids).clamp_max(len(self) - 1)  # [K]
        found = self.ids[pos] == ids  # [K]
        p = pos[found]
        old = self.embeddings[p]
        self.embeddings = self.embeddings.index_put((p,), (1 - momentum) * old + momentum * embeddings[found])
        self.boxes = self.boxes.index_put((p,), boxes[found])
        self.labels = self.labels.index_put((p,), labels[found])
        self.scores = self.scores.index_put((p,), scores[found])
        self.last_frames = self.last_frames.index_put((p,), frames[found])
        new = ~found
        if new.any():
            assert bool((ids[new] > self.ids[-1]).all()), "new track ids must be larger than existing ones"
            self._append(ids[new], boxes[new], labels[new], scores[new], embeddings[new], frames[new])

    def _append(
        self, ids: Tensor, boxes: Tensor, labels: Tensor, scores: Tensor, embeds: Tensor, frames: Tensor
    ) -> None:
        order = ids.argsort()
        self.ids = torch.cat([self.ids, ids[order]])
        self.boxes = torch.cat([self.boxes, boxes[order]])
        self.labels = torch.cat([self.labels, labels[order]])
        self.scores = torch.cat([self.scores, scores[order]])
        new_embeds = embeds[order]  # advanced indexing copies: the bank never aliases user tensors
        self.embeddings = new_embeds if self.embeddings is None else torch.cat([self.embeddings, new_embeds])
        self.last_frames = torch.cat([self.last_frames, frames[order]])

    def expire(self, frame_index: int, memory_frames: int) -> None:
        """Drop tracks with ``frame_index - last_frame >= memory_frames`` (the authors' rule)."""
        keep = (frame_index - self.last_frames) < memory_frames
        if bool(keep.all()):
            return
        self.ids, self.boxes, self.labels = self.ids[keep], self.boxes[keep], self.labels[keep]
        self.scores, self.last_frames = self.scores[keep], self.last_frames[keep]
        assert self.embeddings is not None
        self.embeddings = self.embeddings[keep]

    def snapshot(self) -> TrackMemory:
        """A :class:`TrackMemory` copy of the bank."""
        embeddings = torch.zeros(0, 0) if self.embeddings is None else self.embeddings
        return TrackMemory(
            ids=self.ids.clone(),
            boxes=self.boxes.clone(),
            labels=self.labels.clone(),
            scores=self.scores.clone(),
            embeddings=embeddings.clone(),
            last_frames=self.last_frames.clone(),
        )


def check_frame_input(
    detections: Detections,
    frame_index: int,
    *,
    last_frame_index: int | None,
    embedding_dim: int | None,
) -> tuple[int, Tensor | None]:
    """Validate one ``update()`` call; return ``(frame_index as int, embeddings or None)``.

    ``embeddings`` is ``float32[N, D]`` on the device of ``detections.boxes``; it is ``None`` only
    for an empty frame given without embeddings (allowed: nothing is embedded when nothing is
    detected). Raises ``ValueError`` when ``frame_index`` is not a non-negative integer or goes
    backwards, when embeddings are missing or not finite, or when ``D`` differs from the
    dimension seen earlier in the video (``embedding_dim``).
    """
    if not isinstance(detections, Detections):
        raise TypeError(f"update() expects masa.structures.Detections, got {type(detections).__name__}")
    if isinstance(frame_index, bool):
        raise ValueError(f"frame_index must be an integer, got {frame_index!r}")
    try:
        frame = operator.index(frame_index)
    except TypeError:
        raise ValueError(f"frame_index must be an integer, got {frame_index!r}") from None
    if frame < 0:
        raise ValueError(f"frame_index must be >= 0 (0-based), got {frame}")
    if last_frame_index is not None and frame < last_frame_index:
        raise ValueError(
            f"frame_index went backwards: got {frame} after {last_frame_index}; "
            "call reset() before starting a new video"
        )
    embeddings = detections.embeddings
    if embeddings is None:
        if len(detections) == 0:
            return frame, None
        raise ValueError(
            f"detections have no embeddings: the tracker matches by appearance and needs "
            f"Detections.embeddings as float32[N={len(detections)}, D]"
        )
    if embedding_dim is not None and embeddings.shape[1] != embedding_dim:
        raise ValueError(
            f"embedding dimension changed mid-video: got D={embeddings.shape[1]}, the tracker holds D={embedding_dim}; "
            "call reset() before switching embedding models"
        )
    if not bool(torch.isfinite(embeddings).all()):
        bad = int((~torch.isfinite(embeddings)).any(dim=1).nonzero()[0])
        raise ValueError(f"detections.embeddings: row {bad} is not finite")
    return frame, embeddings.to(detections.boxes.device)


def start_and_remember(
    bank: TrackBank,
    ids: Tensor,
    scores: Tensor,
    boxes: Tensor,
    labels: Tensor,
    embeds: Tensor,
    *,
    next_id: int,
    init_score_thresh: float,
    frame_index: int,
    momentum: float,
    memory_frames: int,
) -> tuple[Tensor, int]:
    """The end of a frame, shared by both trackers (rows in score order).

    Unmatched rows (``ids == -1``) scoring ``> init_score_thresh`` get new ids ``next_id, ...`` in
    place; every row with an id is written to ``bank`` (momentum update); tracks unseen for
    ``memory_frames`` frames expire. Returns the ``bool[N]`` mask of tracked rows and the next id.
    """
    new = (ids == -1) & (scores > init_score_thresh)
    num_new = int(new.sum())
    ids[new] = torch.arange(next_id, next_id + num_new, device=ids.device)
    tracked = ids >= 0
    bank.update(
        ids[tracked],
        boxes[tracked],
        labels[tracked],
        scores[tracked],
        embeds[tracked],
        frame_index=frame_index,
        momentum=momentum,
    )
    bank.expire(frame_index, memory_frames)
    return tracked, next_id + num_new


def tracks_from_rows(detections: Detections, rows: Tensor, ids: Tensor) -> Tracks:
    """``Tracks`` made of input rows ``rows`` (``int64[K]``) with ``ids``, sorted by input row.

    Every field of the input rows (masks, embeddings, ``data`` columns) is carried over, and
    ``det_index`` is the input row.
    """
    order = rows.argsort()
    rows, ids = rows[order].cpu(), ids[order]
    return Tracks.from_detections(detections[rows], ids=ids, det_index=rows)


def check_finite(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_int(name: str, value: int, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
