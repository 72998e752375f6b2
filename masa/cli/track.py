"""``masa track SOURCE``: track the objects of a video and write MOT txt, JSON and an annotated mp4."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

from tqdm import tqdm

__all__ = ["add_track_subparser", "run_track"]

TRACKER_PRESETS = ("plug-and-play", "tao", "bdd")


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
        type=Path,
        help="MASA adapter checkpoint (our .safetensors, or an official MASA .pth) for the embeddings; "
        "default: off-the-shelf features of --appearance",
    )
    parser.add_argument(
        "--sam-checkpoint",
        type=Path,
        help="original SAM checkpoint (e.g. sam_vit_b_01ec64.pth) for an official SAM-MASA --model file "
        "that does not hold the SAM image-encoder weights",
    )
    parser.add_argument(
        "--appearance",
        default="efficientnet_lite0",
        help="backbone whose raw RoI features embed the boxes when --model is not given (default efficientnet_lite0)",
    )
    parser.add_argument("--device", default="auto", help="torch device: auto (CUDA when present), cpu, cuda, cuda:1 ...")
    parser.add_argument("--fp16", action="store_true", help="mixed precision on CUDA")
    parser.add_argument(
        "--tracker",
        choices=TRACKER_PRESETS,
        default="plug-and-play",
        help="tracker preset: plug-and-play (the authors' demo config, default), tao (TAO benchmark "
        "config) or bdd (the BDD/QDTrack-style tracker with backdrops)",
    )
    parser.add_argument("--memory-frames", type=int, help="frames a lost track is kept (authors: 10)")
    parser.add_argument("--match-thresh", type=float, help="match score threshold (authors: 0.5)")
    parser.add_argument("--init-thresh", type=float, help="score a detection needs to start a track")
    parser.add_argument("--min-score", type=float, help="drop detections scoring below this (after normalisation)")
    parser.add_argument(
        "--score-norm",
        choices=("auto", "none", "minmax"),
        default="auto",
        help="map detection scores to [0, 1]: auto (only when outside [0, 1], e.g. MOT ACF scores), none, minmax",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_track)


def _build_tracker(args: argparse.Namespace):
    from dataclasses import replace

    from masa.tracking import BddTrackerConfig, MasaBDDTracker, MasaTaoTracker, TaoTrackerConfig

    overrides = {}
    if args.memory_frames is not None:
        overrides["memory_frames"] = args.memory_frames
    if args.match_thresh is not None:
        overrides["match_score_thresh"] = args.match_thresh
    if args.init_thresh is not None:
        overrides["init_score_thresh"] = args.init_thresh
    if args.tracker == "bdd":
        return MasaBDDTracker(replace(BddTrackerConfig.bdd_benchmark(), **overrides))
    base = TaoTrackerConfig.plug_and_play() if args.tracker == "plug-and-play" else TaoTrackerConfig.tao_benchmark()
    return MasaTaoTracker(replace(base, **overrides))


def _load_detections(args: argparse.Namespace, source) -> tuple[dict, Path | None]:
    from masa.io.json_io import read_json_detections
    from masa.io.mot import read_mot_detections

    path = args.detections
    if path is None:
        path = getattr(source, "det_path", None)
    if path is None:
        raise ValueError(
            f"no detections for {args.source}: pass --detections FILE (MOTChallenge det.txt or JSON); "
            "a MOTChallenge sequence folder uses its det/det.txt"
        )
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"detections file not found: {path}")
    if path.suffix.lower() == ".json":
        return read_json_detections(path), path
    return read_mot_detections(path), path


def run_track(args: argparse.Namespace) -> int:
    from masa.io import JsonResultWriter, MotResultWriter, VideoWriter, draw_tracks, open_source
    from masa.modeling.build import build_embedder, resolve_device
    from masa.pipeline import TrackingPipeline, given_detections, normalize_scores

    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames: expected a positive number, got {args.max_frames}")
    device = resolve_device(args.device)
    source = open_source(args.source, max_frames=args.max_frames)
    with ExitStack() as stack:
        stack.enter_context(source)
        dets_by_frame, det_path = _load_detections(args, source)
        dets_by_frame, note = normalize_scores(dets_by_frame, args.score_norm)
        if note:
            print(f"masa track: {note} (--score-norm)", file=sys.stderr)
        embedder = build_embedder(
            model=args.model, appearance=args.appearance, device=device, fp16=args.fp16, sam_checkpoint=args.sam_checkpoint
        )
        pipeline = TrackingPipeline(
            embedder, _build_tracker(args), given_detections(dets_by_frame), min_score=args.min_score
        )
        args.out.mkdir(parents=True, exist_ok=True)
        txt = stack.enter_context(MotResultWriter(args.out / "tracks.txt"))
        js = stack.enter_context(JsonResultWriter(args.out / "tracks.json", video_name=source.name))
        video = None
        if not args.no_video:
            video = stack.enter_context(VideoWriter(args.out / "video.mp4", fps=source.fps or 25.0))
        total = source.num_frames
        if args.max_frames is not None and total is not None:
            total = min(total, args.max_frames)
        started = time.perf_counter()
        bar = tqdm(total=total, unit="frame", desc="masa track", disable=args.no_progress, file=sys.stderr)
        stack.callback(bar.close)
        for result in pipeline.run(source):
            txt.write(result.frame.index, result.tracks)
            js.write(result.frame.index, result.tracks)
            if video is not None:
                video.write(draw_tracks(result.frame.image, result.tracks))
            bar.update(1)
    stats = pipeline.stats
    wall = time.perf_counter() - started
    skipped = f", {len(source.skipped)} unreadable frames skipped" if source.skipped else ""
    outputs = "tracks.txt, tracks.json" + ("" if args.no_video else ", video.mp4")
    print(
        f"masa track: {stats.frames} frames, {len(stats.track_ids)} tracks, {stats.boxes} tracked boxes, "
        f"{stats.frames / wall if wall > 0 else 0:.1f} frames/s end to end ({stats.fps:.1f} frames/s "
        f"embedding + tracking){skipped}; detections {det_path}; wrote {outputs} to {args.out}"
    )
    return 0
