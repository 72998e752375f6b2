"""Domain adaptation without labels, measured: each sequence's own frames and public detections.

    python benchmarks/adaptation.py                       # adapt the shipped model on every mot15 sequence, then score
    python benchmarks/adaptation.py --steps 40 --sequences TUD-Campus

For every sequence, `masa train --init <shipped model> --images SEQ --detections SEQ/det/det.txt`
(short tracklets of the confident public detections give positives across real time; no
ground truth is read) writes ``runs/adapt/<seq>/model.safetensors``. Then
``benchmarks/mot_benchmark.py`` scores, side by side in one run, the raw features, the shipped
model and the per-sequence adapted models on protocols gt, det and lowfps. These figures are
"adapted on the sequence's own frames, no labels": they are reported apart from the shipped
model's zero-shot figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import mot_benchmark  # noqa: E402
from docs_section import write_section  # noqa: E402

from masa.modeling.build import DEFAULT_MODEL, shipped_weights  # noqa: E402
from masa.training.train import TrainConfig, train  # noqa: E402

BEGIN, END = "<!-- adaptation:begin -->", "<!-- adaptation:end -->"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq-root", type=Path, default=mot_benchmark.DEFAULT_ROOT)
    parser.add_argument("--sequences", nargs="*", help="only these sequence names")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "adapt")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--view-size", type=int, default=384)
    parser.add_argument("--lr", type=float, default=0.005)
    parser.add_argument("--docs", action="store_true", help="write the result table into docs/benchmarks.md")
    args = parser.parse_args(argv)
    init = str(shipped_weights(DEFAULT_MODEL))
    folders = sorted(p for p in args.seq_root.iterdir() if (p / "det" / "det.txt").is_file())
    if args.sequences:
        folders = [p for p in folders if p.name in args.sequences]
    started = time.perf_counter()
    for folder in folders:
        out = args.out / folder.name
        if (out / "model.safetensors").is_file() and (out / "checkpoint.pt").is_file():
            print(f"{folder.name}: adapted model exists ({out}), reused", file=sys.stderr)
            continue
        config = TrainConfig(
            out=str(out), proposals=(), images=(str(folder),), init=init, detections=str(folder / "det" / "det.txt"),
            steps=args.steps, batch_size=args.batch_size, view_size=args.view_size, lr=args.lr, warmup_steps=10,
            decay_steps=(int(args.steps * 0.8),), photometric=True, workers=1, device="cpu", progress=False,
            checkpoint_every=max(10, args.steps // 3), log_every=10,
        )  # fmt: skip
        train(config, resume=(out / "checkpoint.pt").is_file())
        print(f"[{time.perf_counter() - started:6.0f}s] adapted on {folder.name}", file=sys.stderr)
    adapted = f"adapted on own frames={args.out}/{{seq}}/model.safetensors"
    bench = ["--seq-root", str(args.seq_root), "--no-docs", "--appearance", "raw_efficientnet_lite0", DEFAULT_MODEL, adapted]
    if args.sequences:
        bench += ["--sequences", *args.sequences]
    report_path = args.out / "report.md"
    code = mot_benchmark.main([*bench, "--report", str(report_path)])
    if code == 0 and args.docs:
        header = (
            "## Adapted on each sequence's own frames, no labels (`benchmarks/adaptation.py`)\n\n"
            f"Command: `python benchmarks/adaptation.py --steps {args.steps} --docs` "
            f"({(time.perf_counter() - started) / 60:.1f} min, adaptation included). Each sequence: "
            f"`masa train --init {DEFAULT_MODEL} --detections det/det.txt`, {args.steps} steps of {args.batch_size} frame "
            f"pairs, lr {args.lr}; tracklets of the public detections, no ground truth. Not zero-shot: reported apart.\n\n"
        )
        write_section(BEGIN, END, header + report_path.read_text())
    return code


if __name__ == "__main__":
    sys.exit(main())
