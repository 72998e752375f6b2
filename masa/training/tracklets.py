"""Positives across real time, without labels: short tracklets from a video's own detections.

Beyond the paper (its App. D adapts on still frames only). In a user's unlabeled video, the
confident detections of consecutive frames are linked where the overlap leaves no doubt; the
resulting short tracklets give instance correspondences between frames up to ``max_offset``
apart, so the positives carry real changes of pose, light and occlusion that no augmentation
of one still image produces.

Linking rule (:func:`link_tracklets`), frame ``f`` to ``f + 1``, class-agnostic:

* only detections scoring at or above the video's ``score_quantile`` quantile take part
  (relative, so any detector's score scale works);
* box ``i`` of ``f`` and ``j`` of ``f + 1`` link when ``IoU(i, j) >= link_iou``, each is the
  other's best match, and neither has a second candidate with ``IoU >= ambiguous_iou``;
* a tracklet ends at the first frame without such a link or after ``max_length`` frames;
  tracklets shorter than ``min_length`` frames are dropped.

A training sample (:class:`TrackletPairDataset`) is a key frame ``t`` and a reference frame
``t + d`` (``1 <= d <= max_offset``); only tracklets spanning both frames are instances (others,
possibly the same object under another tracklet id, are left out rather than made negatives);
each frame gets its own independent augmentation (:func:`masa.data.views.make_view`, no mix-in).
Boxes ``float32[N, 4]`` ``(x1, y1, x2, y2)`` px; frames 0-based.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import box_iou

from masa.data.coco_proposals import read_image_rgb
from masa.data.views import ViewConfig, make_view
from masa.structures import Detections

__all__ = ["TrackletConfig", "Tracklets", "link_tracklets", "TrackletPairDataset", "frame_paths"]


@dataclass(frozen=True)
class TrackletConfig:
    score_quantile: float = 0.5
    link_iou: float = 0.5
    ambiguous_iou: float = 0.3
    min_length: int = 3
    max_length: int = 30
    max_offset: int = 10

    def __post_init__(self) -> None:
        if not 0 <= self.score_quantile < 1 or not 0 < self.ambiguous_iou <= self.link_iou <= 1:
            raise ValueError("TrackletConfig: expected 0 <= score_quantile < 1 and 0 < ambiguous_iou <= link_iou <= 1")
        if self.min_length < 2 or self.max_length < self.min_length or self.max_offset < 1:
            raise ValueError("TrackletConfig: expected 2 <= min_length <= max_length and max_offset >= 1")


@dataclass
class Tracklets:
    """``boxes[f]`` ``float32[N_f, 4]`` and ``ids[f]`` ``int64[N_f]`` of frame ``f``; ``spans[id] = (first, last)`` frame."""

    boxes: dict[int, np.ndarray]
    ids: dict[int, np.ndarray]
    spans: dict[int, tuple[int, int]]


def link_tracklets(detections: Mapping[int, Detections], config: TrackletConfig = TrackletConfig()) -> Tracklets:
    """Short, unambiguous tracklets from per-frame detections ``{0-based frame: Detections}`` (module docstring)."""
    scored = [d.scores for d in detections.values() if len(d)]
    if not scored:
        return Tracklets({}, {}, {})
    threshold = float(torch.quantile(torch.cat(scored).float(), config.score_quantile))
    frames = sorted(detections)
    boxes = {f: detections[f].boxes[detections[f].scores >= threshold].float() for f in frames}
    labels: dict[int, np.ndarray] = {}
    length: dict[int, int] = {}
    next_id = 0
    previous: tuple[int, torch.Tensor, np.ndarray] | None = None
    for f in frames:
        current = boxes[f]
        ids = np.full(len(current), -1, dtype=np.int64)
        if previous is not None and previous[0] == f - 1 and len(previous[1]) and len(current):
            iou = box_iou(previous[1], current)  # (P, C)
            best_c = iou.argmax(dim=1)
            best_p = iou.argmax(dim=0)
            for p in range(len(previous[1])):
                c = int(best_c[p])
                pid = previous[2][p]
                if iou[p, c] < config.link_iou or int(best_p[c]) != p or length[pid] >= config.max_length:
                    continue
                if int((iou[p] >= config.ambiguous_iou).sum()) > 1 or int((iou[:, c] >= config.ambiguous_iou).sum()) > 1:
                    continue
                ids[c] = pid
                length[pid] += 1
        for c in np.flatnonzero(ids < 0):
            ids[c] = next_id
            length[next_id] = 1
            next_id += 1
        labels[f] = ids
        previous = (f, current, ids)
    keep = {i for i, n in length.items() if n >= config.min_length}
    out = Tracklets({}, {}, {})
    for f in frames:
        mask = np.isin(labels[f], list(keep))
        if mask.any():
            out.boxes[f] = boxes[f][torch.from_numpy(mask)].numpy().astype(np.float32)
            out.ids[f] = labels[f][mask]
            for i in out.ids[f].tolist():
                first, last = out.spans.get(i, (f, f))
                out.spans[i] = (min(first, f), max(last, f))
    return out


class TrackletPairDataset(torch.utils.data.Dataset):
    """``dataset[position]`` -> the same dict as :class:`~masa.training.data.ViewPairDataset`
    (``key``/``ref`` views of frames ``t`` and ``t + d``, or ``skip``)."""

    def __init__(self, frame_paths: Mapping[int, Path], tracklets: Tracklets, view_config: ViewConfig, *, seed: int,
                 max_offset: int = 10) -> None:  # fmt: skip
        self.paths = dict(frame_paths)
        self.tracklets = tracklets
        self.view_config = view_config
        self.seed = int(seed)
        self.max_offset = int(max_offset)
        self.keys: list[int] = [f for f in sorted(tracklets.ids) if f in self.paths and self._partners(f)]
        if not self.keys:
            raise ValueError("no frame pairs share a tracklet: too few confident, well-separated detections to link")

    def _partners(self, f: int) -> list[int]:
        ids = self.tracklets.ids[f]
        last = max(self.tracklets.spans[i][1] for i in ids.tolist())
        return [g for g in range(f + 1, min(f + self.max_offset, last) + 1) if g in self.paths and g in self.tracklets.ids]

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, position: int) -> dict:
        from masa.training.data import sample_order

        t = self.keys[sample_order(position, len(self.keys), self.seed)]
        rng = np.random.default_rng([self.seed, 4, int(position)])
        partners = self._partners(t)
        u = partners[int(rng.integers(len(partners)))]
        base = {"position": int(position), "path": str(self.paths[t])}
        shared = np.intersect1d(self.tracklets.ids[t], self.tracklets.ids[u])
        if len(shared) == 0:
            return {**base, "skip": "no shared instance"}
        views = []
        for f in (t, u):
            image = read_image_rgb(Path(self.paths[f]))
            if image is None:
                return {**base, "skip": "unreadable"}
            keep = np.isin(self.tracklets.ids[f], shared)
            views.append(make_view(image, self.tracklets.boxes[f][keep], self.tracklets.ids[f][keep], rng=rng, config=self.view_config))
        key, ref = views
        if len(key.ids) == 0 or not np.isin(key.ids, ref.ids).any():
            return {**base, "skip": "no shared instance"}
        return {**base, "key": key, "ref": ref}


def frame_paths(images: Sequence[str | Path]) -> dict[int, Path]:
    """``{0-based frame: image path}`` of a MOTChallenge sequence folder or a folder of numbered frames."""
    from masa.io import MotSequenceSource
    from masa.io.frames import ImageFolderSource

    folder = Path(images[0])
    if (folder / "seqinfo.ini").is_file() or (folder / "img1").is_dir():
        source = MotSequenceSource(folder)
    else:
        source = ImageFolderSource(folder)
    return source.index_paths()
