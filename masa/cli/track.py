"""``masa track SOURCE``: track the objects of a video and write MOT txt, JSON and an annotated mp4."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm import tqdm

__all__ = ["add_track_subparser", "run_track"]

if TYPE_CHECKING:
    from masa.pipeline import PipelineConfig


def add_track_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "track",
        help="track objects in a video, image folder, MOTChallenge sequence, camera or stream",
        description=(
            "Track every given box through SOURCE. SOURCE is a video file, an image folder, a "
            "MOTChallenge sequence folder (seqinfo.ini, img1/, det/det.txt), a camera index (0) "
            "or a stream URL. Writes OUT/tracks.txt (MOTChallenge, 1-based frames and ids), "
            "OUT/tracks.json (TAO/COCO-VID style) and OUT/video.mp4 (annotated)."
        ),
    )
    parser.add_argument("source", help="video file, image folder, MOT sequence folder, camera index or URL")
    parser.add_argument(
        "--detections",
        type=Path,
        help="detections: MOTChallenge det.txt or JSON (COCO results style, 1-based image_id/frame). "
        "Default for a MOTChallenge folder: its det/det.txt",
    )
    parser.add_argument("--out", type=Path, default=Path("runs/track"), help="output folder (default runs/track)")
    parser.add_argument("--no-video", action="store_true", help="do not write the annotated video.mp4")
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument(
        "--model",
        help="appearance model: a checkpoint (our .safetensors from `masa train`, or an official MASA .pth) or a name: "
        "masa_lite0 (default: the shipped self-supervised adapter on EfficientNet-Lite0), raw_efficientnet_lite0 "
        "(off-the-shelf ImageNet features), efficientnet_lite2 (its raw features), ...",
    )
    parser.add_argument(
        "--sam-checkpoint",
        type=Path,
        help="original SAM checkpoint (e.g. sam_vit_b_01ec64.pth) for an official SAM-MASA --model file "
        "that does not hold the SAM image-encoder weights",
    )
    parser.add_argument(
        "--appearance",
        help="masa 0.1 spelling of --model NAME (e.g. efficientnet_lite0 for its raw RoI features)",
    )
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--fp16", action="store_true", help="mixed precision on CUDA")
    parser.add_argument(
        "--tracker",
        choices=("fused", "plug-and-play", "tao", "bdd"),
        default="fused",
        help="fused (default: appearance + Kalman motion, two-stage matching, long-term re-identification; "
        "docs/tracker.md), or the authors' appearance-only trackers: plug-and-play (their demo config), "
        "tao (their TAO benchmark config), bdd (their BDD/QDTrack-style tracker with backdrops)",
    )
    parser.add_argument("--fps", type=float, help="frame rate of the source for the fused tracker's times (default: the source's, else 30)")
    parser.add_argument("--reid-seconds", type=float, help="fused: seconds a lost track is kept for re-identification (default 30)")
    parser.add_argument("--lost-seconds", type=float, help="fused: seconds a lost track is still matched by motion (default 1.5)")
    parser.add_argument(
        "--cmc",
        choices=("off", "sparse-flow", "ecc"),
        default="off",
        help="fused: camera-motion compensation for moving cameras (default off)",
    )
    parser.add_argument("--class-aware", action="store_true", help="fused: match only detections of the track's label")
    parser.add_argument("--memory-frames", type=int, help="authors' trackers: frames a lost track is kept (authors: 10)")
    parser.add_argument("--match-thresh", type=float, help="match threshold (fused: 0.3; authors' trackers: 0.5)")
    parser.add_argument(
        "--init-thresh", type=float, help="score a detection needs to start a track (fused: 0.4; lower values also lower its confident bar)"
    )
    parser.add_argument("--min-score", type=float, help="drop detections scoring below this (after normalisation)")
    parser.add_argument(
        "--score-norm",
        choices=("auto", "none", "minmax"),
        default="auto",
        help="map detection scores to [0, 1]: auto (only when outside [0, 1], e.g. MOT ACF scores), none, minmax",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_track)


def _pipeline_config(args: argparse.Namespace, source) -> PipelineConfig:
    """The CLI's only job: arguments -> :class:`~masa.pipeline.PipelineConfig`."""
    from masa.modeling.build import DEFAULT_MODEL
    from masa.pipeline import PipelineConfig

    detections = args.detections if args.detections is not None else getattr(source, "det_path", None)
    model = args.model or args.appearance or DEFAULT_MODEL
    return PipelineConfig(
        model=model,
        sam_checkpoint=None if args.sam_checkpoint is None else str(args.sam_checkpoint),
        device=args.device,
        fp16=args.fp16,
        detections=None if detections is None else str(detections),
        score_norm=args.score_norm,
        min_score=args.min_score,
        tracker=args.tracker,
        memory_frames=args.memory_frames,
        match_thresh=args.match_thresh,
        init_thresh=args.init_thresh,
        reid_seconds=args.reid_seconds,
        lost_seconds=args.lost_seconds,
        fps=args.fps,
        cmc=args.cmc,
        class_aware=args.class_aware,
    )


def run_track(args: argparse.Namespace) -> int:
    from masa.io import open_source
    from masa.modeling.config import config_names
    from masa.pipeline import build_pipeline, describe_tracker, output_sinks

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames: expected a positive number, got {args.max_frames}")
    if args.model is not None and not Path(args.model).is_file() and args.model not in config_names():
        raise FileNotFoundError(f"--model {args.model}: no such checkpoint file, and not a model name ({', '.join(config_names())})")
    source = open_source(args.source, max_frames=args.max_frames)
    with ExitStack() as stack:
        stack.enter_context(source)
        config = _pipeline_config(args, source)
        if config.detections is None:
            raise ValueError(
                f"no detections for {args.source}: pass --detections FILE (MOTChallenge det.txt or JSON); "
                "a MOTChallenge sequence folder uses its det/det.txt"
            )
        pipeline = build_pipeline(config, fps=source.fps)
        print(f"masa track: tracker: {describe_tracker(pipeline.tracker)}", file=sys.stderr)
        for note in pipeline.notes:
            print(f"masa track: {note}", file=sys.stderr)
        for sink in output_sinks(args.out, video_name=source.name, fps=source.fps, video=not args.no_video):
            pipeline.add_sink(sink)
        stack.enter_context(pipeline)
        total = source.num_frames
        if args.max_frames is not None and total is not None:
            total = min(total, args.max_frames)
        started = time.perf_counter()
        bar = tqdm(total=total, unit="frame", desc="masa track", disable=args.no_progress, file=sys.stderr)
        stack.callback(bar.close)
        for _ in pipeline.run(source):
            bar.update(1)
    stats = pipeline.stats
    wall = time.perf_counter() - started
    for warning in pipeline.warnings():
        if args.max_frames is not None and "never used" in warning:
            warning += f" (--max-frames {args.max_frames})"
        print(f"masa track: warning: {warning}", file=sys.stderr)
    skipped = f", {len(source.skipped)} unreadable frames skipped" if source.skipped else ""
    corrupt = getattr(source, "corrupt", [])
    if corrupt:
        shown = ", ".join(str(i) for i, _ in corrupt[:5]) + (", ..." if len(corrupt) > 5 else "")
        skipped += f", {len(corrupt)} frames may be damaged (0-based indices {shown})"
    if getattr(source, "ended_early", None):
        skipped += f", the source ended early ({source.delivered} of {source.expected} frames)"
    if stats.below_min_score:
        skipped += f", {stats.below_min_score} detections below --min-score {args.min_score} dropped"
    outputs = "tracks.txt, tracks.json" + ("" if args.no_video else ", video.mp4")
    print(
        f"masa track: {stats.frames} frames, {len(stats.track_ids)} tracks, {stats.boxes} tracked boxes, "
        f"{stats.frames / wall if wall > 0 else 0:.1f} frames/s end to end ({stats.fps:.1f} frames/s "
        f"embedding + tracking){skipped}; detections {config.detections}; wrote {outputs} to {args.out}"
    )
    return 0
