"""``masa train``: self-supervised training (or domain adaptation) of a MASA adapter from raw images."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_train_subparser", "run_train"]


def add_train_subparser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train an adapter from unlabeled images (self-supervised), or adapt one to new footage",
        description=(
            "Train the MASA adapter on raw, unlabeled images: instance proposals (--proposals from `masa segment`, or "
            "made here with the weight-free graph segmenter) -> two augmented views per image -> contrastive loss. "
            "--init ADAPTER fine-tunes a trained adapter (domain adaptation); --images may then be a video, whose "
            "frames are sampled every --frame-step frames. Checkpoints go to OUT/ every --checkpoint-every steps; "
            "--resume continues a run exactly. Under torchrun, each process trains on its share of every batch."
        ),
    )
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoint.pt, model.safetensors, log.jsonl, loss.png)")
    p.add_argument("--images", nargs="+", required=True, help="image folders (or one video file with --init)")
    p.add_argument("--proposals", nargs="+", help="COCO proposal files from `masa segment` (default: segment --images into OUT/)")
    p.add_argument(
        "--detections",
        help="adapt on a video's own tracklets: its detections (MOTChallenge det.txt or JSON); --images is then the video "
        "(file, image folder or MOTChallenge sequence folder), used at full frame rate",
    )
    p.add_argument("--tracklet-offset", type=int, default=10, help="with --detections: largest frame distance of a pair")
    p.add_argument("--model", default="masa_lite0", help="architecture to train (default masa_lite0: residual head on EfficientNet-Lite0)")
    p.add_argument("--init", help="start from this trained model (.safetensors), e.g. the shipped default, to adapt it")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=8, help="view pairs per step and process (default 8)")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--warmup-steps", type=int, default=100)
    p.add_argument("--decay-steps", type=int, nargs="*", default=[], help="steps where lr drops x0.1 (default: 8/12, 11/12 of --steps)")
    p.add_argument("--loss", choices=("unbiased", "paper"), default="unbiased", help="contrastive loss form (default: the authors' code)")
    p.add_argument("--negatives", choices=("image", "batch"), default="image", help="negatives from the same image, or the batch")
    p.add_argument("--aux-weight", type=float, default=1.0, help="weight of the margin-L2 auxiliary loss (0: off)")
    p.add_argument("--det-weight", type=float, default=1.0, help="weight of the detection losses (adapters with a detection head)")
    p.add_argument("--view-size", type=int, default=512, help="side of the square training views in px (the authors: 1024)")
    p.add_argument("--photometric", action="store_true", help="add the paper's App. E photometric set (blur, noise, fog, snow)")
    p.add_argument("--no-mixup", action="store_true", help="leave out the MixUp step of the views (the authors use it)")
    p.add_argument("--resize-range", type=float, nargs=2, default=[0.1, 2.0], metavar=("LOW", "HIGH"),
                   help="large-scale-jitter range of the views (the authors: 0.1 2.0)")  # fmt: skip
    p.add_argument("--frame-step", type=int, default=5, help="with a video for --images: keep every n-th frame")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="data-loading processes (0: in the main process)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:N")
    p.add_argument("--amp", action="store_true", help="mixed precision (CUDA only)")
    p.add_argument("--checkpoint-every", type=int, default=50, help="steps between checkpoints")
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--eval-every", type=int, default=0, help="steps between tracking checks on --eval-sequence (0: off)")
    p.add_argument("--eval-sequence", action="append", default=[], help="MOTChallenge folder with gt/gt.txt for the tracking check")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_train)


def _video_frames(video: Path, out: Path, step: int) -> Path:
    """Every ``step``-th frame of ``video`` as JPEG files in ``out`` (streamed; done once, reused by --resume)."""
    import cv2

    from masa.io.frames import open_source

    done = out / ".complete"
    if done.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    with open_source(video) as source:
        for frame in source:
            if frame.index % step == 0:
                cv2.imwrite(str(out / f"{frame.index + 1:06d}.jpg"), cv2.cvtColor(frame.image, cv2.COLOR_RGB2BGR))
    done.write_text("")
    return out


def run_train(args: argparse.Namespace) -> int:
    from masa.data.coco_proposals import find_images, run_proposals
    from masa.data.proposals import GraphProposals
    from masa.training.train import TrainConfig, train

    if args.frame_step < 1:
        raise ValueError(f"--frame-step: expected >= 1, got {args.frame_step}")
    images = [Path(p) for p in args.images]
    for path in images:
        if not path.exists():
            raise FileNotFoundError(f"--images {path}: no such file or folder")
    if args.detections is not None:
        if not Path(args.detections).is_file():
            raise FileNotFoundError(f"--detections {args.detections}: no such file")
        if len(images) != 1:
            raise ValueError("--detections: expected one video for --images (a file, an image folder or a MOTChallenge folder)")
    if len(images) == 1 and images[0].is_file():
        step = 1 if args.detections is not None else args.frame_step  # tracklets link consecutive frames
        images = [_video_frames(images[0], args.out / "frames", step)]
    proposals = [Path(p) for p in args.proposals] if args.proposals else []
    for path in proposals:
        if not path.is_file():
            raise FileNotFoundError(f"--proposals {path}: no such file (make one with `masa segment IMAGES --out FILE`)")
    if not proposals and args.detections is None:
        target = args.out / "proposals.json"
        print(f"masa train: making proposals for {', '.join(map(str, images))} into {target} (graph segmenter)", file=sys.stderr)
        run_proposals(GraphProposals(), find_images(images), target, progress=not args.no_progress)
        proposals = [target]
    config = TrainConfig(
        out=str(args.out), proposals=tuple(map(str, proposals)), images=tuple(map(str, images)), model=args.model,
        init=args.init, steps=args.steps, batch_size=args.batch_size, lr=args.lr, warmup_steps=args.warmup_steps,
        decay_steps=tuple(args.decay_steps), loss=args.loss, negatives=args.negatives, aux_weight=args.aux_weight,
        det_weight=args.det_weight, view_size=args.view_size, photometric=args.photometric, seed=args.seed,
        workers=args.workers, device=args.device, amp=args.amp, checkpoint_every=args.checkpoint_every,
        log_every=args.log_every, eval_every=args.eval_every, eval_sequences=tuple(args.eval_sequence),
        progress=not args.no_progress, detections=args.detections, tracklet_offset=args.tracklet_offset,
        mixup=not args.no_mixup, resize_range=tuple(args.resize_range),
    )  # fmt: skip
    model = train(config, resume=args.resume)
    print(f"masa train: wrote {model} (use it with `masa track VIDEO --model {model}`)")
    return 0
