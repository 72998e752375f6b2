"""Backbone + MASA adapter time per frame on this machine (side by side, one command).

    python benchmarks/adapter_speed.py                          # every configuration that runs here
    python benchmarks/adapter_speed.py --quick                  # the CPU-friendly ones only
    python benchmarks/adapter_speed.py --compare-with /tmp/old  # this checkout vs another one, interleaved

Each row embeds 10 boxes of one 768x576 frame through ``MasaPredictor.embed`` (preprocessing,
frozen backbone, pyramid, fusion, RoI-Align, track head) with random adapter weights (speed does
not depend on them). ``--compare-with`` times the default baseline and the ``lite`` adapter in
this checkout and in another checkout of masa (e.g. ``git worktree add /tmp/old HEAD~1``), in
alternating subprocess rounds so that both see the same machine load, and prints the ratios.
Prints Markdown tables; paste them into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from masa.modeling.build import build_masa, build_predictor
from masa.modeling.config import MASA_CONFIGS, FusionConfig, PyramidConfig
from masa.modeling.predictor import MasaPredictor

IMAGE_SHAPE = (576, 768, 3)
BOXES = [[40.0 * i, 100.0, 40.0 * i + 60, 260.0] for i in range(10)]

# Runs inside either checkout: the masa 0.1 API (build_embedder, MasaEmbedder) or the current one.
_PROBE = """
import json, statistics, sys, time
import numpy as np, torch
torch.set_num_threads({threads})
image = np.random.default_rng(0).integers(0, 255, {shape}, dtype=np.uint8)
boxes = torch.tensor({boxes})
name = {name!r}
try:
    from masa.modeling.build import build_predictor
    embedder = build_predictor("raw_efficientnet_lite0" if name == "baseline" else "lite")
except ImportError:
    from masa.modeling.build import ADAPTER_CONFIGS, build_embedder, build_masa_model
    from masa.modeling.adapter import MasaEmbedder
    lite = ADAPTER_CONFIGS["lite"]
    if name == "baseline":
        embedder = build_embedder(appearance="efficientnet_lite0")
    else:
        embedder = MasaEmbedder(build_masa_model(lite), lite.preprocess)
embedder.embed(image, boxes)
times = []
for _ in range({repeats}):
    t0 = time.perf_counter(); embedder.embed(image, boxes); times.append(time.perf_counter() - t0)
print(json.dumps(1000 * statistics.median(times)))
"""


def timed(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * min(times)


def _probe(checkout: Path, name: str, threads: int, repeats: int) -> float:
    code = _PROBE.format(threads=threads, shape=IMAGE_SHAPE, boxes=BOXES, name=name, repeats=repeats)
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1]))


def compare(other: Path, rounds: int, threads: int, repeats: int) -> None:
    here = Path(__file__).resolve().parents[1]
    print(f"Side by side: this checkout ({here}) vs {other}; {rounds} alternating rounds, median of {repeats} per round.\n")
    print("| configuration | other ms (median of rounds) | this ms | this / other |")
    print("|---|---:|---:|---:|")
    for name in ("baseline", "lite"):
        mine, theirs = [], []
        for r in range(rounds):
            order = [(here, mine), (other, theirs)] if r % 2 == 0 else [(other, theirs), (here, mine)]
            for checkout, sink in order:
                sink.append(_probe(checkout, name, threads, repeats))
        a, b = statistics.median(theirs), statistics.median(mine)
        print(f"| {name} | {a:.0f} | {b:.0f} | {b / a:.3f} |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the paper-size ResNet-50 and SAM ViT-B rows")
    parser.add_argument("--shipped-only", action="store_true", help="only the shipped default and the raw baseline")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--compare-with", type=Path, help="another masa checkout to time side by side")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds for --compare-with")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"Machine: {platform.machine()}, {args.threads} threads, torch {torch.__version__}, Python {platform.python_version()}")
    print("Frame 768x576 RGB, 10 boxes, float32, CPU, channels-last backbone.\n")
    if args.compare_with is not None:
        compare(args.compare_with.resolve(), args.rounds, args.threads, args.repeats)
        return 0
    image = np.random.default_rng(0).integers(0, 255, IMAGE_SHAPE, dtype=np.uint8)
    boxes = torch.tensor(BOXES)

    lite = MASA_CONFIGS["lite"]
    no_fusion = replace(lite, adapter=replace(lite.adapter, fusion=FusionConfig(kind="none")))
    narrow = replace(lite, adapter=replace(lite.adapter, pyramid=PyramidConfig(channels=64)))
    rows = [
        ("shipped default `masa_lite0` (Lite0 RoI features + learned channel metric)", lambda: build_predictor("masa_lite0"), args.repeats),
        (
            "baseline: EfficientNet-Lite0 RoI features (no adapter)",
            lambda: build_predictor("raw_efficientnet_lite0"),
            args.repeats,
        ),
        ("baseline: EfficientNet-Lite2 RoI features", lambda: build_predictor("raw_efficientnet_lite2"), args.repeats),
        ("adapter `lite` (Lite0, 128 ch, 1 DeformFusion block, native 768x576)", lambda: build_predictor("lite"), args.repeats),
        ("adapter `lite`, no fusion", lambda: MasaPredictor(build_masa(no_fusion), no_fusion), args.repeats),
        ("adapter `lite`, 64 ch", lambda: MasaPredictor(build_masa(narrow), narrow), args.repeats),
    ]
    if not args.quick:
        rows += [
            ("adapter paper size on Lite0 (256 ch, 3 blocks, 1024x768)", lambda: build_predictor("paper_efficientnet_lite0"), 2),
            ("MASA-R50 (caffe ResNet-50, FPN-BN, 3 DeformFusion, 1024x768)", lambda: build_predictor("paper_resnet50"), 2),
            ("MASA-SAM-ViT-B (SimpleFPN, 3 DyHead, 1024x1024 pad)", lambda: build_predictor("paper_sam_vit_b"), 1),
        ]
    print("| configuration | median ms/frame | best ms | frames/s (median) |")
    print("|---|---:|---:|---:|")
    if args.shipped_only:
        rows = rows[:2]
    for name, make, repeats in rows:
        predictor = make()
        median, best = timed(lambda p=predictor: p.embed(image, boxes), repeats)
        print(f"| {name} | {median:.0f} | {best:.0f} | {1000 / median:.1f} |", flush=True)
        del predictor
    return 0


if __name__ == "__main__":
    sys.exit(main())
