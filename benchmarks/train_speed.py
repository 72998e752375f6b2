"""Training throughput and memory: one process vs two DDP processes (torchrun, gloo on CPU), side by side.

    python benchmarks/train_speed.py --proposals runs/train_data/proposals.json \
        --images ../shared/data/coco128/images ../shared/data/raw-photos

Runs `masa train` (the shipped `masa_lite0` recipe: view 384, no MixUp, LSJ 0.5-1.5, photometric)
for ``--steps`` steps with ``--batch-size`` pairs per process, first as one process (all threads),
then as two processes under ``torch.distributed.run`` (one thread each), and reports view pairs per
second (the median of the logged windows after the first), the ratio, and the peak resident memory
of the training processes. Prints a Markdown table; ``--docs`` writes it into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from docs_section import write_section

BEGIN, END = "<!-- train-speed:begin -->", "<!-- train-speed:end -->"


def _run(cmd: list[str], env: dict[str, str], out: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    peak_mb = max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if '"samples_per_s"' in line]
    rates = sorted(r["samples_per_s"] for r in rows[1:]) or [rows[-1]["samples_per_s"]]
    return rates[len(rates) // 2], peak_mb if wall else 0.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proposals", required=True)
    parser.add_argument("--images", nargs="+", required=True)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--docs", action="store_true")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="masa-train-speed-"))
    common = [
        "train", "--images", *args.images, "--proposals", args.proposals, "--steps", str(args.steps),
        "--batch-size", str(args.batch_size), "--view-size", "384", "--no-mixup", "--resize-range", "0.5", "1.5",
        "--photometric", "--negatives", "batch", "--lr", "0.05", "--warmup-steps", "5", "--decay-steps", str(args.steps),
        "--log-every", "4", "--checkpoint-every", str(args.steps), "--workers", "1", "--device", "cpu", "--no-progress",
    ]  # fmt: skip
    env = dict(os.environ)
    results = {}
    try:
        one = tmp / "one"
        results["1 process (2 threads)"] = _run([sys.executable, "-m", "masa", *common, "--out", str(one)], env, one)
        two = tmp / "two"
        env2 = dict(env, OMP_NUM_THREADS="1")
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
        cmd = [*torchrun, "-m", "masa", *common, "--out", str(two)]
        results["2 processes (torchrun, gloo, 1 thread each)"] = _run(cmd, env2, two)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = next(iter(results.values()))[0]
    lines = [
        "## Training throughput (`benchmarks/train_speed.py`)",
        "",
        f"Command: `python benchmarks/train_speed.py --proposals PROPOSALS --images IMAGES... --steps {args.steps} "
        f"--batch-size {args.batch_size}`. Machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}. "
        f"Shipped recipe (masa_lite0, views 384, {args.batch_size} pairs per process and step); view pairs per second "
        "(median of the logged windows after the first); peak resident memory of one training process "
        "(the largest child, data-loader worker excluded).",
        "",
        "| run | view pairs / s | ratio | peak RSS (MB) |",
        "|---|---|---|---|",
    ]
    for name, (rate, peak) in results.items():
        lines.append(f"| {name} | {rate:.2f} | {rate / base:.2f} | {peak:.0f} |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.docs:
        write_section(BEGIN, END, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
