"""The fused tracker's live tracks: :class:`FusedBank`, a struct of arrays (one row per track).

Rows are ordered by ascending key (= creation order). Per track: lifecycle state, Kalman mean and
covariance (:mod:`masa.tracking.kalman`), last matched box / label / score / frame, hit count, a
momentum-averaged unit embedding for frame-to-frame matching and a small **gallery** of past unit
embeddings for long-term re-identification (a ring buffer, written at most once per
``gallery_interval`` frames so that it spans time rather than repeating the last few frames).

The arrays are numpy on the CPU (the state is small; numpy's per-call overhead is far below
torch's at tens of tracks); embeddings are float32, boxes and Kalman state float64.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from masa.tracking import kalman

__all__ = ["TENTATIVE", "CONFIRMED", "LOST", "FusedBank", "unit_rows"]

#: lifecycle states (``removed`` tracks leave the bank).
TENTATIVE, CONFIRMED, LOST = 0, 1, 2


def unit_rows(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Rows of ``x [K, D]`` scaled to unit L2 norm (zero rows stay zero)."""
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)


@dataclass(eq=False)
class FusedBank:
    """The live tracks of one video (``M`` rows, ascending keys).

    Attributes:
        keys: ``int64[M]`` internal track keys, ascending.
        public_ids: ``int64[M]`` the id the user sees, ``-1`` until the track is first output.
        state: ``int64[M]``: :data:`TENTATIVE`, :data:`CONFIRMED` or :data:`LOST`.
        mean, cov: ``float64[M, 8]``, ``float64[M, 8, 8]`` Kalman state (centre/size, velocities per step).
        labels: ``int64[M]`` label of the last matched detection (fixed at creation when class-aware).
        last_frames: ``int64[M]`` 0-based frame of the last match.
        hits: ``int64[M]`` number of frames matched.
        embeddings: ``float32[M, D]`` momentum-averaged unit embedding.
        gallery: ``float32[M, G, D]`` past unit embeddings, a ring buffer per track.
        gallery_writes: ``int64[M]`` entries written so far (slot ``writes % G`` is next).
        gallery_frames: ``int64[M]`` frame of the last gallery write.
    """

    keys: np.ndarray
    public_ids: np.ndarray
    state: np.ndarray
    mean: np.ndarray
    cov: np.ndarray
    labels: np.ndarray
    last_frames: np.ndarray
    hits: np.ndarray
    embeddings: np.ndarray
    gallery: np.ndarray
    gallery_writes: np.ndarray
    gallery_frames: np.ndarray

    @classmethod
    def empty(cls, embedding_dim: int, gallery_size: int) -> FusedBank:
        def ints() -> np.ndarray:
            return np.zeros(0, dtype=np.int64)

        return cls(
            keys=ints(),
            public_ids=ints(),
            state=ints(),
            mean=np.zeros((0, 8)),
            cov=np.zeros((0, 8, 8)),
            labels=ints(),
            last_frames=ints(),
            hits=ints(),
            embeddings=np.zeros((0, embedding_dim), dtype=np.float32),
            gallery=np.zeros((0, gallery_size, embedding_dim), dtype=np.float32),
            gallery_writes=ints(),
            gallery_frames=ints(),
        )

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    @property
    def gallery_valid(self) -> np.ndarray:
        """``bool[M, G]``: which gallery slots hold an embedding."""
        return np.arange(self.gallery.shape[1])[None, :] < self.gallery_writes[:, None]

    def keep(self, mask: np.ndarray) -> None:
        """Keep the rows where ``mask`` (``bool[M]``) is true (in place)."""
        if mask.all():
            return
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name)[mask])

    def append(self, keys: np.ndarray, boxes: np.ndarray, labels: np.ndarray, units: np.ndarray, *, frame_index: int, state: int) -> None:
        """Start tracks for ``K`` detections: ``keys`` ascending and above every key in the bank,
        ``boxes [K, 4]`` xyxy pixels, ``labels [K]``, ``units float32[K, D]`` unit embeddings."""
        k = int(keys.shape[0])
        if k == 0:
            return
        mean, cov = kalman.initiate(kalman.boxes_to_measurements(boxes))
        gallery = np.zeros((k,) + self.gallery.shape[1:], dtype=np.float32)
        gallery[:, 0] = units
        frames = np.full(k, frame_index, dtype=np.int64)
        new = FusedBank(
            keys=keys,
            public_ids=np.full(k, -1, dtype=np.int64),
            state=np.full(k, state, dtype=np.int64),
            mean=mean,
            cov=cov,
            labels=labels.astype(np.int64),
            last_frames=frames,
            hits=np.ones(k, dtype=np.int64),
            embeddings=units.astype(np.float32),
            gallery=gallery,
            gallery_writes=np.ones(k, dtype=np.int64),
            gallery_frames=frames.copy(),
        )
        for f in fields(self):
            setattr(self, f.name, np.concatenate([getattr(self, f.name), getattr(new, f.name)]))

    def update_matched(
        self,
        rows: np.ndarray,
        boxes: np.ndarray,
        labels: np.ndarray,
        units: np.ndarray,
        *,
        appearance_ok: np.ndarray,
        frame_index: int,
        momentum: float,
        gallery_interval: int,
        keep_labels: bool,
    ) -> None:
        """Write ``K`` matches: bank rows ``rows int64[K]`` (distinct) take these detections.

        Kalman-corrects the state with ``boxes [K, 4]`` (xyxy pixels), stores the label (unless
        ``keep_labels``), frame and hit count, and updates appearance (average and gallery) only
        from the rows where ``appearance_ok`` (``bool[K]``; the caller excludes weak and occluded
        detections, whose crops describe the occluder). The gallery takes a new entry when
        ``gallery_interval`` frames have passed since its last one. States are the caller's.
        """
        if rows.size == 0:
            return
        self.mean[rows], self.cov[rows] = kalman.update(self.mean[rows], self.cov[rows], kalman.boxes_to_measurements(boxes))
        if not keep_labels:
            self.labels[rows] = labels
        self.last_frames[rows] = frame_index
        self.hits[rows] += 1
        rows, units = rows[appearance_ok], units[appearance_ok]
        if rows.size == 0:
            return
        self.embeddings[rows] = unit_rows((1 - momentum) * self.embeddings[rows] + momentum * units)
        due = (frame_index - self.gallery_frames[rows]) >= gallery_interval
        rows, units = rows[due], units[due]
        if rows.size:
            slot = self.gallery_writes[rows] % self.gallery.shape[1]  # the oldest slot once full
            self.gallery[rows, slot] = units
            self.gallery_writes[rows] += 1
            self.gallery_frames[rows] = frame_index
