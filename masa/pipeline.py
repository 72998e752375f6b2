"""The per-video predictor: frames -> detections -> embeddings -> tracker -> tracks.

``TrackingPipeline`` owns one video's state (the tracker memory); the models it calls are
stateless. Frames are processed one at a time (streaming); nothing is buffered.

Conventions: boxes are xyxy float32 in original-frame pixels; ``frame.index`` is 0-based.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

import torch

from masa.io.frames import Frame
from masa.io.mot import clip_detections, detection_frames
from masa.modeling.embedder import Embedder
from masa.structures import Detections, Tracks

__all__ = ["Tracker", "TrackingPipeline", "TrackedFrame", "RunStats", "normalize_scores", "given_detections"]


class Tracker(Protocol):
    """What the pipeline needs from a tracker (``MasaTaoTracker``, ``MasaBDDTracker``)."""

    def update(self, detections: Detections, frame_index: int) -> Tracks: ...

    def reset(self) -> None: ...


DetectionSource = Callable[[Frame], Detections]


@dataclass
class TrackedFrame:
    """One processed frame: the frame, the detections fed to the tracker and the tracker output."""

    frame: Frame
    detections: Detections
    tracks: Tracks


@dataclass
class RunStats:
    """Running totals of a tracking run."""

    frames: int = 0
    boxes: int = 0
    track_ids: set[int] = field(default_factory=set)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    track_seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def given_detections(detections_by_frame: Mapping[int, Detections]) -> DetectionSource:
    """A detection source that looks up pre-computed detections by 0-based frame index."""

    def source(frame: Frame) -> Detections:
        return detection_frames(detections_by_frame, frame.index)

    return source


def normalize_scores(
    detections_by_frame: Mapping[int, Detections], mode: str = "auto"
) -> tuple[dict[int, Detections], str | None]:
    """Map detection scores into [0, 1] so that the tracker's thresholds apply.

    ``mode``: ``"none"`` keeps scores; ``"minmax"`` maps the file's [min, max] to [0, 1];
    ``"auto"`` does ``minmax`` only when some score lies outside [0, 1] (e.g. MOTChallenge's ACF
    detections score 0-140). Returns the new mapping and a message saying what was done (or None).
    """
    if mode not in ("auto", "none", "minmax"):
        raise ValueError(f"score normalisation: expected auto, none or minmax, got {mode!r}")
    frames = dict(detections_by_frame)
    scores = [d.scores for d in frames.values() if len(d)]
    if mode == "none" or not scores:
        return frames, None
    all_scores = torch.cat(scores)
    low, high = float(all_scores.min()), float(all_scores.max())
    if mode == "auto" and low >= 0.0 and high <= 1.0:
        return frames, None
    span = high - low if high > low else 1.0
    out = {k: d.replace(scores=(d.scores - low) / span) for k, d in frames.items()}
    return out, f"detection scores in [{low:.3g}, {high:.3g}] were mapped linearly to [0, 1]"


class TrackingPipeline:
    """Track one video: ``for result in pipeline.run(frames): ...``.

    Args:
        embedder: appearance model giving ``float32[N, D]`` embeddings for the boxes of a frame.
        tracker: online tracker (holds this video's state).
        detections: where a frame's detections come from (given detections, a detector, ...).
        min_score: detections scoring below this are dropped before embedding (``None``: keep all).
    """

    def __init__(
        self,
        embedder: Embedder,
        tracker: Tracker,
        detections: DetectionSource,
        min_score: float | None = None,
    ) -> None:
        self.embedder = embedder
        self.tracker = tracker
        self.detections = detections
        self.min_score = min_score
        self.stats = RunStats()

    def reset(self) -> None:
        """Forget the video: tracker memory, ids and statistics."""
        self.tracker.reset()
        self.stats = RunStats()

    def step(self, frame: Frame) -> TrackedFrame:
        """Detect (or look up), embed and track one frame."""
        start = time.perf_counter()
        height, width = frame.image.shape[:2]
        dets = clip_detections(self.detections(frame), height, width)
        if self.min_score is not None and len(dets):
            dets = dets[dets.scores >= self.min_score]
        t0 = time.perf_counter()
        embeddings = self.embedder.embed(frame.image, dets.boxes)
        t1 = time.perf_counter()
        dets = dets.replace(embeddings=embeddings)
        tracks = self.tracker.update(dets, frame.index)
        t2 = time.perf_counter()
        stats = self.stats
        stats.frames += 1
        stats.boxes += len(tracks)
        stats.track_ids.update(int(i) for i in tracks.ids)
        stats.embed_seconds += t1 - t0
        stats.track_seconds += t2 - t1
        stats.seconds += t2 - start
        return TrackedFrame(frame=frame, detections=dets, tracks=tracks)

    def run(self, frames: Iterable[Frame]) -> Iterator[TrackedFrame]:
        """Process ``frames`` one by one (streaming); yields each frame's result."""
        for frame in frames:
            yield self.step(frame)

