"""Loading gt / results for evaluation: the masa.io parser's rules, JSON results, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from masa import Tracks
from masa.eval import evaluate_mot, load_mot_file
from masa.io import InputError, JsonResultWriter, MotResultWriter


def _write(tmp_path: Path, text: str, name: str = "res.txt") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_file_variants(tmp_path: Path):
    p = _write(tmp_path, "# comment\n1,1,10,20,30,40,1,-1,-1,-1\n\n2,1,11,21,30,40\n3 2 5 5 10 10 0.9\n")
    loaded = load_mot_file(p)
    assert loaded.rows.shape == (3, 9) and loaded.lines.tolist() == [2, 4, 5] and loaded.source == str(p)
    assert loaded.rows[1, 6:].tolist() == [-1.0, -1.0, -1.0]  # shorter than the longest row: padded with -1
    assert loaded.rows[2, :7].tolist() == [3, 2, 5, 5, 10, 10, 0.9]
    six = load_mot_file(_write(tmp_path, "1,1,10,20,30,40\n", "six.txt"))
    assert six.rows[0, 6:].tolist() == [1.0, -1.0, -1.0]  # no conf/class/visibility columns: defaults
    assert load_mot_file(_write(tmp_path, "", "empty.txt")).rows.shape == (0, 9)
    assert load_mot_file(None).rows.shape == (0, 9)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("1,1,10,20,30,40\n2,1,10,20\n", 2, "4 fields ('2,1,10,20'); expected at least 6 numbers (frame,id,x,y,w,h)"),
        ("1,1,10,20,30,40\n\n2,1,10,abc,30,40\n", 3, "y (column 4) is 'abc'; expected a number"),
        ("0,1,10,20,30,40\n", 1, "frame is 0; expected an integer >= 1"),
        ("1.5,1,10,20,30,40\n", 1, "frame is 1.5; expected an integer >= 1"),
        ("1,1.5,10,20,30,40\n", 1, "id is 1.5; expected an integer"),
        ("1,1,10,20,nan,40\n", 1, "w (column 5) is nan; expected a finite number"),
        ("1,1,10,20,30,40\n99999999,1,10,20,30,40\n", 2, "frame is 99999999; expected a frame number <= 1,000,000"),
        ("1,1,10,20,30,40\n1,2,10,20,30,40\n1,1,0,0,5,5\n", 3, "id 1 appears twice in frame 1 (also on line 1)"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str):
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_mot_file(p)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.line == line and err.source == str(p)
    assert str(err).startswith(f"{p}:{line}: ")
    assert fragment in str(err)


def test_zero_and_negative_sizes_are_kept_as_unmatchable(tmp_path: Path):
    # Accepted like masa track's readers accept them; evaluation keeps them with IoU 0 (TrackEval):
    # the zero-size gt row is a miss, the negative-size prediction a false positive.
    gt = _write(tmp_path, "1,1,10,20,30,40,1\n1,2,50,50,0,40,1\n", "gt.txt")
    pred = _write(tmp_path, "1,7,10,20,30,40\n1,8,50,50,-3,40\n")
    with pytest.warns(RuntimeWarning, match=r"1 row\(s\) with width or height <= 0 \(line 2\) overlap nothing"):
        s = evaluate_mot({"s": gt}, {"s": pred}, metrics=["CLEAR"])["s"]
    assert (s["TP"], s["FN"], s["FP"]) == (1, 1, 1)


def test_malformed_prediction_through_evaluate(tmp_path: Path):
    gt = _write(tmp_path, "1,1,10,20,30,40,1,-1,-1\n", "gt.txt")
    pred = _write(tmp_path, "1,1,10,20,30,40\n1,x,10,20,30,40\n")
    with pytest.raises(InputError, match=r"res\.txt:2: id \(column 2\) is 'x'; expected a number"):
        evaluate_mot({"s": gt}, {"s": pred})


def test_detection_file_as_results_is_explained(tmp_path: Path):
    gt = _write(tmp_path, "1,1,10,20,30,40,1\n", "gt.txt")
    det = _write(tmp_path, "1,-1,10,20,30,40,0.9\n1,-1,50,20,30,40,0.8\n", "det.txt")
    with pytest.raises(InputError, match=r"det\.txt:2: id -1 appears twice in frame 1 .*a detection file has no track ids"):
        evaluate_mot({"s": gt}, {"s": det})


def test_array_input_checked():
    with pytest.raises(InputError, match=r"<array>: an array of shape \(3, 4\)"):
        load_mot_file(np.zeros((3, 4)))
    with pytest.raises(InputError, match=r"<array pred s>:2: frame is 0"):
        load_mot_file(np.array([[1, 1, 0, 0, 1, 1], [0, 1, 0, 0, 1, 1]], dtype=float), name="pred s")


def test_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_mot_file(tmp_path / "nope.txt")


def _tracks(ids, boxes, labels):
    return Tracks(boxes=boxes, scores=[0.9] * len(ids), ids=ids, labels=labels)


def test_masa_track_outputs_score_the_same(tmp_path: Path):
    # The two files masa track writes (tracks.txt, tracks.json) give the same scores.
    gt = _write(tmp_path, "".join(f"{f},1,10,20,30,40,1\n{f},2,100,20,30,40,1\n" for f in (1, 2, 3)), "gt.txt")
    frames = [_tracks([0, 1], [[10, 20, 40, 60], [100, 20, 130, 60]], [3, 5])] * 2 + [_tracks([0], [[10, 20, 40, 60]], [3])]
    with MotResultWriter(tmp_path / "tracks.txt") as txt, JsonResultWriter(tmp_path / "tracks.json", video_name="s") as js:
        for index, tracks in enumerate(frames):
            txt.write(index, tracks)
            js.write(index, tracks)
    by_txt = evaluate_mot({"s": gt}, {"s": tmp_path / "tracks.txt"})["s"]
    by_json = evaluate_mot({"s": gt}, {"s": tmp_path / "tracks.json"})["s"]
    assert by_txt == by_json and by_txt["FN"] == 1 and by_txt["MOTA"] == pytest.approx(5 / 6)
    loaded = load_mot_file(tmp_path / "tracks.json")
    assert loaded.rows[:, 7].tolist() == [3, 5, 3, 5, 3]  # category_id -> the class column
    assert loaded.lines.tolist() == [2, 3, 4, 5, 6]  # one record per line after the "["


def test_json_results_errors(tmp_path: Path):
    def write(records, name="r.json"):
        return _write(tmp_path, "[\n" + ",\n".join(json.dumps(r) for r in records) + "\n]\n", name)

    ok = {"image_id": 1, "track_id": 1, "bbox": [1, 2, 3, 4]}
    with pytest.raises(InputError, match=r"r\.json:3: track_id is None \(a detections file has no track ids\)"):
        load_mot_file(write([ok, {"image_id": 1, "bbox": [5, 6, 7, 8]}]))
    with pytest.raises(InputError, match=r"r\.json:3: bbox is \[1, 2\]; expected 4 finite numbers"):
        load_mot_file(write([ok, {"image_id": 2, "track_id": 1, "bbox": [1, 2]}]))
    with pytest.raises(InputError, match=r"r\.json:2: image_id is 0; expected an integer >= 1"):
        load_mot_file(write([{"image_id": 0, "track_id": 1, "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(InputError, match=r"r\.json:3: a second video_id 2; expected the records of one sequence"):
        load_mot_file(write([{**ok, "video_id": 1}, {**ok, "image_id": 2, "video_id": 2}]))
    with pytest.raises(InputError, match=r"r\.json:3: id 1 appears twice in frame 1"):
        load_mot_file(write([ok, ok]))
    bad = _write(tmp_path, '[\n{"image_id": 1,\n "track_id": 1, "bbox": [1, 2, 3, 4]]', "bad.json")
    with pytest.raises(InputError, match=r"bad\.json:3: invalid JSON"):
        load_mot_file(bad)
    # A list cut short by a killed writer is read up to its last complete record.
    cut = _write(tmp_path, '[\n{"image_id": 1, "track_id": 1, "bbox": [1, 2, 3, 4]},\n', "cut.json")
    with pytest.warns(RuntimeWarning, match="not closed"):
        assert load_mot_file(cut).rows.shape == (1, 9)
    wrapped = _write(tmp_path, json.dumps({"info": {"a": [1]}, "annotations": [ok]}, indent=1), "wrapped.json")
    assert load_mot_file(wrapped).rows[0, :6].tolist() == [1, 1, 1, 2, 3, 4]
