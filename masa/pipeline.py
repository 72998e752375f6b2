"""The one way to assemble the system: :func:`build_pipeline` from a :class:`PipelineConfig`.

``frames -> detections (given, or the adapter's own head) -> MasaPredictor (embeddings) -> tracker
-> sinks (MOT txt, JSON, annotated video, ...)``, one frame at a time (streaming; nothing is
buffered). :class:`TrackingPipeline` owns one video's state (the tracker memory); the model it
calls is stateless. ``masa track``, ``benchmarks/mot_benchmark.py`` and the README's Python example
all build their pipeline here; the CLI only turns arguments into a :class:`PipelineConfig`.

Conventions: boxes are xyxy float32 in original-frame pixels; ``frame.index`` is 0-based.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import torch

from masa.io.errors import OutputError
from masa.io.frames import Frame
from masa.io.mot import detection_frames
from masa.modeling.build import build_predictor
from masa.modeling.predictor import MasaPredictor
from masa.structures import Detections, Tracks

__all__ = [
    "TRACKER_PRESETS",
    "PipelineConfig",
    "TrackingPipeline",
    "TrackedFrame",
    "RunStats",
    "Sink",
    "Tracker",
    "build_pipeline",
    "build_tracker",
    "describe_tracker",
    "ASSUMED_FPS",
    "load_detections",
    "normalize_scores",
    "given_detections",
    "GivenDetections",
    "output_sinks",
]

#: ``--tracker`` choices: the fused appearance + motion tracker (default), and the authors' trackers:
#: their demo config, their TAO config, their BDD tracker.
TRACKER_PRESETS = ("fused", "plug-and-play", "tao", "bdd")
#: frame rate the fused tracker assumes when the source has none (an image folder without seqinfo.ini).
ASSUMED_FPS = 30.0


class Tracker(Protocol):
    """What the pipeline needs from a tracker (``FusedTracker``, ``MasaTaoTracker``, ``MasaBDDTracker``).

    A tracker whose ``needs_frames`` attribute is true (the fused one with camera-motion
    compensation) also gets ``observe_frame(image, boxes)`` before each ``update``.
    """

    def update(self, detections: Detections, frame_index: int) -> Tracks: ...

    def reset(self) -> None: ...


def describe_tracker(tracker: Tracker) -> str:
    """One line naming the tracker and its settings, for the user."""
    describe = getattr(tracker, "describe", None)
    if describe is not None:
        return describe()
    config = getattr(tracker, "config", None)
    return f"{type(tracker).__name__}({config})" if config is not None else type(tracker).__name__


DetectionSource = Callable[[Frame], Detections]


@dataclass
class TrackedFrame:
    """One processed frame: the frame, the detections fed to the tracker (with embeddings) and the tracks."""

    frame: Frame
    detections: Detections
    tracks: Tracks


class Sink(Protocol):
    """Receives every :class:`TrackedFrame` in order; ``close()`` is called once at the end."""

    def write(self, result: TrackedFrame) -> None: ...

    def close(self) -> None: ...


@dataclass
class RunStats:
    """Running totals of a tracking run (seconds are wall-clock inside :meth:`TrackingPipeline.step`)."""

    frames: int = 0
    boxes: int = 0
    track_ids: set[int] = field(default_factory=set)
    seconds: float = 0.0
    embed_seconds: float = 0.0
    track_seconds: float = 0.0
    outside: int = 0
    outside_rows: list[str] = field(default_factory=list)
    below_min_score: int = 0

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class PipelineConfig:
    """Everything ``masa track`` needs to know, as data.

    model: a model name (``masa_lite0``, the default: the shipped self-supervised adapter;
        ``raw_efficientnet_lite0``, the off-the-shelf features; ``lite``; a backbone name such as
        ``efficientnet_lite2`` for its raw features) or a checkpoint file (our ``.safetensors``, or
        the authors' ``.pth``).
    sam_checkpoint: original SAM checkpoint for SAM-based models whose file lacks the encoder.
    device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``. fp16: CUDA autocast.
    detections: a detections file (MOTChallenge ``det.txt`` or COCO-style JSON; 1-based frames);
        ``None`` uses the model's own detection head (or detections passed to :func:`build_pipeline`).
    score_norm: ``auto`` maps scores to [0, 1] only when some lie outside (MOTChallenge ACF
        scores), ``minmax`` always, ``none`` never.
    min_score: drop detections scoring below this (after normalisation) before embedding.
    tracker: a :data:`TRACKER_PRESETS` name: ``fused`` (default, :class:`~masa.tracking.FusedTracker`)
        or one of the authors' trackers. match_thresh, init_thresh: overrides of the tracker's match
        threshold and of the score that starts a track (fused: ``match_thresh`` /
        ``new_track_thresh``; authors': ``match_score_thresh`` / ``init_score_thresh``).
        memory_frames: the authors' trackers only (``memory_frames``); the fused tracker keeps
        lost tracks by time: ``reid_seconds``, ``lost_seconds``.
    fps: frame rate for the fused tracker's times, overriding the source's (``None``: the
        source's, else :data:`ASSUMED_FPS`). cmc: the fused tracker's camera-motion compensation
        (``off``, ``sparse-flow``, ``ecc``). class_aware: fused tracker, match equal labels only.
    """

    model: str = "masa_lite0"
    sam_checkpoint: str | None = None
    device: str = "auto"
    fp16: bool = False
    detections: str | None = None
    score_norm: str = "auto"
    min_score: float | None = None
    tracker: str = "fused"
    memory_frames: int | None = None
    match_thresh: float | None = None
    init_thresh: float | None = None
    reid_seconds: float | None = None
    lost_seconds: float | None = None
    fps: float | None = None
    cmc: str = "off"
    class_aware: bool = False

    def __post_init__(self) -> None:
        if self.tracker not in TRACKER_PRESETS:
            raise ValueError(f"--tracker: expected one of {TRACKER_PRESETS}, got {self.tracker!r}")
        if self.score_norm not in ("auto", "none", "minmax"):
            raise ValueError(f"--score-norm: expected auto, none or minmax, got {self.score_norm!r}")
        fused_only = {"reid_seconds": "--reid-seconds", "lost_seconds": "--lost-seconds"}
        if self.tracker != "fused":
            given = [flag for name, flag in fused_only.items() if getattr(self, name) is not None]
            given += ["--cmc"] if self.cmc != "off" else []
            given += ["--class-aware"] if self.class_aware else []
            if given:
                raise ValueError(f"{', '.join(given)}: only the fused tracker has this setting (--tracker fused), not {self.tracker}")
        elif self.memory_frames is not None:
            raise ValueError(
                "--memory-frames: the fused tracker keeps lost tracks by time, not frames: "
                "use --reid-seconds (re-identification memory) or --lost-seconds (motion memory)"
            )
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"--fps: expected a frame rate > 0, got {self.fps}")


def build_tracker(config: PipelineConfig, *, fps: float | None = None) -> Tracker:
    """The tracker of ``config`` with its overrides applied (a fresh instance, ids from 0).

    ``fps`` is the source's frame rate (the fused tracker's clock); ``config.fps`` overrides it,
    and without either :data:`ASSUMED_FPS` is used.
    """
    from masa.tracking import BddTrackerConfig, FusedTracker, FusedTrackerConfig, MasaBDDTracker, MasaTaoTracker, TaoTrackerConfig

    if config.tracker == "fused":
        fused: dict[str, object] = {"cmc": config.cmc, "class_aware": config.class_aware}
        for name, field_name in (
            ("match_thresh", "match_thresh"),
            ("init_thresh", "new_track_thresh"),
            ("reid_seconds", "reid_seconds"),
            ("lost_seconds", "lost_seconds"),
        ):
            if getattr(config, name) is not None:
                fused[field_name] = getattr(config, name)
        if config.init_thresh is not None:
            # A box must be confident to start a track: a lower --init-thresh lowers that bar too.
            base = FusedTrackerConfig()
            fused["high_score_thresh"] = min(base.high_score_thresh, config.init_thresh)
            fused["low_score_thresh"] = min(base.low_score_thresh, config.init_thresh)
        rate = config.fps if config.fps is not None else fps if fps else ASSUMED_FPS
        return FusedTracker(replace(FusedTrackerConfig(), **fused), fps=rate)
    overrides: dict[str, float | int] = {}
    if config.memory_frames is not None:
        overrides["memory_frames"] = config.memory_frames
    if config.match_thresh is not None:
        overrides["match_score_thresh"] = config.match_thresh
    if config.init_thresh is not None:
        overrides["init_score_thresh"] = config.init_thresh
    if config.tracker == "bdd":
        return MasaBDDTracker(replace(BddTrackerConfig.bdd_benchmark(), **overrides))
    base = TaoTrackerConfig.plug_and_play() if config.tracker == "plug-and-play" else TaoTrackerConfig.tao_benchmark()
    return MasaTaoTracker(replace(base, **overrides))


def load_detections(path: str | Path) -> dict[int, Detections]:
    """``{0-based frame index: Detections}`` from a MOTChallenge ``det.txt`` or a COCO-style JSON file."""
    from masa.io.json_io import read_json_detections
    from masa.io.mot import read_mot_detections

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    if path.suffix.lower() == ".json":
        return read_json_detections(path)
    return read_mot_detections(path)


def normalize_scores(detections_by_frame: Mapping[int, Detections], mode: str = "auto") -> tuple[dict[int, Detections], str | None]:
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


class GivenDetections:
    """Pre-computed detections looked up by 0-based frame index (a :data:`DetectionSource`).

    Remembers which frames were asked for, so that a run can say which rows it never used
    (rows on frames past the end of the video, or on frames that could not be read).
    """

    def __init__(self, detections_by_frame: Mapping[int, Detections]) -> None:
        self.by_frame = dict(detections_by_frame)
        self.requested: set[int] = set()

    @property
    def num_rows(self) -> int:
        return sum(len(d) for d in self.by_frame.values())

    def __call__(self, frame: Frame) -> Detections:
        self.requested.add(frame.index)
        return detection_frames(self.by_frame, frame.index)

    def unused(self) -> dict[int, Detections]:
        """``{0-based frame: Detections}`` of the non-empty frames never asked for."""
        return {k: d for k, d in sorted(self.by_frame.items()) if len(d) and k not in self.requested}


def given_detections(detections_by_frame: Mapping[int, Detections]) -> GivenDetections:
    """A detection source that looks up pre-computed detections by 0-based frame index."""
    return GivenDetections(detections_by_frame)


def _row_labels(dets: Detections) -> list[str]:
    """How to name rows for the user: file lines (MOT) or record numbers (JSON), else nothing."""
    if "line" in dets.data:
        return [f"line {int(v)}" for v in dets.data["line"]]
    if "record" in dets.data:
        return [f"record {int(v)}" for v in dets.data["record"]]
    return []


def _first(labels: list[str], limit: int = 5) -> str:
    return ", ".join(labels[:limit]) + (", ..." if len(labels) > limit else "")


class TrackingPipeline:
    """Track one video: ``with pipeline: for result in pipeline.run(frames): ...``.

    Args:
        predictor: per-frame model wrapper giving embeddings (and its own detections).
        tracker: online tracker (holds this video's state).
        detections: where a frame's detections come from; ``None`` uses ``predictor``'s own head.
        min_score: detections scoring below this are dropped before embedding (``None``: keep all).
        sinks: receive every :class:`TrackedFrame` (see :func:`output_sinks`); closed by :meth:`close`.

    ``notes`` collects one-line messages for the user (e.g. how scores were normalised).
    """

    def __init__(
        self,
        predictor: MasaPredictor,
        tracker: Tracker,
        detections: DetectionSource | None = None,
        *,
        min_score: float | None = None,
        sinks: Iterable[Sink] = (),
    ) -> None:
        if detections is None and not predictor.has_detector:
            raise ValueError("no detections: pass --detections FILE (MOTChallenge det.txt or JSON), or a model with a detection head")
        self.predictor = predictor
        self.tracker = tracker
        self.detections = detections
        self.min_score = min_score
        self.sinks: list[Sink] = list(sinks)
        self.notes: list[str] = []
        self.stats = RunStats()

    def add_sink(self, sink: Sink) -> None:
        self.sinks.append(sink)

    def reset(self) -> None:
        """Forget the video: tracker memory, ids and statistics (sinks stay attached)."""
        self.tracker.reset()
        self.stats = RunStats()

    def step(self, frame: Frame) -> TrackedFrame:
        """Detect (or look up), embed and track one frame; the sinks receive the result."""
        start = time.perf_counter()
        height, width = frame.image.shape[:2]
        dets = None
        if self.detections is not None:
            given = self.detections(frame)
            clipped = given.clip(height, width, drop_empty=False)
            boxes = clipped.boxes
            inside = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
            if not bool(inside.all()):  # boxes entirely outside the frame cannot be tracked
                self.stats.outside += int((~inside).sum())
                if len(self.stats.outside_rows) < 5:
                    self.stats.outside_rows += _row_labels(given[~inside])[:5]
            dets = clipped[inside]
            if self.min_score is not None and len(dets):
                keep = dets.scores >= self.min_score
                self.stats.below_min_score += int((~keep).sum())
                dets = dets[keep]
        t0 = time.perf_counter()
        dets = self.predictor.predict(frame.image, dets)
        t1 = time.perf_counter()
        if getattr(self.tracker, "needs_frames", False):
            self.tracker.observe_frame(frame.image, dets.boxes)  # camera motion: the tracker's only view of pixels
        tracks = self.tracker.update(dets, frame.index)
        t2 = time.perf_counter()
        stats = self.stats
        stats.frames += 1
        stats.boxes += len(tracks)
        stats.track_ids.update(int(i) for i in tracks.ids)
        stats.embed_seconds += t1 - t0
        stats.track_seconds += t2 - t1
        stats.seconds += t2 - start
        result = TrackedFrame(frame=frame, detections=dets, tracks=tracks)
        for sink in self.sinks:
            sink.write(result)
        return result

    def warnings(self) -> list[str]:
        """What the user must know about the run so far: detections that were dropped or never
        used, and a run in which nothing was tracked. One sentence each."""
        out = []
        stats = self.stats
        if isinstance(self.detections, GivenDetections):
            if self.detections.num_rows == 0:
                out.append("the detections hold no rows at all: nothing could be tracked")
            unused = self.detections.unused()
            if unused and stats.frames:
                rows = sum(len(d) for d in unused.values())
                frames = [k + 1 for k in unused]
                labels = [label for d in unused.values() for label in _row_labels(d)]
                where = f" ({_first(labels)})" if labels else ""
                last = max(self.detections.requested) + 1 if self.detections.requested else 0
                past = sum(1 for f in frames if f > last)
                reason = (
                    f"{past} of these frames lie past the last frame read ({last})" if past else "these frames were not read"
                )
                out.append(
                    f"{rows} detection rows on {len(frames)} frames were never used: frames {_first([str(f) for f in frames])} "
                    f"(1-based){where}; {reason}"
                )
        if stats.outside:
            where = f" ({_first(stats.outside_rows)})" if stats.outside_rows else ""
            out.append(f"{stats.outside} detection boxes lie entirely outside the frame and were dropped{where}")
        if stats.frames and not stats.track_ids:
            out.append(
                f"no box was tracked in {stats.frames} frames: check that the detections belong to this video and "
                "that their scores reach the tracker's thresholds (--init-thresh, --min-score, --score-norm)"
            )
        return out

    def run(self, frames: Iterable[Frame]) -> Iterator[TrackedFrame]:
        """Process ``frames`` one by one (streaming); yields each frame's result."""
        for frame in frames:
            yield self.step(frame)

    def close(self) -> None:
        """Close every sink (files stay valid and complete up to the last frame written)."""
        sinks, self.sinks = self.sinks, []
        errors = []
        for sink in sinks:
            try:
                sink.close()
            except Exception as exc:  # close the others, then report the first failure
                errors.append(exc)
        if errors:
            raise errors[0]

    def __enter__(self) -> TrackingPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_pipeline(
    config: PipelineConfig = PipelineConfig(),
    *,
    detections: Mapping[int, Detections] | None = None,
    predictor: MasaPredictor | None = None,
    sinks: Iterable[Sink] = (),
    fps: float | None = None,
) -> TrackingPipeline:
    """The pipeline ``config`` describes.

    ``fps``: the source's frame rate (``None`` when it has none): the fused tracker counts its
    times with it (``config.fps`` overrides it); without either it assumes :data:`ASSUMED_FPS`
    and says so in ``notes``.

    ``detections``: pre-loaded ``{0-based frame: Detections}`` instead of ``config.detections``
    (scores are normalised the same way). ``predictor``: reuse an already built predictor (e.g.
    one model for many videos); by default it is built from ``config.model``.
    """
    notes = []
    if detections is None and config.detections is not None:
        detections = load_detections(config.detections)
    source = None
    if detections is not None:
        detections, note = normalize_scores(detections, config.score_norm)
        if note:
            notes.append(f"{note} (--score-norm)")
        source = given_detections(detections)
    if predictor is None:
        predictor = build_predictor(config.model, device=config.device, fp16=config.fp16, sam_checkpoint=config.sam_checkpoint)
    if config.tracker == "fused" and config.fps is None and not fps:
        notes.append(f"the source has no frame rate: the fused tracker assumes {ASSUMED_FPS:g} fps (set it with --fps)")
    tracker = build_tracker(config, fps=fps)
    pipeline = TrackingPipeline(predictor, tracker, source, min_score=config.min_score, sinks=sinks)
    pipeline.notes.extend(notes)
    return pipeline


# ---------------------------------------------------------------------------------------------
# Sinks: the io writers behind the Sink interface


class _WriterSink:
    """An io writer behind the :class:`Sink` interface; OS errors name the file, in words."""

    def __init__(self, writer) -> None:
        self.writer = writer

    def _write(self, *args) -> None:
        try:
            self.writer.write(*args)
        except OSError as exc:
            raise OutputError.from_os_error(self.writer.path, exc) from None

    def write(self, result: TrackedFrame) -> None:
        self._write(result.frame.index, result.tracks)

    def close(self) -> None:
        try:
            self.writer.close()
        except OSError as exc:
            raise OutputError.from_os_error(self.writer.path, exc, "cannot finish writing") from None


class _AnnotatedVideoSink(_WriterSink):
    """Draws the tracks and appends the frame; frames of another size than the first are resized
    to it (with one warning naming the first such input frame), so the video stays valid."""

    def __init__(self, writer) -> None:
        super().__init__(writer)
        self.size: tuple[int, int] | None = None
        self.resized = 0

    def write(self, result: TrackedFrame) -> None:
        import cv2

        from masa.io.draw import draw_tracks

        image = draw_tracks(result.frame.image, result.tracks)
        size = (int(image.shape[0]), int(image.shape[1]))
        if self.size is None:
            self.size = size
        elif size != self.size:
            if not self.resized:
                warnings.warn(
                    f"{result.frame.name}: frame size {size[1]}x{size[0]} differs from the first frame's "
                    f"{self.size[1]}x{self.size[0]}; the annotated video shows it resized (tracks keep its own pixels)",
                    RuntimeWarning,
                    stacklevel=2,
                )
            self.resized += 1
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        self._write(image)


def output_sinks(out: str | Path, *, video_name: str, fps: float | None, video: bool = True) -> list[Sink]:
    """``OUT/tracks.txt`` (MOTChallenge), ``OUT/tracks.json`` (TAO/COCO-VID) and, with ``video``,
    ``OUT/video.mp4`` (annotated, at ``fps`` or 25). Each file is flushed every frame."""
    from masa.io.json_io import JsonResultWriter
    from masa.io.mot import MotResultWriter
    from masa.io.video_writer import VideoWriter

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(out, "is a file", "a folder for tracks.txt, tracks.json and video.mp4 (created if missing)")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError.from_os_error(out, exc, "cannot create the output folder") from None
    sinks: list[Sink] = []
    try:
        for name, make in (
            ("tracks.txt", lambda path: MotResultWriter(path)),
            ("tracks.json", lambda path: JsonResultWriter(path, video_name=video_name)),
        ):
            try:
                sinks.append(_WriterSink(make(out / name)))
            except OSError as exc:
                raise OutputError.from_os_error(out / name, exc, "cannot create") from None
        if video:
            sinks.append(_AnnotatedVideoSink(VideoWriter(out / "video.mp4", fps=fps or 25.0)))
    except BaseException:
        for sink in sinks:
            sink.close()
        raise
    return sinks
