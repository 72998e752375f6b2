"""``masa eval``: score tracker output against MOTChallenge ground truth (HOTA, CLEAR, Identity, TETA).

One sequence (``--pred``: a MOTChallenge ``.txt``, the ``tracks.json`` of ``masa track``, or the
``masa track --out`` folder holding them)::

    masa eval --gt data/MOT15/TUD-Campus --pred runs/TUD-Campus/tracks.txt

Many sequences (every sub-folder of ``--gt-dir`` with ``gt/gt.txt``; the result of sequence ``S``
is ``<pred-dir>/S.txt``, ``S.json``, ``S/tracks.txt`` or ``S/tracks.json``)::

    masa eval --gt-dir data/MOT15 --pred-dir results --json --out scores.json

TETA follows the authors' evaluator: ``--teta-mode tao`` (default) or ``exhaustive`` (their COCO /
BDD100K variant); ``--class-aware`` evaluates per class (column 8 of gt and results, or the JSON
``category_id``). The table prints fractions as percentages; ``--json`` prints only the JSON object
(fractions in [0, 1], counts as ints) on stdout. Bad input gives a one-line error on stderr
(``<file>:<line>: ...`` for malformed files) and exit code 2; so do an empty gt and gt or result
rows past the end of the sequence (``seqLength`` of ``seqinfo.ini`` for a sequence folder, else the
last gt frame; ``--allow-extra-frames`` drops such result rows with a warning). See ``docs/eval.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

__all__ = ["add_eval_subparser", "run_eval"]

_DEFAULT_METRICS = ("HOTA", "CLEAR", "Identity", "TETA")
_TETA_MODES = ("tao", "exhaustive")  # masa.eval.teta.TETA_MODES (not imported: keeps `masa --help` fast)


class _UsageError(ValueError):
    pass


def add_eval_subparser(subparsers: Any) -> None:
    """Register the ``eval`` subcommand (sets ``func=run_eval``)."""
    p = subparsers.add_parser(
        "eval",
        help="score MOTChallenge tracking results (HOTA, MOTA, IDF1, TETA)",
        description=(
            "Score tracking results (MOTChallenge .txt, or the tracks.json of masa track) against "
            "MOTChallenge ground truth with HOTA, CLEAR (MOTA, ...), Identity (IDF1, ...) computed by "
            "TrackEval's metric classes, and TETA computed as its authors' evaluator does. "
            "Give either --gt/--pred (one sequence) or --gt-dir/--pred-dir (many)."
        ),
        epilog=(
            "Text output shows percentages; JSON output holds fractions in [0, 1] and integer counts. "
            "--benchmark MOT15 (default) scores every gt row whose conf flag is non-zero; "
            "MOT16/MOT17/MOT20 score pedestrians only and drop predictions on distractors. "
            "See docs/eval.md."
        ),
    )
    p.add_argument("--gt", metavar="GT", help="gt.txt file or MOTChallenge sequence folder (uses gt/gt.txt)")
    p.add_argument(
        "--pred",
        metavar="PRED",
        help="results for the --gt sequence: a MOTChallenge .txt, a masa track tracks.json, or a masa track --out folder",
    )
    p.add_argument("--gt-dir", metavar="DIR", help="folder whose sub-folders <seq>/gt/gt.txt are the sequences")
    p.add_argument(
        "--pred-dir",
        metavar="DIR",
        help="folder with one result per sequence: <seq>.txt, <seq>.json, <seq>/tracks.txt or <seq>/tracks.json",
    )
    p.add_argument("--seqs", nargs="+", metavar="SEQ", help="with --gt-dir: evaluate only these sequences")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="with --pred-dir: score sequences without a result file as empty (default: error)",
    )
    p.add_argument(
        "--allow-extra-frames",
        action="store_true",
        help="drop (with a warning) prediction rows on frames past the end of the sequence "
        "(seqLength of seqinfo.ini for a sequence folder, else the last gt frame); default: error",
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
    p.add_argument(
        "--teta-mode",
        choices=_TETA_MODES,
        default="tao",
        help="TETA as the authors evaluate TAO (default: predictions overlapping no gt box are ignored) "
        "or exhaustive COCO/BDD100K-style (unmatched predictions of a class lower ClsA)",
    )
    p.add_argument(
        "--class-aware",
        action="store_true",
        help="TETA per class, classes from column 8 of gt and results or the JSON category_id "
        "(prefers <seq>.json / tracks.json: masa track's tracks.txt has no class); default: class-agnostic",
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


def _result_file(base: Path, seq: str | None, class_aware: bool) -> Path | None:
    """The result file of one sequence: ``<base>/<seq>.txt|.json`` or ``<base>/<seq>/tracks.txt|.json``
    (``seq=None``: ``<base>/tracks.txt|.json``). JSON first when class-aware (it has the classes)."""
    folder = base if seq is None else base / seq
    candidates = [folder / "tracks.txt", folder / "tracks.json"]
    if seq is not None:
        candidates = [base / f"{seq}.txt", base / f"{seq}.json", *candidates]
    if class_aware:
        candidates.sort(key=lambda p: p.suffix != ".json")  # stable: keeps the order within each kind
    return next((c for c in candidates if c.is_file()), None)


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
        if pred_path.is_dir():
            found = _result_file(pred_path, None, args.class_aware)
            if found is None:
                raise FileNotFoundError(f"--pred {pred_path} is a folder without tracks.txt or tracks.json")
            pred_path = found
        elif not pred_path.is_file():
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
    pred = {s: _result_file(pred_dir, s, args.class_aware) for s in seqs}
    missing = [s for s in seqs if pred[s] is None]
    if missing and not args.allow_missing:
        raise _UsageError(
            f"no result file in {pred_dir} for {len(missing)} sequence(s): "
            + ", ".join(f"{s}.txt" for s in missing)
            + " (also looked for <seq>.json, <seq>/tracks.txt, <seq>/tracks.json; use --allow-missing to score them as empty)"
        )
    gt = {s: gt_dir / s for s in seqs}
    return gt, pred


def run_eval(args: argparse.Namespace) -> int:
    """Run ``masa eval``; returns the exit code (0 ok, 2 bad input)."""
    from masa.eval.mot_metrics import evaluate_mot
    from masa.eval.report import format_table, to_json

    try:
        gt, pred = _collect(args)
        metrics = args.metrics or list(_DEFAULT_METRICS)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = evaluate_mot(
                gt,
                pred,
                benchmark=args.benchmark,
                metrics=metrics,
                teta_mode=args.teta_mode,
                class_aware=args.class_aware,
                allow_extra_frames=args.allow_extra_frames,
            )
        for w in caught:
            print(f"masa eval: warning: {w.message}", file=sys.stderr)
        payload = to_json(result)
        text = json.dumps(payload, indent=2)
        if args.out:
            out = Path(args.out)
            if out.parent and not out.parent.exists():
                out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(text + "\n", encoding="utf-8")
    except (ValueError, OSError) as exc:  # InputError is a ValueError
        msg = " ".join(str(exc).split()) or type(exc).__name__
        print(f"masa eval: error: {msg}", file=sys.stderr)
        return 2

    if args.json:
        print(text)
    else:
        print(format_table(result, result.metrics))
        teta = ""
        if "TETA" in result.metrics:
            teta = f"; TETA {result.teta_mode} mode, {'class-aware' if result.class_aware else 'class-agnostic'}"
        print(f"benchmark {result.benchmark}{teta}; scores in percent, counts as integers")
        if args.out:
            print(f"JSON written to {args.out}")
    return 0
