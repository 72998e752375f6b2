"""The fused tracker's live tracks: :class:`FusedBank`, a struct of tensors (one row per track).

Rows are ordered by ascending id (= creation order). Per track: lifecycle state, Kalman mean and
covariance (:mod:`masa.tracking.kalman`), last matched box / label / score / frame, hit count, a
momentum-averaged unit embedding for frame-to-frame matching and a small **gallery** of past unit
embeddings for long-term re-identification (a ring buffer, filled at most once per
``gallery_interval`` frames so that it spans time rather than repeating the last few frames).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

from masa.tracking import kalman

__all__ = ["TENTATIVE", "CONFIRMED", "LOST", "FusedBank", "l2_normalize"]

#: lifecycle states (``removed`` tracks leave the bank).
TENTATIVE, CONFIRMED, LOST = 0, 1, 2


def l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows of ``x [K, D]`` scaled to unit L2 norm (zero rows stay zero)."""
    return x / x.norm(dim=-1, keepdim=True).clamp_min(eps)


@dataclass(eq=False)
class FusedBank:
    """The live tracks of one video (``M`` rows, ascending ids).

    Attributes:
        ids: ``int64[M]`` internal track keys, ascending.
        public_ids: ``int64[M]`` the id the user sees, ``-1`` until the track is first output.
        state: ``int64[M]``: :data:`TENTATIVE`, :data:`CONFIRMED` or :data:`LOST`.
        mean, cov: ``float64[M, 8]``, ``float64[M, 8, 8]`` Kalman state (centre/size and velocities, px/frame).
        boxes: ``float32[M, 4]`` xyxy pixels of the last matched detection.
        labels: ``int64[M]`` label of the last matched detection (fixed at creation when class-aware).
        scores: ``float32[M]`` score of the last matched detection.
        last_frames: ``int64[M]`` 0-based frame of the last match.
        hits: ``int64[M]`` number of frames matched.
        embeddings: ``float32[M, D]`` momentum-averaged unit embedding.
        gallery: ``float32[M, G, D]`` past unit embeddings, a ring buffer per track.
        gallery_writes: ``int64[M]`` entries written so far (slot ``writes % G`` is next).
        gallery_frames: ``int64[M]`` frame of the last gallery write.
    """

    ids: Tensor
    public_ids: Tensor
    state: Tensor
    mean: Tensor
    cov: Tensor
    boxes: Tensor
    labels: Tensor
    scores: Tensor
    last_frames: Tensor
    hits: Tensor
    embeddings: Tensor
    gallery: Tensor
    gallery_writes: Tensor
    gallery_frames: Tensor

    @classmethod
    def empty(cls, embedding_dim: int, gallery_size: int, device: torch.device | str = "cpu") -> FusedBank:
        i64 = dict(dtype=torch.int64, device=device)
        return cls(
            ids=torch.zeros(0, **i64),
            public_ids=torch.zeros(0, **i64),
            state=torch.zeros(0, **i64),
            mean=torch.zeros(0, 8, dtype=torch.float64, device=device),
            cov=torch.zeros(0, 8, 8, dtype=torch.float64, device=device),
            boxes=torch.zeros(0, 4, device=device),
            labels=torch.zeros(0, **i64),
            scores=torch.zeros(0, device=device),
            last_frames=torch.zeros(0, **i64),
            hits=torch.zeros(0, **i64),
            embeddings=torch.zeros(0, embedding_dim, device=device),
            gallery=torch.zeros(0, gallery_size, embedding_dim, device=device),
            gallery_writes=torch.zeros(0, **i64),
            gallery_frames=torch.zeros(0, **i64),
        )

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def embedding_dim(self) -> int:
        return int(self.embeddings.shape[1])

    @property
    def gallery_valid(self) -> Tensor:
        """``bool[M, G]``: which gallery slots hold an embedding."""
        size = self.gallery.shape[1]
        return torch.arange(size, device=self.ids.device)[None, :] < self.gallery_writes[:, None]

    def keep(self, mask: Tensor) -> None:
        """Keep the rows where ``mask`` (``bool[M]``) is true (in place)."""
        if bool(mask.all()):
            return
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])

    def append(
        self, ids: Tensor, boxes: Tensor, labels: Tensor, scores: Tensor, embeddings: Tensor, *, frame_index: int, state: int
    ) -> None:
        """Start tracks for ``K`` detections (ids ascending and above every id in the bank)."""
        k = int(ids.shape[0])
        if k == 0:
            return
        dev = self.ids.device
        mean, cov = kalman.initiate(kalman.boxes_to_measurements(boxes))
        unit = l2_normalize(embeddings.to(torch.float32))
        gallery = torch.zeros(k, self.gallery.shape[1], self.embedding_dim, device=dev)
        gallery[:, 0] = unit
        frames = torch.full((k,), frame_index, dtype=torch.int64, device=dev)
        new = FusedBank(
            ids=ids,
            public_ids=torch.full((k,), -1, dtype=torch.int64, device=dev),
            state=torch.full((k,), state, dtype=torch.int64, device=dev),
            mean=mean,
            cov=cov,
            boxes=boxes.to(torch.float32),
            labels=labels,
            scores=scores.to(torch.float32),
            last_frames=frames,
            hits=torch.ones(k, dtype=torch.int64, device=dev),
            embeddings=unit,
            gallery=gallery,
            gallery_writes=torch.ones(k, dtype=torch.int64, device=dev),
            gallery_frames=frames.clone(),
        )
        for f in fields(self):
            setattr(self, f.name, torch.cat([getattr(self, f.name), getattr(new, f.name)]))

    def update_matched(
        self,
        rows: Tensor,
        boxes: Tensor,
        scores: Tensor,
        embeddings: Tensor,
        *,
        frame_index: int,
        momentum: float,
        gallery_interval: int,
        appearance_ok: Tensor,
        keep_labels: bool,
        labels: Tensor,
    ) -> None:
        """Write ``K`` matches: bank rows ``rows int64[K]`` take these detections' boxes etc.

        Kalman-corrects the state, marks the tracks confirmed-or-tentative as before (the caller
        sets states), bumps hits, and updates appearance only from the detections where
        ``appearance_ok`` (``bool[K]``; the caller excludes weak and occluded ones, whose crops
        describe the occluder). The gallery takes a new entry when ``gallery_interval`` frames have passed.
        """
        if rows.numel() == 0:
            return
        mean, cov = kalman.update(self.mean[rows], self.cov[rows], kalman.boxes_to_measurements(boxes))
        self.mean[rows], self.cov[rows] = mean, cov
        self.boxes[rows] = boxes.to(torch.float32)
        self.scores[rows] = scores.to(torch.float32)
        if not keep_labels:
            self.labels[rows] = labels
        self.last_frames[rows] = frame_index
        self.hits[rows] += 1
        good = appearance_ok
        if not bool(good.any()):
            return
        rows, unit = rows[good], l2_normalize(embeddings[good].to(torch.float32))
        self.embeddings[rows] = l2_normalize((1 - momentum) * self.embeddings[rows] + momentum * unit)
        due = (frame_index - self.gallery_frames[rows]) >= gallery_interval
        if bool(due.any()):
            rows, unit = rows[due], unit[due]
            slot = self.gallery_writes[rows] % self.gallery.shape[1]  # the oldest slot once full
            self.gallery[rows, slot] = unit
            self.gallery_writes[rows] += 1
            self.gallery_frames[rows] = frame_index
