"""Embedding quality from ground-truth boxes: nearest-neighbour identity accuracy and separation.

    python benchmarks/embedding_quality.py                                   # raw Lite0 features, all mot15 sequences
    python benchmarks/embedding_quality.py --models raw_efficientnet_lite0 runs/adapter.safetensors
    python benchmarks/embedding_quality.py --quick                           # TUD-Campus only

For every sequence, the ground-truth boxes of each frame (MOT15: rows with conf 0 ignored) are
embedded by each model through the one predictor (one backbone pass per frame), and every pair of
frames ``k`` apart (k = 1 and 10) is scored with :mod:`masa.eval.embedding`: the share of boxes
whose nearest box ``k`` frames earlier has their identity, and the d' separation of same- vs
different-identity cosines. Models side by side in one run. Prints a Markdown table; with
``--docs`` it replaces its section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from docs_section import write_section

from masa.eval.embedding import IdentityStats, accumulate_identity_pair
from masa.io import MotSequenceSource, read_mot_rows
from masa.modeling.build import build_predictor
from masa.ops.boxes import xywh_to_xyxy

REPO = Path(__file__).resolve().parents[1]
DEFAULT_ROOT = REPO.parent / "shared" / "data" / "mot15"
GAPS = (1, 10)
BEGIN, END = "<!-- embedding-quality:begin -->", "<!-- embedding-quality:end -->"


def sequence_embeddings(folder: Path, predictors: dict, step: int) -> tuple[dict[str, list[torch.Tensor]], list[torch.Tensor], int]:
    """Per model, the embeddings of every kept frame's gt boxes; the ids per kept frame; the frame step."""
    with MotSequenceSource(folder) as source:
        gt = read_mot_rows(source.gt_path).rows
        gt = gt[gt[:, 6] != 0] if gt.shape[1] > 6 else gt
        embeddings: dict[str, list[torch.Tensor]] = {name: [] for name in predictors}
        ids: list[torch.Tensor] = []
        for frame in source:
            if frame.index % step:
                continue
            rows = gt[gt[:, 0] == frame.index + 1]
            rows = rows[(rows[:, 4] > 0) & (rows[:, 5] > 0)]
            boxes = xywh_to_xyxy(torch.from_numpy(rows[:, 2:6]).float())
            ids.append(torch.from_numpy(rows[:, 1].astype(np.int64)))
            for name, predictor in predictors.items():
                embeddings[name].append(predictor.embed(frame.image, boxes))
    return embeddings, ids, step


def score(embeddings: list[torch.Tensor], ids: list[torch.Tensor], gap: int) -> IdentityStats:
    stats = IdentityStats()
    for t in range(len(ids) - gap):
        accumulate_identity_pair(stats, embeddings[t], ids[t], embeddings[t + gap], ids[t + gap])
    return stats


def _kept_gap(gap: int, step: int) -> int:
    """Gap in kept frames for a gap of ``gap`` frames (rounded to a multiple of ``step``, at least one)."""
    return max(1, round(gap / step))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-root", type=Path, default=DEFAULT_ROOT, help="folder of MOTChallenge sequences")
    parser.add_argument("--sequences", nargs="*", help="only these sequence names")
    parser.add_argument("--models", nargs="+", default=["raw_efficientnet_lite0"], help="model names or checkpoint files")
    parser.add_argument("--step", type=int, default=1, help="use every step-th frame (k is then rounded to a multiple of it)")
    parser.add_argument("--quick", action="store_true", help="TUD-Campus only")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--docs", action="store_true", help="replace this benchmark's section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.sequences = ["TUD-Campus"]
    torch.set_num_threads(args.threads)
    if not args.seq_root.is_dir():
        print(f"no MOTChallenge sequences at {args.seq_root} (give --seq-root)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    predictors = {m: build_predictor(m, device="cpu") for m in args.models}
    folders = sorted(p for p in args.seq_root.iterdir() if (p / "gt" / "gt.txt").is_file())
    if args.sequences:
        folders = [p for p in folders if p.name in args.sequences]
    results: dict[str, dict[str, dict[int, IdentityStats]]] = {m: {} for m in args.models}
    for folder in folders:
        embeddings, ids, step = sequence_embeddings(folder, predictors, args.step)
        for model in args.models:
            results[model][folder.name] = {gap: score(embeddings[model], ids, _kept_gap(gap, step)) for gap in GAPS}
        print(f"[{time.perf_counter() - started:5.0f}s] {folder.name}", file=sys.stderr)
    names = [p.name for p in folders]
    lines = [
        "## Embedding quality from ground-truth boxes (`benchmarks/embedding_quality.py`)",
        "",
        f"Command: `python benchmarks/embedding_quality.py {' '.join(sys.argv[1:])}`".rstrip()
        + f" ({(time.perf_counter() - started) / 60:.1f} min). Machine: {platform.machine()}, {args.threads} threads, "
        f"torch {torch.__version__}.",
        "",
        "NN acc: share of gt boxes whose most similar box k frames earlier has their identity; d': separation of "
        "same- vs different-identity cosines. Combined = all pairs of all sequences pooled.",
        "",
        "| model | k | NN acc combined | d' combined | " + " | ".join(f"{n} NN acc / d'" for n in names) + " |",
        "|---" * (4 + len(names)) + "|",
    ]
    for model in args.models:
        for gap in GAPS:
            combined = IdentityStats().merge(results[model][n][gap] for n in names)
            cells = [f"{100 * results[model][n][gap].nn_accuracy:.1f} / {results[model][n][gap].separation:.2f}" for n in names]
            k = _kept_gap(gap, args.step) * args.step
            head = f"| {model} | {k} | {100 * combined.nn_accuracy:.1f} | {combined.separation:.2f} | "
            lines.append(head + " | ".join(cells) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.docs:
        write_section(BEGIN, END, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
