"""Side-by-side tracking quality and speed on MOTChallenge sequences, one process, one command.

    python benchmarks/mot_benchmark.py                      # all of ../shared/data/mot15, writes docs/
    python benchmarks/mot_benchmark.py --seq-root DIR ...   # any MOTChallenge-layout folders
    python benchmarks/mot_benchmark.py --quick              # TUD-Campus only, no docs update

Every tracker sees the same observations (boxes and scores; the MASA and fused trackers also get
the embeddings of their appearance model for the same boxes; the trackers with camera-motion
compensation also get the image of each observed frame):

* protocol ``gt``: the ground-truth boxes with ids stripped and rows shuffled (association only);
* protocol ``det``: the public detections exactly as ``masa track`` reads them: the pipeline of
  :func:`masa.pipeline.build_pipeline` runs on each sequence (scores mapped to [0, 1] per file,
  boxes clipped to the frame), and the MASA rows are checked to equal its tracks;
* protocol ``lowfps``: ground-truth boxes as in ``gt``, keeping every k-th frame (frames and gt
  renumbered) so that each sequence runs at about 2-3 frames/s, the regime of TAO (1 fps), where
  motion cues fail and appearance must carry the association.

Trackers:

* the MASA tracker (authors' plug-and-play configuration, untuned) with each appearance model;
* the fused tracker (:class:`masa.tracking.FusedTracker`, default configuration, ``fps`` set to
  the observations' frame rate) with each appearance model, plus one row with camera-motion
  compensation (``cmc="sparse-flow"``) on the last appearance model; it is skipped, with a note,
  when ``masa.tracking`` has no ``FusedTracker``;
* an IoU-greedy floor;
* every box tracker of the PyPI package ``trackers`` (2.6.1): SORT, ByteTrack, OC-SORT, BoT-SORT
  (its default camera-motion compensation on: it gets each frame in BGR), BoT-SORT without CMC and
  C-BIoU, each with the package defaults except ``frame_rate`` (the observations' frame rate);
  only confirmed ids (``tracker_id >= 0``) are scored. McByte is left out: it needs segmentation
  masks, which these observations do not have.

Images are read (``MotSequenceSource`` paths, ``masa.io.read_image``, RGB) one per observed frame
inside the tracking loop, only for trackers that use them, and outside the timed region.

Reported per protocol: HOTA / AssA / IDF1 / MOTA / IDSW per sequence and combined; a "Targets"
table (the default fused row ``Fused (masa_lite0)`` against the best ``trackers`` peer per metric);
and the median per-frame time of each tracker's own ``update()`` call (camera-motion compensation
included; input conversion and image reading excluded; one torch thread by default,
``--tracker-threads``; embedding time reported separately). Results are written between
markers into docs/benchmarks.md, plots into docs/img/.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from docs_section import write_section

from masa.eval import evaluate_mot
from masa.io import MotSequenceSource, read_image, read_mot_rows
from masa.modeling.build import build_predictor
from masa.modeling.predictor import MasaPredictor
from masa.ops.boxes import box_iou, xywh_to_xyxy
from masa.pipeline import PipelineConfig, build_pipeline, build_tracker, load_detections
from masa.structures import Detections, Tracks
from masa.tracking import FusedTracker, FusedTrackerConfig

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "mot15"
LOWFPS_TARGET = 2.5  # frames per second after subsampling
BEGIN, END = "<!-- mot-benchmark:begin -->", "<!-- mot-benchmark:end -->"
METRICS = ("HOTA", "AssA", "IDF1", "MOTA", "IDSW")
#: the MASA tracker's configuration in every MASA row: ``masa track``'s defaults.
MASA_TRACKER = PipelineConfig(tracker="plug-and-play")
#: appearance models run by default (``--appearance``): the raw Lite0 baseline and the shipped default.
DEFAULT_APPEARANCE = ["raw_efficientnet_lite0", "masa_lite0"]
QUICK_APPEARANCE = ["masa_lite0"]
#: the fused row the "Targets" table compares with the best ``trackers`` peer.
TARGET_LABEL = "masa_lite0"
TARGET_ROW = f"Fused ({TARGET_LABEL})"
TARGET_METRICS = ("HOTA", "AssA", "IDF1")
#: camera-motion compensation of the "Fused + CMC" row.
FUSED_CMC = "sparse-flow"
#: the box trackers of the PyPI package ``trackers``: (row label, class name, keyword arguments
#: besides ``frame_rate``, whether ``update()`` gets the frame). Package defaults otherwise.
PEERS: tuple[tuple[str, str, dict[str, Any], bool], ...] = (
    ("SORT", "SORTTracker", {}, False),
    ("ByteTrack", "ByteTrackTracker", {}, False),
    ("OC-SORT", "OCSORTTracker", {}, False),
    ("BoT-SORT", "BoTSORTTracker", {}, True),  # enable_cmc=True (sparseOptFlow, downscale 2): BGR frames
    ("BoT-SORT (no CMC)", "BoTSORTTracker", {"enable_cmc": False}, False),
    ("C-BIoU", "CBIoUTracker", {}, False),
)


# ----------------------------------------------------------------------------------------------
# Data


@dataclass
class Sequence:
    name: str
    folder: Path
    num_frames: int
    fps: float
    gt: np.ndarray  # [K, >=6] MOT rows, 1-based frames
    det_path: Path


@dataclass
class Observations:
    """What every tracker sees for one (sequence, protocol): per-frame boxes and scores."""

    sequence: str
    protocol: str
    fps: float
    frames: list[int]  # observation frame i -> 0-based frame of the sequence
    detections: list[Detections]  # observation frame i -> xyxy boxes + scores (+ embeddings per model)
    gt: np.ndarray  # ground truth renumbered to these frames (1-based)
    embeddings: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    folder: Path | None = None  # the sequence folder (images for the trackers that use frames)
    raw_scores: list[torch.Tensor] | None = None  # det: each row's score as in the file (before [0, 1] mapping)


def load_sequence(folder: Path) -> Sequence:
    with MotSequenceSource(folder) as source:
        if source.gt_path is None or source.det_path is None:
            raise FileNotFoundError(f"{folder}: a benchmark sequence needs gt/gt.txt and det/det.txt")
        return Sequence(
            source.name, folder, source.num_frames, float(source.fps or 30.0), read_mot_rows(source.gt_path).rows, source.det_path
        )


def lowfps_step(fps: float) -> int:
    """Keep every k-th frame so that the sequence runs at about 2-3 frames/s."""
    return max(1, round(fps / LOWFPS_TARGET))


def gt_observations(seq: Sequence, rng: np.random.Generator) -> list[Detections]:
    """Ground-truth boxes per frame, ids stripped and rows shuffled (MOT15: conf-0 rows are ignored)."""
    rows = seq.gt[seq.gt[:, 6] != 0] if seq.gt.shape[1] > 6 else seq.gt
    out = []
    for f in range(1, seq.num_frames + 1):
        sel = np.flatnonzero(rows[:, 0] == f)
        sel = sel[rng.permutation(len(sel))]
        xywh = torch.from_numpy(rows[sel, 2:6].astype(np.float32)).reshape(-1, 4)
        keep = (xywh[:, 2] > 0) & (xywh[:, 3] > 0)
        out.append(Detections(boxes=xywh_to_xyxy(xywh[keep]), scores=torch.ones(int(keep.sum()))))
    return out


def make_observations(
    seq: Sequence, protocols: list[str], predictors: dict[str, MasaPredictor], seed: int = 0
) -> tuple[dict[str, Observations], dict[str, list[float]], dict[str, list[Tracks]]]:
    """The observations of every protocol for one sequence, with every model's embeddings.

    The ``det`` protocol runs the pipeline ``masa track`` builds (same reader, score
    normalisation, clipping, predictor and tracker) and returns its MASA tracks, so that the
    replay in :func:`run_tracker` can be checked against them. ``gt`` boxes are embedded from the
    same cached features (one backbone pass per frame and model); ``lowfps`` reuses the ``gt``
    observations of the kept frames. Also returns each model's predictor milliseconds per frame
    (both box sets, tracking excluded).
    """
    gt_dets = gt_observations(seq, np.random.default_rng(seed))
    det_dets: list[Detections] = []
    embeddings: dict[str, dict[str, list[torch.Tensor]]] = {"gt": {}, "det": {}}
    embed_ms: dict[str, list[float]] = {}
    pipeline_tracks: dict[str, list[Tracks]] = {}
    for name, predictor in predictors.items():
        pipeline = build_pipeline(replace(MASA_TRACKER, detections=str(seq.det_path)), predictor=predictor)
        det_e, gt_e, times, tracks = [], [], [], []
        with MotSequenceSource(seq.folder) as source:
            for frame in source:
                t0, tracking = time.perf_counter(), pipeline.stats.track_seconds
                result = pipeline.step(frame)  # the det protocol, exactly as `masa track` runs it
                if len(gt_dets[frame.index]) and not predictor.is_image_set:
                    predictor.set_image(frame.image)  # the frame had no detections: no backbone pass yet
                gt_e.append(predictor.predict(None, gt_dets[frame.index]).embeddings)
                times.append(1000 * (time.perf_counter() - t0 - (pipeline.stats.track_seconds - tracking)))
                det_e.append(result.detections.embeddings)
                tracks.append(result.tracks)
                if len(det_dets) == frame.index:  # the first model's pass keeps the observations
                    det_dets.append(result.detections.replace(embeddings=None))
        embeddings["det"][name], embeddings["gt"][name], embed_ms[name] = det_e, gt_e, times
        pipeline_tracks[name] = tracks
    out: dict[str, Observations] = {}
    frames = list(range(seq.num_frames))
    if "gt" in protocols:
        out["gt"] = Observations(seq.name, "gt", seq.fps, frames, gt_dets, seq.gt, embeddings["gt"], seq.folder)
    if "det" in protocols:
        # The file's own scores (MOTChallenge ACF: about -1 to 140), undoing the pipeline's min-max map.
        file_scores = torch.cat([d.scores for d in load_detections(seq.det_path).values() if len(d)])
        low, high = float(file_scores.min()), float(file_scores.max())
        span = high - low if high > low else 1.0
        raw = [d.scores * span + low if (low < 0 or high > 1) else d.scores for d in det_dets]
        out["det"] = Observations(seq.name, "det", seq.fps, frames, det_dets, seq.gt, embeddings["det"], seq.folder, raw)
    if "lowfps" in protocols:
        k = lowfps_step(seq.fps)
        kept = list(range(0, seq.num_frames, k))  # 0-based original frames
        renumber = {f + 1: i + 1 for i, f in enumerate(kept)}
        rows = seq.gt[np.isin(seq.gt[:, 0], list(renumber))].copy()
        rows[:, 0] = [renumber[int(f)] for f in rows[:, 0]]
        lowfps = {n: [e[f] for f in kept] for n, e in embeddings["gt"].items()}
        out["lowfps"] = Observations(seq.name, "lowfps", seq.fps / k, kept, [gt_dets[f] for f in kept], rows, lowfps, seq.folder)
    return out, embed_ms, pipeline_tracks


class BenchTracker:
    name: str
    appearance: str | None = None  # embeddings it needs
    protocols: tuple[str, ...] = ("gt", "det", "lowfps")  # the protocols it runs on

    def observe(self, obs: Observations) -> None:
        """Called with the whole observation set before a sequence is tracked (default: nothing)."""

    @property
    def frame_format(self) -> str | None:
        """``"rgb"`` / ``"bgr"``: the tracker gets each observed frame's image in that order; ``None``: no images.
        Asked after :meth:`reset`."""
        return None

    def reset(self, fps: float) -> None: ...

    def step(
        self, frame_index: int, dets: Detections, embeddings: torch.Tensor | None, image: np.ndarray | None = None
    ) -> tuple[np.ndarray, float]:
        """Track ids ``int[N]`` per detection row (``-1`` for untracked rows) and the seconds of the
        tracker's own update (input conversion excluded)."""
        raise NotImplementedError


def _ids_from_tracks(n: int, tracks: Tracks) -> np.ndarray:
    ids = np.full(n, -1, dtype=np.int64)
    ids[tracks.det_index.numpy()] = tracks.ids.numpy()
    return ids


class MasaBench(BenchTracker):
    """The MASA tracker; ``rescale`` multiplies the embeddings (to show an untuned temperature)."""

    def __init__(self, name: str, appearance: str, rescale: float = 1.0) -> None:
        self.name, self.appearance, self.rescale = name, appearance, rescale

    def reset(self, fps: float) -> None:
        self.tracker = build_tracker(MASA_TRACKER)  # the tracker `masa track` builds

    def step(self, frame_index, dets, embeddings, image=None):
        inputs = dets.replace(embeddings=embeddings * self.rescale)
        t0 = time.perf_counter()
        tracks = self.tracker.update(inputs, frame_index)
        seconds = time.perf_counter() - t0
        return _ids_from_tracks(len(dets), tracks), seconds


class FusedBench(BenchTracker):
    """The fused tracker (``FusedTracker(config, fps=...)``); it gets RGB frames when its CMC is on."""

    def __init__(self, name: str, appearance: str, config: FusedTrackerConfig) -> None:
        self.name, self.appearance, self.config = name, appearance, config

    @property
    def frame_format(self) -> str | None:
        return "rgb" if self.tracker.needs_frames else None

    def reset(self, fps: float) -> None:
        self.tracker = FusedTracker(self.config, fps=fps)

    def step(self, frame_index, dets, embeddings, image=None):
        inputs = dets.replace(embeddings=embeddings)
        t0 = time.perf_counter()
        if image is not None:
            self.tracker.observe_frame(image, dets.boxes)  # camera motion (points on the boxes ignored): timed
        tracks = self.tracker.update(inputs, frame_index)
        seconds = time.perf_counter() - t0
        return _ids_from_tracks(len(dets), tracks), seconds


class IoUGreedyBench(BenchTracker):
    """Floor: link each box to the previous frame's box of highest IoU (>= 0.5), greedily by score."""

    name = "IoU-greedy"

    def __init__(self, iou_thresh: float = 0.5) -> None:
        self.iou_thresh = iou_thresh

    def reset(self, fps: float) -> None:
        self.prev_boxes = torch.zeros(0, 4)
        self.prev_ids = np.zeros(0, dtype=np.int64)
        self.next_id = 0

    def step(self, frame_index, dets, embeddings, image=None):
        t0 = time.perf_counter()
        ids = np.full(len(dets), -1, dtype=np.int64)
        iou = box_iou(dets.boxes, self.prev_boxes).numpy()
        taken = np.zeros(len(self.prev_ids), dtype=bool)
        for i in np.argsort(-dets.scores.numpy(), kind="stable"):
            if iou.shape[1]:
                cand = np.where(taken, -1.0, iou[i])
                j = int(cand.argmax())
                if cand[j] >= self.iou_thresh:
                    ids[i], taken[j] = self.prev_ids[j], True
                    continue
            ids[i], self.next_id = self.next_id, self.next_id + 1
        self.prev_boxes, self.prev_ids = dets.boxes, ids
        return ids, time.perf_counter() - t0


class RoboflowBench(BenchTracker):
    """A box tracker of the ``trackers`` package: ``factory(fps)`` builds it; confirmed ids only.

    ``uses_frames``: ``update(detections, frame=bgr)`` gets each frame (BoT-SORT with CMC); the
    others are never given ``frame=`` (they warn that they ignore it).
    """

    def __init__(self, name: str, factory: Callable[[float], Any], uses_frames: bool = False, raw_scores: bool = False) -> None:
        self.name, self.factory, self.uses_frames, self.raw_scores = name, factory, uses_frames, raw_scores
        if raw_scores:
            self.protocols = ("det",)

    @property
    def frame_format(self) -> str | None:
        return "bgr" if self.uses_frames else None

    def reset(self, fps: float) -> None:
        self.tracker = self.factory(fps)

    def observe(self, obs: Observations) -> None:
        self.scores = obs.raw_scores if obs.raw_scores is not None else [d.scores for d in obs.detections]

    def step(self, frame_index, dets, embeddings, image=None):
        import supervision as sv

        scores = self.scores[frame_index] if self.raw_scores else dets.scores
        sv_dets = sv.Detections(
            xyxy=dets.boxes.numpy().reshape(-1, 4),
            confidence=scores.numpy(),
            class_id=np.zeros(len(dets), dtype=int),
            data={"row": np.arange(len(dets))},
        )
        t0 = time.perf_counter()
        out = self.tracker.update(sv_dets, frame=image) if self.uses_frames else self.tracker.update(sv_dets)
        seconds = time.perf_counter() - t0
        ids = np.full(len(dets), -1, dtype=np.int64)
        if len(out):
            confirmed = np.asarray(out.tracker_id, dtype=np.int64) >= 0
            ids[out.data["row"][confirmed]] = np.asarray(out.tracker_id, dtype=np.int64)[confirmed]
        return ids, seconds


def build_peers() -> list[RoboflowBench]:
    """Every box tracker of the ``trackers`` package (McByte, which needs masks, excepted)."""
    try:
        import trackers as package
    except ImportError:
        print("note: the 'trackers' package is not installed; its trackers are skipped", file=sys.stderr)
        return []
    peers = []
    for raw_scores in (False, True):  # det also with the file's raw scores, as a user would feed them
        for label, class_name, kwargs, uses_frames in PEERS:
            cls = getattr(package, class_name)
            name = f"{label} (raw scores)" if raw_scores else label
            factory = lambda fps, cls=cls, kwargs=kwargs: cls(frame_rate=fps, **kwargs)  # noqa: E731
            peers.append(RoboflowBench(name, factory, uses_frames, raw_scores))
    return peers


def fused_variant(text: str) -> tuple[str, FusedTrackerConfig]:
    """``NAME:field=value,field=value`` -> ``(NAME, config)``: the default config with those fields."""
    import dataclasses

    name, sep, assignments = text.partition(":")
    if not sep or not name:
        raise SystemExit(f"--fused-variant {text!r}: expected NAME:field=value[,field=value...]")
    base = FusedTrackerConfig()
    fields = {f.name for f in dataclasses.fields(base)}
    changes: dict[str, Any] = {}
    for item in filter(None, assignments.split(",")):
        key, _, value = item.partition("=")
        if key not in fields:
            raise SystemExit(f"--fused-variant {text!r}: {key!r} is not a FusedTrackerConfig field ({', '.join(sorted(fields))})")
        current = getattr(base, key)
        if value == "None":
            changes[key] = None
        elif isinstance(current, bool):
            changes[key] = value.lower() in ("1", "true", "yes")
        elif isinstance(current, str):
            changes[key] = value
        else:
            changes[key] = int(value) if isinstance(current, int) else float(value)
    return name, replace(base, **changes)


def build_trackers(
    predictors: dict[str, MasaPredictor], *, variants: list[str] = (), peers: bool = True
) -> list[BenchTracker]:
    trackers: list[BenchTracker] = [MasaBench(f"MASA ({a})", a) for a in predictors]
    raw = [(a, p.config.raw_features.scale) for a, p in predictors.items() if p.config.raw_features is not None]
    if raw:  # the baseline's embedding scale was tuned on these sequences: show it untuned too
        a, scale = raw[0]
        trackers.append(MasaBench(f"MASA ({a}, untuned scale 1)", a, 1.0 / scale))
    if predictors:
        trackers += [FusedBench(f"Fused ({a})", a, FusedTrackerConfig()) for a in predictors]
        last = list(predictors)[-1]
        trackers.append(FusedBench(f"Fused + CMC ({last})", last, replace(FusedTrackerConfig(), cmc=FUSED_CMC)))
        for text in variants:  # ablations: the default config with some fields changed, on the last model
            name, config = fused_variant(text)
            trackers.append(FusedBench(f"Fused ({last}, {name})", last, config))
    trackers.append(IoUGreedyBench())
    if peers:
        trackers += build_peers()
    return trackers


# ----------------------------------------------------------------------------------------------
# Running


def run_tracker(tracker: BenchTracker, obs: Observations) -> tuple[np.ndarray, list[float], list[np.ndarray]]:
    """Track one sequence; returns MOT rows (1-based frames and ids), per-frame update() seconds
    and the per-frame ids of every observation row (``-1``: untracked).

    A tracker with a ``frame_format`` gets the image of each observed frame, read here one at a
    time (the sequence's own image files, ``masa.io.read_image``: RGB) outside the timed region.
    """
    tracker.reset(obs.fps)
    tracker.observe(obs)
    rows, times, all_ids = [], [], []
    embeds = obs.embeddings.get(tracker.appearance) if tracker.appearance else None
    image_format = tracker.frame_format
    paths: dict[int, Path] | None = None
    if image_format is not None:
        if obs.folder is None:
            raise ValueError(f"{tracker.name} needs frames, but the {obs.sequence} observations have no folder")
        with MotSequenceSource(obs.folder) as source:
            paths = source.index_paths()  # 0-based sequence frame -> image file
    for index, dets in enumerate(obs.detections):
        emb = embeds[index] if embeds is not None else None
        image = None
        if paths is not None and obs.frames[index] in paths:  # a missing image: the tracker goes without
            image = read_image(paths[obs.frames[index]])  # uint8 [H, W, 3] RGB
            if image_format == "bgr":
                image = np.ascontiguousarray(image[:, :, ::-1])
        ids, seconds = tracker.step(index, dets, emb, image)
        times.append(seconds)
        all_ids.append(ids)
        xywh = dets.xywh.numpy()
        for r in np.flatnonzero(ids >= 0):
            rows.append([index + 1, ids[r] + 1, *xywh[r], float(dets.scores[r]), -1, -1, -1])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 10), times, all_ids


def check_replay(name: str, replay: list[np.ndarray], pipeline: list[Tracks]) -> None:
    """The MASA row of the ``det`` protocol must equal what the pipeline (``masa track``) tracked."""
    for index, (ids, tracks) in enumerate(zip(replay, pipeline)):
        expected = np.full(len(ids), -1, dtype=np.int64)
        expected[tracks.det_index.numpy()] = tracks.ids.numpy()
        if not np.array_equal(ids, expected):
            raise RuntimeError(f"{name}: the benchmark replay differs from the pipeline at frame {index}")


def iterate(args: argparse.Namespace) -> Iterator[Sequence]:
    for root in args.seq_root:
        folders = [root] if (root / "seqinfo.ini").is_file() else sorted(p for p in root.iterdir() if (p / "seqinfo.ini").is_file())
        for folder in folders:
            if args.sequences and folder.name not in args.sequences:
                continue
            yield load_sequence(folder)


def _label_spec(text: str) -> tuple[str, str]:
    """``LABEL=SPEC`` -> ``(LABEL, SPEC)``; a bare ``SPEC`` is its own label."""
    label, sep, spec = text.partition("=")
    return (label, spec) if sep else (text, text)


def _first_sequence(args: argparse.Namespace) -> str:
    return next(iter(iterate(args))).name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-root", type=Path, nargs="+", default=[DEFAULT_ROOT], help="MOTChallenge folders")
    parser.add_argument("--sequences", nargs="*", help="only these sequence names")
    parser.add_argument("--protocols", nargs="+", default=["gt", "det", "lowfps"], choices=["gt", "det", "lowfps"])
    parser.add_argument(
        "--appearance",
        nargs="+",
        help="appearance models for the MASA and fused trackers: model names or checkpoint paths, optionally as LABEL=SPEC; "
        "a SPEC with {seq} is a per-sequence model (e.g. adapted=runs/adapt/{seq}/model.safetensors); "
        f"the last one also drives the 'Fused + CMC' row (default: {' '.join(DEFAULT_APPEARANCE)})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"TUD-Campus only, no docs update; appearance {' '.join(QUICK_APPEARANCE)} only unless --appearance is given "
        "(one backbone pass per frame instead of two; keeps the Targets row)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the appearance models")
    parser.add_argument(
        "--tracker-threads",
        type=int,
        default=1,
        help="torch threads while the trackers run (default 1, as benchmarks/tracker_speed.py: their tensors are "
        "tiny, and a second thread on a core shared with another job makes each update many times slower)",
    )
    parser.add_argument("--no-docs", action="store_true", help="print only; do not rewrite docs/benchmarks.md")
    parser.add_argument(
        "--fused-variant",
        action="append",
        default=[],
        metavar="NAME:FIELD=VALUE,...",
        help="an extra fused row on the last appearance model with these FusedTrackerConfig fields changed "
        "(ablations; repeatable), e.g. motion-only:motion_weight=1.0",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the trackers-package peers (ablation runs)")
    parser.add_argument("--json", type=Path, help="also write raw results here")
    parser.add_argument("--report", type=Path, help="also write the Markdown report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.sequences, args.no_docs = ["TUD-Campus"], True
    if args.appearance is None:
        args.appearance = QUICK_APPEARANCE if args.quick else DEFAULT_APPEARANCE
    torch.set_num_threads(args.threads)
    started = time.perf_counter()

    specs = dict(_label_spec(a) for a in args.appearance)
    shared = {label: build_predictor(spec, device="cpu") for label, spec in specs.items() if "{seq}" not in spec}
    per_sequence = {label: spec for label, spec in specs.items() if "{seq}" in spec}
    first = {label: build_predictor(spec.format(seq=_first_sequence(args)), device="cpu") for label, spec in per_sequence.items()}
    trackers = build_trackers({label: (shared | first)[label] for label in specs}, variants=args.fused_variant, peers=not args.no_peers)
    sequences = list(iterate(args))
    if not sequences:
        print(f"no MOTChallenge sequences found under {args.seq_root}", file=sys.stderr)
        return 2

    if "lowfps" in args.protocols and "gt" not in args.protocols:
        args.protocols = ["gt", *args.protocols]  # lowfps reuses the gt protocol's boxes
    results: dict = {
        "protocols": {},
        "embed_ms": {},
        "update_ms": {},
        "peers": [t.name for t in trackers if isinstance(t, RoboflowBench)],
        "frames_given": [t.name for t in trackers if isinstance(t, RoboflowBench) and t.uses_frames]
        + [t.name for t in trackers if isinstance(t, FusedBench) and t.config.cmc != "off"],
    }
    preds: dict[str, dict[str, dict[str, np.ndarray]]] = {
        p: {t.name: {} for t in trackers if p in t.protocols} for p in args.protocols
    }
    gts: dict[str, dict[str, np.ndarray]] = {p: {} for p in args.protocols}
    lengths: dict[str, dict[str, int]] = {p: {} for p in args.protocols}  # frames per (protocol, sequence)
    for seq in sequences:
        predictors = {label: shared[label] if label in shared else build_predictor(spec.format(seq=seq.name), device="cpu")
                      for label, spec in specs.items()}  # fmt: skip
        observations, embed_ms, pipeline_tracks = make_observations(seq, args.protocols, predictors)
        for a, times in embed_ms.items():
            results["embed_ms"].setdefault(a, []).extend(times)
        torch.set_num_threads(args.tracker_threads)
        for protocol, obs in observations.items():
            gts[protocol][seq.name] = obs.gt
            lengths[protocol][seq.name] = len(obs.frames)
            for tracker in trackers:
                if protocol not in tracker.protocols:
                    continue
                rows, times, ids = run_tracker(tracker, obs)
                if protocol == "det" and isinstance(tracker, MasaBench) and tracker.rescale == 1.0:
                    check_replay(f"{seq.name} {tracker.name}", ids, pipeline_tracks[tracker.appearance])
                preds[protocol][tracker.name][seq.name] = rows
                results["update_ms"].setdefault(tracker.name, []).extend(times)
        torch.set_num_threads(args.threads)
        print(f"[{time.perf_counter() - started:6.0f}s] {seq.name} ({seq.num_frames} frames)", file=sys.stderr)
    for protocol in args.protocols:
        table = {}
        for tracker in trackers:
            if protocol not in tracker.protocols:
                continue
            res = evaluate_mot(
                gts[protocol],
                preds[protocol][tracker.name],
                benchmark="MOT15",
                metrics=("HOTA", "CLEAR", "Identity"),
                num_frames=lengths[protocol],
            )
            table[tracker.name] = {name: {m: res[name][m] for m in METRICS} for name in [*gts[protocol], "COMBINED"]}
        results["protocols"][protocol] = table

    elapsed = time.perf_counter() - started
    report = render(results, sequences, args, elapsed)
    print(report)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report)
    if not args.no_docs:
        write_section(BEGIN, END, report)
        plot(results, REPO / "docs" / "img")
    return 0


# ----------------------------------------------------------------------------------------------
# Reporting


def _fmt(metric: str, value: float) -> str:
    return f"{int(value)}" if metric == "IDSW" else f"{100 * value:.1f}"


def render_targets(results: dict) -> list[str]:
    """Per protocol and metric: the best ``trackers`` peer (COMBINED) against ``TARGET_ROW``."""
    peers = results.get("peers", [])
    lines = [
        "### Targets",
        "",
        f"`{TARGET_ROW}` against the best tracker of the `trackers` package ({', '.join(peers) or 'none run'}) on each "
        "metric, COMBINED over the sequences; margin = fused minus best peer, in points; met when the margin is >= 0.",
        "",
    ]
    protocols = results["protocols"]
    if not any(TARGET_ROW in table for table in protocols.values()):
        ran_fused = any(name.startswith("Fused") for table in protocols.values() for name in table)
        reason = f"no appearance model is labelled `{TARGET_LABEL}`" if ran_fused else "the fused tracker was not available"
        return [*lines, f"Not evaluated: {reason}.", ""]
    if not peers:
        return [*lines, "Not evaluated: the `trackers` package is not installed.", ""]
    lines += ["| protocol | metric | best peer | peer | fused | margin | target |", "|---|---|---|---:|---:|---:|---|"]
    for protocol, table in protocols.items():
        if TARGET_ROW not in table:
            continue
        for metric in TARGET_METRICS:
            best = max((p for p in peers if p in table), key=lambda p: table[p]["COMBINED"][metric])
            # Rounded as shown, so that the margin is the difference of the two printed figures.
            peer, fused = round(100 * table[best]["COMBINED"][metric], 1), round(100 * table[TARGET_ROW]["COMBINED"][metric], 1)
            margin = round(fused - peer, 1)
            lines.append(
                f"| `{protocol}` | {metric} | {best} | {peer:.1f} | {fused:.1f} | {margin:+.1f} | {'met' if margin >= 0 else 'missed'} |"
            )
    lines.append("")
    return lines


def render(results: dict, sequences: list[Sequence], args: argparse.Namespace, elapsed: float) -> str:
    import masa

    frames_given = results.get("frames_given", [])
    lines = [
        "## Tracking quality and speed on MOTChallenge (`benchmarks/mot_benchmark.py`)",
        "",
        f"Command: `python benchmarks/mot_benchmark.py {' '.join(sys.argv[1:])}`".rstrip() + f" ({elapsed / 60:.1f} min).",
        f"Machine: {platform.machine()}, {args.threads} threads (appearance models), {args.tracker_threads} (trackers), "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"torch {torch.__version__}, masa {masa.__version__}.",
        "",
        *render_targets(results),
        "All trackers get the same boxes and scores in one run. MASA uses the authors' plug-and-play tracker "
        "configuration, untuned (init 0.1, obj 0.01, match 0.5, memory 10 frames, momentum 0.8, "
        "centre-distance gate 100 px at 30 fps). Fused: `FusedTracker(FusedTrackerConfig(), fps=<frame rate>)` "
        "with the named model's embeddings; `Fused + CMC` is the same with "
        f'`cmc="{FUSED_CMC}"` (on the last appearance model). '
        "Peers: every box tracker of the `trackers` package "
        f"({', '.join(results.get('peers', [])) or 'not installed'}) with the package defaults except `frame_rate` "
        "(the observations' frame rate; their 30-frame lost-track buffer scales with it): SORT activation 0.25, "
        "3 frames to confirm, IoU 0.3; ByteTrack activation 0.7, high score 0.6, 2 frames, IoU 0.1; OC-SORT high score 0.6, "
        "3 frames, IoU 0.3, direction weight 0.2, delta_t 3; BoT-SORT activation 0.7, high score 0.6, 2 frames, "
        "camera-motion compensation on (sparse optical flow, downscale 2); `BoT-SORT (no CMC)` the same with "
        "`enable_cmc=False`; C-BIoU (BoT-SORT association with buffered IoU 0.3 / 0.5, no CMC). "
        "Only confirmed ids (`tracker_id >= 0`) are scored. McByte is not run: it needs segmentation masks. "
        "On `det` every peer also runs as `<peer> (raw scores)` with the file's own detection scores (MOTChallenge ACF, "
        "about -1 to 140, so that nearly every box passes their thresholds, as when a user feeds them det.txt); the "
        "Targets table takes the best peer over both score scales. The fused and MASA rows get the [0, 1] scores of "
        "`masa track`. "
        + (
            f"Trackers given each observed frame's image ({', '.join(frames_given)}): BoT-SORT in BGR through "
            "`update(detections, frame=...)`, the fused tracker in RGB through `observe_frame(image, boxes)` (the frame's "
            "boxes, whose points it ignores) before its `update()`; "
            "the images are read outside the timed region, the motion estimation is timed as part of the update. "
            if frames_given
            else ""
        )
        + (
            "**Tuned:** the off-the-shelf baseline's embedding scale (6, a softmax temperature) was chosen on "
            "TUD-Campus and PETS09-S2L1 frames; the row `untuned scale 1` shows the same features as unit vectors."
            if any("untuned scale 1" in name for table in results["protocols"].values() for name in table)
            else ""
        ),
        "Protocols: `gt` = ground-truth boxes, ids stripped, rows shuffled; `det` = public detections as "
        "`masa track` reads them (its pipeline runs on each sequence: scores min-max mapped to [0, 1], boxes "
        "clipped to the frame; the MASA rows are checked to equal its tracks); `lowfps` = `gt` boxes keeping every k-th frame "
        + ", ".join(f"{s.name} k={lowfps_step(s.fps)}" for s in sequences)
        + " (about 2-3 frames/s; the trackers' frame rate is divided by k and CMC trackers get the kept frames). "
        "Figures in %, IDSW as a count.",
        "",
    ]
    for protocol, table in results["protocols"].items():
        seqs = [s.name for s in sequences]
        lines += [
            f"### Protocol `{protocol}`",
            "",
            "| tracker | HOTA | AssA | IDF1 | MOTA | IDSW | " + " | ".join(f"{n} HOTA / IDF1" for n in seqs) + " |",
        ]
        lines.append("|---" * (6 + len(seqs)) + "|")
        for tracker, per_seq in table.items():
            combined = [_fmt(m, per_seq["COMBINED"][m]) for m in METRICS]
            cells = [f"{_fmt('HOTA', per_seq[n]['HOTA'])} / {_fmt('IDF1', per_seq[n]['IDF1'])}" for n in seqs]
            lines.append(f"| {tracker} | " + " | ".join(combined + cells) + " |")
        lines.append("")
    lines += [
        "### Per-frame time (median over all frames of all protocols)",
        "",
        "The tracker's own update call (the fused tracker's `observe_frame()` and BoT-SORT's motion estimation "
        "included; input conversion and image reading excluded).",
        "",
        "| tracker | update() ms/frame |",
        "|---|---|",
    ]
    for tracker, times in results["update_ms"].items():
        lines.append(f"| {tracker} | {1000 * statistics.median(times):.2f} |")
    lines += ["", "| appearance model | embedding ms/frame (median over all frames; boxes of all protocols in one pass) |", "|---|---|"]
    for a, times in results["embed_ms"].items():
        lines.append(f"| {a} | {statistics.median(times):.0f} |")
    lines += ["", "![HOTA per tracker](img/mot_hota.png) ![update time](img/mot_update_ms.png)", ""]
    return "\n".join(lines)


def plot(results: dict, folder: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    protocols = list(results["protocols"])
    fig, axes = plt.subplots(1, len(protocols), figsize=(6 * len(protocols), 4.5), squeeze=False)
    for ax, protocol in zip(axes[0], protocols):
        table = results["protocols"][protocol]
        trackers = list(table)
        seqs = list(next(iter(table.values())))
        width = 0.8 / len(trackers)
        colors = plt.get_cmap("tab10" if len(trackers) <= 10 else "tab20")
        for i, t in enumerate(trackers):
            ax.bar(np.arange(len(seqs)) + i * width, [100 * table[t][s]["HOTA"] for s in seqs], width, label=t, color=colors(i % 20))
        ax.set_xticks(np.arange(len(seqs)) + 0.4 - width / 2, seqs, rotation=20, fontsize=8)
        ax.set_title(f"HOTA, protocol {protocol}")
        ax.set_ylim(0, 100)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    widest = max(range(len(protocols)), key=lambda i: len(results["protocols"][protocols[i]]))  # det has the raw-score rows
    fig.legend(*axes[0][widest].get_legend_handles_labels(), loc="lower center", ncol=7, fontsize=7)
    fig.savefig(folder / "mot_hota.png", dpi=90)
    plt.close(fig)
    names = list(results["update_ms"])
    fig, ax = plt.subplots(figsize=(7, max(3.5, 0.3 * len(names) + 1)))
    ax.barh(names, [1000 * statistics.median(results["update_ms"][n]) for n in names])
    ax.set_xlabel("median update() ms per frame")
    fig.tight_layout()
    fig.savefig(folder / "mot_update_ms.png", dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
