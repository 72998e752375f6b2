"""MOTChallenge text loading: valid variants and clear errors for malformed rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from masa.eval import MOTFormatError, evaluate_mot, load_mot_file


def _write(tmp_path: Path, text: str, name: str = "res.txt") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_file_variants(tmp_path: Path):
    p = _write(tmp_path, "1,1,10,20,30,40,1,-1,-1,-1\n\n2,1,11,21,30,40\n3 2 5 5 10 10 0.9\n")
    rows = load_mot_file(p)
    assert rows.shape == (3, 9)
    assert rows[1, 6:].tolist() == [1.0, -1.0, -1.0]  # defaults for missing conf/class/vis
    assert rows[2, :7].tolist() == [3, 2, 5, 5, 10, 10, 0.9]
    assert load_mot_file(_write(tmp_path, "", "empty.txt")).shape == (0, 9)
    assert load_mot_file(None).shape == (0, 9)


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("1,1,10,20,30,40\n2,1,10,20\n", 2, "at least 6 fields"),
        ("1,1,10,20,30,40\n\n2,1,10,abc,30,40\n", 3, "not a number"),
        ("0,1,10,20,30,40\n", 1, "frame must be an integer >= 1"),
        ("1.5,1,10,20,30,40\n", 1, "frame must be an integer"),
        ("1,1.5,10,20,30,40\n", 1, "id must be an integer"),
        ("1,1,10,20,-30,40\n", 1, "negative box size"),
        ("1,1,10,20,nan,40\n", 1, "non-finite"),
        ("1,1,10,20,30,40\n99999999,1,10,20,30,40\n", 2, "implausibly large"),
        ("1,1,10,20,30,40\n1,2,10,20,30,40\n1,1,0,0,5,5\n", 3, "appears twice in frame 1"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path: Path, text: str, line: int, fragment: str):
    p = _write(tmp_path, text)
    with pytest.raises(MOTFormatError) as info:
        load_mot_file(p)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.line == line
    assert f"{p}:{line}" in str(err)
    assert fragment in str(err)


def test_malformed_prediction_through_evaluate(tmp_path: Path):
    gt = _write(tmp_path, "1,1,10,20,30,40,1,-1,-1\n", "gt.txt")
    pred = _write(tmp_path, "1,1,10,20,30,40\n1,x,10,20,30,40\n")
    with pytest.raises(MOTFormatError, match=r"res\.txt:2: field 2 is not a number"):
        evaluate_mot({"s": gt}, {"s": pred})


def test_array_input_checked():
    with pytest.raises(MOTFormatError, match="shape"):
        load_mot_file(np.zeros((3, 4)))
    with pytest.raises(MOTFormatError, match=r"<array>:2: frame"):
        load_mot_file(np.array([[1, 1, 0, 0, 1, 1], [0, 1, 0, 0, 1, 1]], dtype=float))


def test_missing_file(tmp_path: Path):
    with pytest.raises(FileNotFoundError):
        load_mot_file(tmp_path / "nope.txt")
