"""gt and results must describe the same sequence: length rule, empty gt, frames past the end."""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from masa.cli.eval import add_eval_subparser
from masa.eval import evaluate_mot
from masa.io.errors import InputError

EMPTY = "no ground-truth rows: nothing to score; expected at least one row frame,id,x,y,w,h,conf,class,visibility"
ROWS = [f"{f},{i},{10 + 100 * i},{20 + f},40,80,1,-1,-1,-1" for f in range(1, 6) for i in (1, 2)]


def _seq(root: Path, rows: list[str], seq_length: int | None = None, name: str = "seqA") -> Path:
    (root / name / "gt").mkdir(parents=True)
    (root / name / "gt" / "gt.txt").write_text("".join(r + "\n" for r in rows))
    if seq_length is not None:
        (root / name / "seqinfo.ini").write_text(f"[Sequence]\nname={name}\nseqLength={seq_length}\n")
    return root / name


def _write(path: Path, rows: list[str]) -> Path:
    path.write_text("".join(r + "\n" for r in rows))
    return path


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="masa")
    add_eval_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


def _shift(rows: list[str], by: int) -> list[str]:
    return [",".join([str(int(r.split(",")[0]) + by), *r.split(",")[1:]]) for r in rows]


def test_prediction_past_the_last_gt_frame_names_first_line_and_count(tmp_path: Path):
    gt = _write(tmp_path / "gt.txt", ROWS)
    pred = _write(tmp_path / "tracks.txt", ["# shifted by one frame", *_shift(ROWS, 1)])
    with pytest.raises(InputError) as info:
        evaluate_mot({"s": gt}, {"s": pred})
    err = info.value
    assert (err.source, err.line) == (str(pred), 10)  # line 1 is the comment; rows 9, 10 are frame 6
    assert str(err) == (
        f"{pred}:10: frame 6 is past the end of the sequence (5 frames, from the last frame of {gt}; "
        "2 prediction row(s) are past it); expected frames 1..5 (--allow-extra-frames / allow_extra_frames=True drops such rows)"
    )


def test_allow_extra_frames_drops_rows_with_a_warning(tmp_path: Path):
    gt = _write(tmp_path / "gt.txt", ROWS)
    pred = _write(tmp_path / "tracks.txt", [*ROWS, "7,1,10,20,40,80", "6,5,10,20,40,80"])
    with pytest.warns(RuntimeWarning, match=r"dropped 2 prediction row\(s\) past the end of the sequence .*the first on line 11$"):
        s = evaluate_mot({"s": gt}, {"s": pred}, allow_extra_frames=True, metrics=["CLEAR"])["s"]
    # the kept rows are scored exactly as without the extra rows
    assert s == evaluate_mot({"s": gt}, {"s": gt}, metrics=["CLEAR"])["s"]
    assert s["FP"] == 0 and s["num_frames"] == 5 and s["MOTA"] == pytest.approx(1.0)


def test_seqinfo_length_allows_trailing_frames_without_gt(tmp_path: Path):
    seq = _seq(tmp_path, ROWS, seq_length=8)
    pred = _write(tmp_path / "tracks.txt", [*ROWS, "8,1,10,20,40,80"])
    s = evaluate_mot({"s": seq}, {"s": pred}, metrics=["CLEAR"])["s"]
    assert s["num_frames"] == 8 and s["FP"] == 1
    # <seq>/gt/gt.txt beside <seq>/seqinfo.ini uses seqLength too
    assert evaluate_mot({"s": seq / "gt" / "gt.txt"}, {"s": pred}, metrics=["CLEAR"])["s"] == s
    with pytest.raises(InputError, match=r"tracks.txt:12: frame 9 is past the end of the sequence \(8 frames, from seqLength in "):
        evaluate_mot({"s": seq}, {"s": _write(pred, [*ROWS, "8,1,10,20,40,80", "9,1,10,20,40,80"])})
    # without seqinfo.ini a copied gt.txt has 5 frames: the frame-8 row is refused
    with pytest.raises(InputError, match=r"frame 8 is past the end of the sequence \(5 frames, from the last frame of"):
        evaluate_mot({"s": _write(tmp_path / "gt.txt", ROWS)}, {"s": _write(pred, [*ROWS, "8,1,10,20,40,80"])})


def test_gt_past_seqinfo_length_is_refused(tmp_path: Path):
    seq = _seq(tmp_path, ROWS, seq_length=3)
    with pytest.raises(InputError) as info:
        evaluate_mot({"s": seq}, {"s": None})
    gt = seq / "gt" / "gt.txt"
    assert str(info.value) == (
        f"{gt}:7: frame 4 is past the end of the sequence (3 frames, from seqLength in {seq / 'seqinfo.ini'}; "
        "4 gt row(s) are past it); expected gt frames 1..3"
    )
    # --allow-extra-frames is about predictions only
    with pytest.raises(InputError, match="gt row"):
        evaluate_mot({"s": seq}, {"s": None}, allow_extra_frames=True)


def test_empty_gt_is_nothing_to_score(tmp_path: Path):
    pred = _write(tmp_path / "tracks.txt", ROWS)
    for text in ("", "# only a comment\n\n"):
        gt = tmp_path / "gt.txt"
        gt.write_text(text)
        with pytest.raises(InputError) as info:
            evaluate_mot({"s": gt}, {"s": pred})
        assert str(info.value) == f"{gt}: {EMPTY}"
    # a sequence folder with seqinfo.ini but an empty gt: refused as well
    with pytest.raises(InputError, match="nothing to score"):
        evaluate_mot({"s": _seq(tmp_path, [], seq_length=5)}, {"s": pred})
    with pytest.raises(InputError, match=r"^<array gt s>: no ground-truth rows"):
        evaluate_mot({"s": np.zeros((0, 9))}, {"s": None})


def test_num_frames_argument(tmp_path: Path):
    gt = _write(tmp_path / "gt.txt", ROWS)
    pred = _write(tmp_path / "tracks.txt", [*ROWS, "7,1,10,20,40,80"])
    assert evaluate_mot({"s": gt}, {"s": pred}, num_frames={"s": 7}, metrics=["CLEAR"])["s"]["num_frames"] == 7
    with pytest.raises(InputError, match=r"gt.txt:7: frame 4 is past the end of the sequence \(3 frames, from num_frames\['s'\]"):
        evaluate_mot({"s": gt}, {"s": None}, num_frames={"s": 3})
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match=r"num_frames\['s'\] is .*; expected a positive integer"):
            evaluate_mot({"s": gt}, {"s": None}, num_frames={"s": bad})


def test_arrays_as_the_benchmark_passes_them():
    # MOT rows in memory, predictions on a subset of the gt frames (frames renumbered like lowfps)
    rng = np.random.default_rng(0)
    gt = np.array([[f, i, 10 + 60 * i, 20 + f, 40, 80, 1, -1, -1, -1] for f in range(1, 9) for i in range(3)], float)
    keep = rng.random(len(gt)) < 0.7
    pred = gt[keep].copy()
    pred[:, 6] = 0.9
    r = evaluate_mot({"a": gt, "b": gt[gt[:, 0] <= 4]}, {"a": pred, "b": pred[pred[:, 0] <= 4]}, metrics=("HOTA", "CLEAR", "Identity"))
    assert r["a"]["num_frames"] == 8 and r["b"]["num_frames"] == 4 and r["a"]["FP"] == 0
    with pytest.raises(InputError, match=r"^<array pred b>:\d+: frame 5 is past the end"):
        evaluate_mot({"b": gt[gt[:, 0] <= 4]}, {"b": pred})


def test_cli_refuses_and_allows(tmp_path: Path, capsys):
    seq = _seq(tmp_path / "gt", ROWS, seq_length=5)
    pred = _write(tmp_path / "tracks.txt", _shift(ROWS, 1))
    assert _cli(["--gt", str(seq), "--pred", str(pred)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.strip() == (
        f"masa eval: error: {pred}:9: frame 6 is past the end of the sequence (5 frames, from seqLength in "
        f"{seq / 'seqinfo.ini'}; 2 prediction row(s) are past it); expected frames 1..5 "
        "(--allow-extra-frames / allow_extra_frames=True drops such rows)"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the CLI records its warnings itself
        assert _cli(["--gt", str(seq), "--pred", str(pred), "--allow-extra-frames", "--metrics", "CLEAR", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        f"masa eval: warning: {pred}: dropped 2 prediction row(s) past the end of the sequence "
        f"(5 frames, from seqLength in {seq / 'seqinfo.ini'}), the first on line 9"
    )
    assert json.loads(captured.out)["sequences"]["seqA"]["TP"] == 8
    empty = _write(tmp_path / "empty.txt", [])
    assert _cli(["--gt", str(empty), "--pred", str(pred)]) == 2
    assert capsys.readouterr().err.strip() == f"masa eval: error: {empty}: {EMPTY}"
