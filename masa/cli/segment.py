"""``masa segment IMAGES... --out proposals.json``: COCO-style instance proposals for self-supervised training."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_segment_subparser", "run_segment"]


def add_segment_subparser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "segment",
        help="write COCO-style instance proposals (RLE masks, category 1) for images",
        description=(
            "Propose object instances in IMAGES (files, or folders searched recursively for jpg/png) and write "
            "them as COCO JSON (--out; pycocotools loads it). Resumable: finished images are kept in "
            "OUT.parts/ and skipped by a rerun. Shardable: --shard i/n takes every n-th image from i (0-based)."
        ),
    )
    parser.add_argument("images", nargs="+", type=Path, metavar="IMAGES", help="image files or folders")
    parser.add_argument("--out", type=Path, required=True, help="output COCO JSON (e.g. proposals.json)")
    parser.add_argument(
        "--source",
        choices=("graph", "sam", "annotations"),
        default="graph",
        help="graph: weight-free Felzenszwalb + hierarchical grouping (default); sam: SAM automatic masks "
        "(--sam-checkpoint); annotations: YOLO-seg polygon files (--annotations)",
    )
    parser.add_argument("--sam-checkpoint", type=Path, help="SAM checkpoint (e.g. sam_vit_h_4b8939.pth) for --source sam")
    parser.add_argument("--sam-model", choices=("vit_b", "vit_l", "vit_h"), default="vit_h", help="SAM variant of the checkpoint")
    parser.add_argument("--device", default="cpu", help="torch device for --source sam (cpu, cuda, ...)")
    parser.add_argument("--annotations", type=Path, help="folder of YOLO-seg .txt polygon files for --source annotations")
    parser.add_argument("--shard", default="0/1", help="i/n: process every n-th image starting at i (default 0/1)")
    parser.add_argument("--max-images", type=int, help="use only the first N images (sorted), before sharding")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run_segment)


def run_segment(args: argparse.Namespace) -> int:
    from masa.data.coco_proposals import find_images, parse_shard, run_proposals
    from masa.data.proposals import AnnotationProposals, GraphProposals, SamProposals

    shard = parse_shard(args.shard)
    if args.max_images is not None and args.max_images < 1:
        raise ValueError(f"--max-images: expected a positive number, got {args.max_images}")
    images = find_images(args.images)
    if args.max_images is not None:
        images = images[: args.max_images]
    if args.source == "sam":
        if args.sam_checkpoint is None:
            raise ValueError("--source sam: expected --sam-checkpoint (an original SAM .pth or .safetensors file)")
        source = SamProposals(args.sam_checkpoint, args.sam_model, device=args.device)
    elif args.source == "annotations":
        if args.annotations is None:
            raise ValueError("--source annotations: expected --annotations DIR (YOLO-seg polygon .txt files)")
        source = AnnotationProposals(args.annotations)
    else:
        source = GraphProposals()

    report = run_proposals(source, images, args.out, shard=shard, progress=not args.no_progress)
    if report.unreadable:
        print(f"masa segment: warning: {len(report.unreadable)} unreadable image(s) skipped (a rerun tries them again)", file=sys.stderr)
    missing = getattr(source, "missing", 0)
    if missing:
        print(f"masa segment: warning: {missing} image(s) have no label file in {args.annotations} (no instances)", file=sys.stderr)
    if report.written_images < report.total:
        print(
            f"masa segment: note: {args.out} holds {report.written_images} of {report.total} images so far "
            "(other shards or skipped images are not done yet; rerun to complete)",
            file=sys.stderr,
        )
    print(
        f"masa segment: shard {args.shard}: {report.processed} image(s) segmented ({report.instances} proposals), "
        f"{report.skipped} already done, {len(report.unreadable)} unreadable; wrote {args.out} "
        f"({report.written_images} images, {report.written_annotations} proposals)"
    )
    return 0
