"""The live tracks of one video: :class:`TrackBank` (the tracker's state) and :class:`TrackMemory`.

The bank is a struct of arrays, one row per live track, rows ordered by ascending id (which is
also creation order). Every field is a tensor; there is no per-track Python object.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["TrackBank", "TrackMemory"]


@dataclass(frozen=True, eq=False)
class TrackMemory:
    """Read-only snapshot of a tracker's live tracks (copies: changing them changes nothing).

    Attributes:
        ids: ``int64[M]`` track ids, ascending.
        boxes: ``float32[M, 4]`` xyxy box of the last matched detection, original-image pixels.
        labels: ``int64[M]`` label of the last matched detection.
        scores: ``float32[M]`` score of the last matched detection.
        embeddings: ``float32[M, D]`` momentum-averaged appearance embedding (``[0, 0]`` before
            the first track of a video).
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


class TrackBank:
    """The live tracks of one video as struct-of-arrays tensors, rows ordered by ascending id.

    Fields (``M`` live tracks): ``ids int64[M]``, ``boxes float32[M, 4]`` (xyxy pixels),
    ``labels int64[M]``, ``scores float32[M]``, ``embeddings float32[M, D]`` (``[0, 0]`` until the
    first track fixes ``D``) and ``last_frames int64[M]`` (0-based).
    """

    def __init__(self) -> None:
        self.ids = torch.zeros(0, dtype=torch.int64)
        self.boxes = torch.zeros(0, 4)
        self.labels = torch.zeros(0, dtype=torch.int64)
        self.scores = torch.zeros(0)
        self.embeddings = torch.zeros(0, 0)
        self.last_frames = torch.zeros(0, dtype=torch.int64)

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def to(self, device: torch.device) -> None:
        """Move every field to ``device`` (in place)."""
        self.ids, self.boxes, self.labels = self.ids.to(device), self.boxes.to(device), self.labels.to(device)
        self.scores, self.embeddings = self.scores.to(device), self.embeddings.to(device)
        self.last_frames = self.last_frames.to(device)

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
        pos = torch.searchsorted(self.ids, ids).clamp_max(len(self) - 1)  # [K] row of each id, if present
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
        """Add new tracks (rows in any order; they are stored by ascending id)."""
        was_empty = len(self) == 0
        order = ids.argsort()
        self.ids = torch.cat([self.ids, ids[order]])
        self.boxes = torch.cat([self.boxes, boxes[order]])
        self.labels = torch.cat([self.labels, labels[order]])
        self.scores = torch.cat([self.scores, scores[order]])
        new_embeds = embeds[order]  # advanced indexing copies: the bank never aliases user tensors
        self.embeddings = new_embeds if was_empty else torch.cat([self.embeddings, new_embeds])
        self.last_frames = torch.cat([self.last_frames, frames[order]])

    def expire(self, frame_index: int, memory_frames: int) -> None:
        """Drop tracks with ``frame_index - last_frame >= memory_frames`` (the authors' rule)."""
        keep = (frame_index - self.last_frames) < memory_frames
        if bool(keep.all()):
            return
        self.ids, self.boxes, self.labels = self.ids[keep], self.boxes[keep], self.labels[keep]
        self.scores, self.last_frames = self.scores[keep], self.last_frames[keep]
        self.embeddings = self.embeddings[keep]

    def snapshot(self) -> TrackMemory:
        """A :class:`TrackMemory` copy of the bank."""
        return TrackMemory(
            ids=self.ids.clone(),
            boxes=self.boxes.clone(),
            labels=self.labels.clone(),
            scores=self.scores.clone(),
            embeddings=self.embeddings.clone(),
            last_frames=self.last_frames.clone(),
        )
