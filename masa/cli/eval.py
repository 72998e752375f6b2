"""``masa eval``: score MOTChallenge-format tracker output (HOTA, CLEAR, Identity, TETA).

One sequence::

    masa eval --gt data/MOT15/TUD-Campus --pred results/TUD-Campus.txt

Many sequences (every sub-folder of ``--gt-dir`` with ``gt/gt.txt``; predictions are
``<pred-dir>/<sequence>.txt``)::

    masa eval --gt-dir data/MOT15 --pred-dir results --json --out scores.json

The table prints fractions as percentages; ``--json`` prints only the JSON object (fractions in
[0, 1], counts as ints) on stdout. Bad input gives a one-line error on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_eval_subparser", "run_eval"]

_DEFAULT_METRICS = ("HOTA", "CLEAR", "Identity", "TETA")


class _UsageError(ValueError):
    pass


def add_eval_subparser(subparsers: Any) -> None:
    """Register the ``eval`` subcommand (sets ``func=run_eval``)."""
    p = subparsers.add_parser(
        "eval",
        help="score MOTChallenge tracking results (HOTA, MOTA, IDF1, TETA)",
        description=(
            "Score MOTChallenge-format tracking results against ground truth with HOTA, CLEAR "
            "(MOTA, ...), Identity (IDF1, ...) computed by TrackEval's metric classes, and TETA. "
            "Give either --gt/--pred (one sequence) or --gt-dir/--pred-dir (many)."
        ),
        epilog=(
            "Text output shows percentages; JSON output holds fractions in [0, 1] and integer counts. "
            "--benchmark MOT15 (default) scores every gt row whose conf flag is non-zero; "
            "MOT16/MOT17/MOT20 score pedestrians only and drop predictions on distractors."
        ),
    )
    p.add_argument("--gt", metavar="GT", help="gt.txt file or MOTChallenge sequence folder (uses gt/gt.txt)")
    p.add_argument("--pred", metavar="PRED", help="tracker result .txt for the --gt sequence")
    p.add_argument("--gt-dir", metavar="DIR", help="folder whose sub-folders <seq>/gt/gt.txt are the sequences")
    p.add_argument("--pred-dir", metavar="DIR", help="folder with one <seq>.txt result per sequence")
    p.add_argument("--seqs", nargs="+", metavar="SEQ", help="with --gt-dir: evaluate only these sequences")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="with --pred-dir: score sequences without a result file as empty (default: error)",
    )
    p.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        default=list(_DEFAULT_METRICS),
        help="metric families: HOTA CLEAR Identity TETA (default: all)",
    )
    p.add_argument(
        "--benchmark",
        default="MOT15",
        metavar="NAME",
        help="MOT15 (default), MOT16, MOT17 or MOT20: selects the MOTChallenge gt preprocessing",
    )
    p.add_argument("--json", action="store_true", help="print only the JSON result on stdout")
    p.add_argument("--out", metavar="FILE", help="also write the JSON result to FILE")
    p.set_defaults(func=run_eval)


def _seq_name(gt_path: Path) -> str:
    if gt_path.is_dir():
        return gt_path.resolve().name
    # <seq>/gt/gt.txt -> <seq>
    if gt_path.name == "gt.txt" and gt_path.parent.name == "gt":
        return gt_path.resolve().parent.parent.name
    if gt_path.stem == "gt":  # e.g. assets/tud-campus/gt.txt: the folder names the sequence
        return gt_path.resolve().parent.name
    return gt_path.stem


def _collect(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    single = args.gt is not None or args.pred is not None
    multi = args.gt_dir is not None or args.pred_dir is not None
    if single and multi:
        raise _UsageError("use either --gt/--pred or --gt-dir/--pred-dir, not both")
    if not single and not multi:
        raise _UsageError("nothing to evaluate: give --gt and --pred, or --gt-dir and --pred-dir")
    if single:
        if args.gt is None or args.pred is None:
            raise _UsageError("--gt and --pred must be given together")
        if args.seqs:
            raise _UsageError("--seqs needs --gt-dir")
        gt_path, pred_path = Path(args.gt), Path(args.pred)
        if not gt_path.exists():
            raise FileNotFoundError(f"--gt {gt_path} does not exist")
        if gt_path.is_dir() and not (gt_path / "gt" / "gt.txt").is_file():
            raise FileNotFoundError(f"--gt {gt_path} is a folder without gt/gt.txt")
        if not pred_path.is_file():
            raise FileNotFoundError(f"--pred {pred_path} is not a file")
        name = _seq_name(gt_path)
        return {name: gt_path}, {name: pred_path}

    if args.gt_dir is None or args.pred_dir is None:
        raise _UsageError("--gt-dir and --pred-dir must be given together")
    gt_dir, pred_dir = Path(args.gt_dir), Path(args.pred_dir)
    if not gt_dir.is_dir():
        raise FileNotFoundError(f"--gt-dir {gt_dir} is not a folder")
    if not pred_dir.is_dir():
        raise FileNotFoundError(f"--pred-dir {pred_dir} is not a folder")
    seqs = sorted(d.name for d in gt_dir.iterdir() if (d / "gt" / "gt.txt").is_file())
    if not seqs:
        raise _UsageError(f"--gt-dir {gt_dir} has no sequence folders with gt/gt.txt")
    if args.seqs:
        unknown = [s for s in args.seqs if s not in seqs]
        if unknown:
            raise _UsageError(f"--seqs: not found in {gt_dir}: {', '.join(unknown)}")
        seqs = [s for s in seqs if s in set(args.seqs)]
    missing = [s for s in seqs if not (pred_dir / f"{s}.txt").is_file()]
    if missing and not args.allow_missing:
        raise _UsageError(
            f"no result file in {pred_dir} for {len(missing)} sequence(s): "
            + ", ".join(f"{s}.txt" for s in missing)
            + " (use --allow-missing to score them as empty)"
        )
    gt = {s: gt_dir / s for s in seqs}
    pred = {s: (None if s in missing else pred_dir / f"{s}.txt") for s in seqs}
    return gt, pred


def run_eval(args: argparse.Namespace) -> int:
    """Run ``masa eval``; returns the exit code (0 ok, 2 bad input)."""
    from masa.eval.mot_metrics import evaluate_mot
    from masa.eval.report import format_table, to_json

    try:
        gt, pred = _collect(args)
        metrics = args.metrics or list(_DEFAULT_METRICS)
        result = evaluate_mot(gt, pred, benchmark=args.benchmark, metrics=metrics)
        payload = to_json(result)
        text = json.dumps(payload, indent=2)
        if args.out:
            out = Path(args.out)
            if out.parent and not out.parent.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
    except (ValueError, OSError) as exc:  # MOTFormatError is a ValueError
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"masa eval: error: {msg}", file=sys.stderr)
        return 2

    if args.json:
        print(text)
    else:
        print(format_table(result, result.metrics))
        print(f"benchmark {result.benchmark}; scores in percent, counts as integers")
        if args.out:
            print(f"JSON written to {args.out}")
    return 0
