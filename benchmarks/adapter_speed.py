"""Backbone + MASA adapter forward time per frame on this machine (side by side, one process).

    python benchmarks/adapter_speed.py                 # every configuration that runs here
    python benchmarks/adapter_speed.py --quick         # the CPU-friendly ones only

Each row embeds 10 boxes of one 768x576 frame (``MasaEmbedder.embed``: preprocessing, frozen
backbone, pyramid, fusion, RoI-Align, track head) with random adapter weights (speed does not
depend on them). The backbone alone and the off-the-shelf baseline are timed for reference.
Prints a Markdown table; paste it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from masa.modeling.adapter import MasaEmbedder  # noqa: E402
from masa.modeling.build import ADAPTER_CONFIGS, build_embedder, build_masa_model  # noqa: E402


def timed(fn, repeats: int, warmup: int = 1) -> tuple[float, float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), 1000 * min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the paper-size ResNet-50 and SAM ViT-B rows")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (576, 768, 3), dtype=np.uint8)
    boxes = torch.tensor([[40.0 * i, 100.0, 40.0 * i + 60, 260.0] for i in range(10)])

    lite = ADAPTER_CONFIGS["lite"]
    rows = [
        ("baseline: EfficientNet-Lite0 RoI features (default, no adapter)", lambda: build_embedder(appearance="efficientnet_lite0"), args.repeats),
        ("baseline: EfficientNet-Lite2 RoI features", lambda: build_embedder(appearance="efficientnet_lite2"), args.repeats),
        ("adapter `lite` (Lite0, 128 ch, 1 DeformFusion block, native 768x576)", lambda: MasaEmbedder(build_masa_model(lite), lite.preprocess), args.repeats),
        ("adapter `lite`, no fusion", lambda: MasaEmbedder(build_masa_model(replace(lite, fusion="none")), lite.preprocess), args.repeats),
        ("adapter `lite`, 64 ch", lambda: MasaEmbedder(build_masa_model(replace(lite, channels=64)), lite.preprocess), args.repeats),
    ]
    if not args.quick:
        paper = ADAPTER_CONFIGS["paper_efficientnet_lite0"]
        r50 = ADAPTER_CONFIGS["paper_resnet50"]
        sam = ADAPTER_CONFIGS["paper_sam_vit_b"]
        rows += [
            ("adapter paper size on Lite0 (256 ch, 3 blocks, 1024x768)", lambda: MasaEmbedder(build_masa_model(paper), paper.preprocess), 2),
            ("MASA-R50 (caffe ResNet-50, FPN-BN, 3 DeformFusion, 1024x768)", lambda: MasaEmbedder(build_masa_model(r50, warn_random_init=False), r50.preprocess), 2),
            ("MASA-SAM-ViT-B (SimpleFPN, 3 DyHead, 1024x1024 pad)", lambda: MasaEmbedder(build_masa_model(sam), sam.preprocess), 1),
        ]
    print(f"Machine: {platform.machine()}, {args.threads} threads, torch {torch.__version__}, Python {platform.python_version()}")
    print("Frame 768x576 RGB, 10 boxes, float32, CPU, channels-last backbone.\n")
    print("| configuration | median ms/frame | best ms | frames/s (median) |")
    print("|---|---:|---:|---:|")
    for name, make, repeats in rows:
        embedder = make()
        median, best = timed(lambda: embedder.embed(image, boxes), repeats)
        print(f"| {name} | {median:.0f} | {best:.0f} | {1000 / median:.1f} |", flush=True)
        del embedder
    return 0


if __name__ == "__main__":
    sys.exit(main())
