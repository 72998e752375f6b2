"""The backdrops kept by :class:`~masa.tracking.MasaBDDTracker`: unmatched detections of recent frames.

Which rows become backdrops, and how they enter the match scores, is the BDD tracker's rule and
lives in ``bdd.py``; this module only holds the record of one frame's backdrops.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

__all__ = ["BackdropFrame"]


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
