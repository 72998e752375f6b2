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


def _masa_track_outputs(out: Path, rows: list[str], labels: int = 1) -> Path:
    """What masa track --out writes: tracks.txt (MOTChallenge) and tracks.json (class in category_id)."""
    out.mkdir(parents=True)
    (out / "tracks.txt").write_text("\n".join(rows) + "\n")
    records = []
    for r in rows:
        f, i, x, y, w, h = (float(v) for v in r.split(",")[:6])
        records.append({"video_id": 1, "image_id": int(f), "track_id": int(i), "bbox": [x, y, w, h], "score": 0.9, "category_id": labels})
    (out / "tracks.json").write_text("[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n")
    return out


def test_masa_track_outputs_and_teta_options(tmp_path: Path, capsys):
    seq = _seq_dir(tmp_path / "gt", "seqA", GT_ROWS)
    run = _masa_track_outputs(tmp_path / "runs" / "seqA", GT_ROWS)
    scores = []
    for pred in (run / "tracks.txt", run / "tracks.json", run):  # a file, or the --out folder
        assert _run(["--gt", str(seq), "--pred", str(pred), "--json"]) == 0
        payload = json.loads(capsys.readouterr().out)
        assert payload["teta"] == {"mode": "tao", "class_aware": False}
        scores.append(payload["sequences"]["seqA"])
    assert scores[0] == scores[1] == scores[2] and scores[0]["TETA"] == pytest.approx(1.0)
    # Class-aware: gt class column (8) is -1 in GT_ROWS, tracks.json says category 1 -> every match
    # is misclassified: ClsA 0. The folder is read through tracks.json (tracks.txt has no classes).
    assert _run(["--gt", str(seq), "--pred", str(run), "--class-aware", "--teta-mode", "exhaustive", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["teta"] == {"mode": "exhaustive", "class_aware": True}
    assert payload["sequences"]["seqA"]["ClsA"] == 0.0 and payload["sequences"]["seqA"]["MOTA"] == pytest.approx(1.0)
    # --pred-dir with masa track folders: <pred-dir>/<seq>/tracks.txt.
    assert _run(["--gt-dir", str(tmp_path / "gt"), "--pred-dir", str(tmp_path / "runs"), "--metrics", "TETA"]) == 0
    text = capsys.readouterr().out
    assert "TETA tao mode, class-agnostic" in text and text.splitlines()[0].split() == ["Sequence", "TETA", "LocA_teta", "AssocA", "ClsA"]


def test_bad_json_and_warnings_are_one_line(tmp_path: Path, capsys):
    seq = _seq_dir(tmp_path, "seqA", GT_ROWS)
    bad = tmp_path / "tracks.json"
    bad.write_text('[\n{"image_id": 1, "track_id": 1, "bbox": [1, 2, 3, 4]},\n{"image_id": 1, "bbox": [1, 2, 3, 4]}\n]\n')
    assert _run(["--gt", str(seq), "--pred", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"masa eval: error: {bad}:3: track_id is None (a detections file has no track ids); expected an integer track id"
    zero = tmp_path / "zero.txt"
    zero.write_text("\n".join([*GT_ROWS, "1,9,10,10,0,10,1"]) + "\n")
    assert _run(["--gt", str(seq), "--pred", str(zero), "--metrics", "CLEAR", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.startswith(f"masa eval: warning: {zero}: 1 row(s) with width or height <= 0 (line 11)")
    assert json.loads(captured.out)["sequences"]["seqA"]["FP"] == 1
