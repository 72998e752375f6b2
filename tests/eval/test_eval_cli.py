"""``masa eval`` through argparse: JSON output, multi-sequence folders and one-line errors."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import pytest

from masa.cli.eval import add_eval_subparser, run_eval


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="masa")
    add_eval_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    assert args.func is run_eval
    return args.func(args)


def _seq_dir(root: Path, name: str, rows: list[str]) -> Path:
    d = root / name / "gt"
    d.mkdir(parents=True)
    (d / "gt.txt").write_text("\n".join(rows) + "\n")
    return root / name


GT_ROWS = [f"{f},{i},{10 + 100 * i},{20 + f},40,80,1,-1,-1,-1" for f in range(1, 6) for i in (1, 2)]


@pytest.mark.data
def test_single_sequence_json(shared_data: Path, tmp_path: Path, capsys):
    out = tmp_path / "sub" / "scores.json"
    rc = _run(
        [
            "--gt", str(shared_data / "mot15" / "TUD-Campus"),
            "--pred", str(shared_data / "metric-reference" / "TUD-Campus-tracker.txt"),
            "--json", "--out", str(out),
        ]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    payload = json.loads(captured.out)
    assert payload["benchmark"] == "MOT15"
    assert payload["metrics"] == ["HOTA", "CLEAR", "Identity", "TETA"]
    seq = payload["sequences"]["TUD-Campus"]
    for k in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "IDF1", "IDSW", "TETA", "LocA_teta", "AssocA", "ClsA"):
        assert k in seq and k in payload["combined"]
    assert seq["MOTA"] == pytest.approx(0.526462, abs=1e-4)
    assert seq["IDF1"] == pytest.approx(0.557659, abs=1e-4)
    assert seq["IDSW"] == 7
    assert json.loads(out.read_text()) == payload


@pytest.mark.data
def test_single_sequence_table(shared_data: Path, capsys):
    rc = _run(
        [
            "--gt", str(shared_data / "mot15" / "TUD-Campus" / "gt" / "gt.txt"),
            "--pred", str(shared_data / "metric-reference" / "TUD-Campus-tracker.txt"),
            "--metrics", "CLEAR", "Identity",
        ]
    )  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["Sequence", "MOTA", "MOTP"]
    row = next(line for line in lines if line.startswith("TUD-Campus"))
    assert "52.6" in row.split() and "55.8" in row.split()
    assert any(line.startswith("COMBINED") for line in lines)
    assert "HOTA" not in lines[0]


def test_gt_dir_pred_dir_two_sequences(tmp_path: Path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    _seq_dir(gt_dir, "seqA", GT_ROWS)
    _seq_dir(gt_dir, "seqB", GT_ROWS)
    (gt_dir / "notes").mkdir()  # no gt/gt.txt: not a sequence
    pred_dir.mkdir()
    (pred_dir / "seqA.txt").write_text("\n".join(GT_ROWS) + "\n")  # perfect
    half = [r for r in GT_ROWS if r.split(",")[1] == "1"]  # object 2 missed
    (pred_dir / "seqB.txt").write_text("\n".join(half) + "\n")
    rc = _run(["--gt-dir", str(gt_dir), "--pred-dir", str(pred_dir), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    payload = json.loads(captured.out)
    assert sorted(payload["sequences"]) == ["seqA", "seqB"]
    assert payload["sequences"]["seqA"]["MOTA"] == pytest.approx(1.0)
    assert payload["sequences"]["seqB"]["MOTA"] == pytest.approx(0.5)
    assert payload["sequences"]["seqB"]["FN"] == 5
    assert payload["combined"]["MOTA"] == pytest.approx(15 / 20)
    assert payload["combined"]["FN"] == 5


def test_missing_prediction_is_an_error_unless_allowed(tmp_path: Path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for s in ("seqA", "seqB", "seqC"):
        _seq_dir(gt_dir, s, GT_ROWS)
    pred_dir.mkdir()
    (pred_dir / "seqA.txt").write_text("\n".join(GT_ROWS) + "\n")
    rc = _run(["--gt-dir", str(gt_dir), "--pred-dir", str(pred_dir)])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "seqB.txt" in err and "seqC.txt" in err
    assert "Traceback" not in captured.err

    rc = _run(["--gt-dir", str(gt_dir), "--pred-dir", str(pred_dir), "--allow-missing", "--json"])
    captured = capsys.readouterr()
    assert rc == 0
    payload = json.loads(captured.out)
    assert payload["sequences"]["seqB"]["FN"] == len(GT_ROWS)
    assert payload["sequences"]["seqA"]["MOTA"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    "make_argv, fragment",
    [
        (lambda d: ["--gt", str(d / "seqA")], "--gt and --pred"),
        (lambda d: [], "nothing to evaluate"),
        (lambda d: ["--gt", str(d / "seqA"), "--pred", str(d / "bad.txt"), "--gt-dir", str(d)], "either"),
        (lambda d: ["--gt", str(d / "nope"), "--pred", str(d / "bad.txt")], "does not exist"),
        (lambda d: ["--gt", str(d / "seqA"), "--pred", str(d / "bad.txt")], "bad.txt:2"),
        (lambda d: ["--gt", str(d / "seqA"), "--pred", str(d / "ok.txt"), "--metrics", "MOTA"], "unknown metric"),
        (lambda d: ["--gt", str(d / "seqA"), "--pred", str(d / "ok.txt"), "--benchmark", "KITTI"], "benchmark"),
    ],
)
def test_bad_input_one_line_exit_2(tmp_path: Path, capsys, make_argv, fragment):
    _seq_dir(tmp_path, "seqA", GT_ROWS)
    (tmp_path / "bad.txt").write_text("1,1,10,20,40,80\n2,1,10\n")
    (tmp_path / "ok.txt").write_text("\n".join(GT_ROWS) + "\n")
    rc = _run(make_argv(tmp_path))
    captured = capsys.readouterr()
    assert rc == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("masa eval: error:")
    assert fragment in lines[0]
    assert captured.out == ""


def test_benchmark_is_case_insensitive_and_seqs_filter(tmp_path: Path, capsys):
    gt_dir, pred_dir = tmp_path / "gt", tmp_path / "pred"
    for s in ("seqA", "seqB"):
        _seq_dir(gt_dir, s, GT_ROWS)
    pred_dir.mkdir()
    shutil.copy(gt_dir / "seqA" / "gt" / "gt.txt", pred_dir / "seqA.txt")
    rc = _run(
        ["--gt-dir", str(gt_dir), "--pred-dir", str(pred_dir), "--seqs", "seqA", "--benchmark", "mot15", "--json"]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert list(json.loads(captured.out)["sequences"]) == ["seqA"]
