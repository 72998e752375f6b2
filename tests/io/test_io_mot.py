"""MOTChallenge files: the one row parser, det.txt / gt reading, clipping, results round trip, seqinfo.ini."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masa import Detections, Tracks
from masa.io import (
    InputError,
    MotResultWriter,
    SeqInfo,
    detection_frames,
    read_mot_detections,
    read_mot_rows,
    read_mot_tracks,
    read_seqinfo,
)


def _det(tmp_path, text: str):
    path = tmp_path / "det.txt"
    path.write_text(text)
    return path


def test_read_detections_basic(tmp_path):
    path = _det(
        tmp_path,
        "# comment\n"
        "1,-1,10,20,30,40,0.9,-1,-1,-1\n"
        "\n"
        "1, -1, 0, 0, 5, 5, 0.2\n"
        "3,-1,1.5,2.5,3,4,0.7\n",
    )
    dets = read_mot_detections(path)
    assert sorted(dets) == [0, 2]
    assert torch.allclose(dets[0].boxes, torch.tensor([[10.0, 20, 40, 60], [0, 0, 5, 5]]))
    assert dets[0].boxes.dtype == torch.float32
    assert torch.allclose(dets[0].scores, torch.tensor([0.9, 0.2]))
    assert dets[0].labels.tolist() == [0, 0]
    assert dets[0].data["line"].tolist() == [2, 4] and dets[0].data["line"].dtype == np.int64
    assert dets[2].data["line"].tolist() == [5]
    assert sorted(read_mot_detections(path, min_score=0.5)) == [0, 2]
    assert len(read_mot_detections(path, min_score=0.5)[0]) == 1


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("abc", r"det\.txt:3: 1 field \('abc'\); expected at least 7 numbers \(frame,id,x,y,w,h,score\)$"),
        ("2,-1,1,2,3", r"det\.txt:3: 5 fields \('2,-1,1,2,3'\); expected at least 7"),
        ("2,-1,1,nan,3,4,0.5", r"det\.txt:3: y \(column 4\) is nan; expected a finite number$"),
        ("2,-1,1,2,3,4,0.5,inf", r"det\.txt:3: class \(column 8\) is inf; expected a finite number$"),
        ("2,-1,1,x,3,4,0.5", r"det\.txt:3: y \(column 4\) is 'x'; expected a number$"),
        ("0,-1,1,2,3,4,0.5", r"det\.txt:3: frame is 0; expected an integer >= 1"),
        ("1.5,-1,1,2,3,4,0.5", r"det\.txt:3: frame is 1\.5; expected an integer >= 1"),
        ("1,-1.5,1,2,3,4,0.5", r"det\.txt:3: id is -1\.5; expected an integer$"),
    ],
)
def test_read_detections_errors(tmp_path, row, message):
    path = _det(tmp_path, f"1,-1,1,2,3,4,0.5\n\n{row}\n")
    with pytest.raises(InputError, match=message):
        read_mot_detections(path)


def test_zero_or_negative_size_rows_are_skipped(tmp_path):
    path = _det(tmp_path, "1,-1,1,2,3,4,0.5\n1,-1,1,2,0,4,0.5\n2,-1,1,2,3,-4,0.5\n")
    with pytest.warns(RuntimeWarning, match=r"skipped 2 row\(s\) with width or height <= 0 \(line 2, 3\)"):
        dets = read_mot_detections(path)
    assert sorted(dets) == [0] and len(dets[0]) == 1


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.txt"):
        read_mot_detections(tmp_path / "nothing.txt")


def test_detection_frames_and_clip(tmp_path):
    path = _det(tmp_path, "1,-1,-10,-10,30,30,0.9\n1,-1,200,10,5,5,0.8\n1,-1,50,50,100,100,0.7\n")
    dets = read_mot_detections(path)
    empty = detection_frames(dets, 5)
    assert len(empty) == 0 and "line" in empty.data  # same columns: can be concatenated
    Detections.cat([dets[0], empty])
    clipped = detection_frames(dets, 0, height=100, width=120)
    assert clipped.boxes.tolist() == [[0.0, 0.0, 20.0, 20.0], [50.0, 50.0, 120.0, 100.0]]
    assert clipped.data["line"].tolist() == [1, 3]
    assert torch.allclose(clipped.scores, torch.tensor([0.9, 0.7]))
    same = Detections(boxes=[[1, 1, 5, 5]]).clip(10, 10)
    assert same.boxes.tolist() == [[1, 1, 5, 5]]
    assert len(Detections.empty().clip(10, 10)) == 0
    kept = Detections(boxes=[[-5, 2, 5, 5], [20, 20, 30, 30]]).clip(10, 10, drop_empty=False)
    assert kept.boxes.tolist() == [[0, 2, 5, 5], [10, 10, 10, 10]]


def test_result_writer_round_trip(tmp_path):
    path = tmp_path / "out" / "deep" / "seq.txt"
    frame0 = Tracks(boxes=[[10, 20, 40, 60], [1.25, 2.5, 3.75, 5]], scores=[0.9, 0.5], ids=[0, 7])
    frame2 = Tracks(boxes=[[5, 5, 15, 25]], scores=[0.33], ids=[7])
    with MotResultWriter(path) as writer:
        writer.write(0, frame0)
        assert path.read_text().count("\n") == 2  # flushed per frame
        writer.write(1, Tracks.empty())
        writer.write(2, frame2)
    lines = path.read_text().splitlines()
    assert lines[0] == "1,1,10.00,20.00,30.00,40.00,0.9000,-1,-1,-1"
    assert lines[2].startswith("3,8,")
    tracks = read_mot_tracks(path)
    assert sorted(tracks) == [0, 2]
    assert tracks[0].ids.tolist() == [0, 7] and tracks[2].ids.tolist() == [7]
    assert torch.allclose(tracks[0].boxes, frame0.boxes, atol=0.01)
    assert torch.allclose(tracks[0].scores, frame0.scores, atol=1e-4)
    parsed = read_mot_rows(path)
    assert parsed.rows.shape == (3, 10) and parsed.rows[:, 0].tolist() == [1, 1, 3] and parsed.lines.tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="closed"):
        writer.write(3, frame2)


def test_read_mot_rows_rules(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,1,2,3,4,1,1,1\n2,1,1,2,3\n")
    with pytest.raises(InputError, match=r"gt\.txt:2: 5 fields \('2,1,1,2,3'\); expected at least 6 numbers \(frame,id,x,y,w,h\)"):
        read_mot_rows(path)
    # BOM, comments, blank lines, whitespace separators and a trailing comma; short rows padded with -1.
    path.write_bytes("\ufeff# frame,id,...\n1,1,1,2,3,4,1,1,1\n\n  2 1 1 2 3 4,\n3,-1,1,2,0,-4\n".encode())
    parsed = read_mot_rows(path)
    assert parsed.rows.shape == (3, 9) and parsed.rows[1, 6:].tolist() == [-1, -1, -1]
    assert parsed.lines.tolist() == [2, 4, 5] and parsed.source == str(path)
    assert parsed.rows[2, 4:6].tolist() == [0, -4]  # zero / negative sizes are valid syntax
    path.write_bytes(b"1,1,1,2,3,4\n\xff\xfe\n")
    with pytest.raises(InputError, match=r"gt\.txt: cannot decode as UTF-8; expected a MOTChallenge text file"):
        read_mot_rows(path)


def test_read_mot_tracks_rules(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,0,1,2,3,4\n")
    with pytest.raises(InputError, match=r"gt\.txt:1: id is 0; expected an integer >= 1"):
        read_mot_tracks(path)
    path.write_text("1,1,1,2,3,4\n1,2,1,2,3,4\n1,1,5,5,3,4\n")
    with pytest.raises(InputError, match=r"gt\.txt:3: id 1 appears twice in frame 1 \(also on line 1\); expected each track id"):
        read_mot_tracks(path)
    path.write_text("1,1,1,2,3,4\n2,1,1,2,0,4\n")
    with pytest.warns(RuntimeWarning, match=r"skipped 1 row\(s\) with width or height <= 0 \(line 2\)"):
        assert sorted(read_mot_tracks(path)) == [0]


def test_read_seqinfo(tmp_path):
    ini = tmp_path / "Seq-01" / "seqinfo.ini"
    ini.parent.mkdir()
    ini.write_text("[Sequence]\nname=Toy\nimDir=frames\nframeRate=12.5\nseqLength=4\nimWidth=12\nimHeight=10\nimExt=png\n")
    info = read_seqinfo(ini.parent)
    assert info == SeqInfo(name="Toy", im_dir="frames", im_ext=".png", frame_rate=12.5, seq_length=4, im_width=12, im_height=10)
    assert read_seqinfo(ini) == info
    assert info.to_dict() == {"name": "Toy", "imDir": "frames", "imExt": ".png", "frameRate": 12.5,
                              "seqLength": 4, "imWidth": 12, "imHeight": 10}  # fmt: skip
    # Case-insensitive keys; defaults for absent keys (name: the folder's name).
    ini.write_text("[sequence]\nSEQLENGTH = 7\nother = x\n")
    assert read_seqinfo(ini) == SeqInfo(name="Seq-01", seq_length=7)
    ini.write_text("[Sequence]\nname=Toy\nseqLength=4.5\n")
    with pytest.raises(InputError, match=r"seqinfo\.ini:3: seqLength is '4\.5'; expected a positive integer"):
        read_seqinfo(ini)
    ini.write_text("[Other]\nname=Toy\n")
    with pytest.raises(InputError, match=r"seqinfo\.ini: no \[Sequence\] section \(found \['Other'\]\); expected a MOTChallenge"):
        read_seqinfo(ini)
    ini.write_text("name=Toy\n")
    with pytest.raises(InputError, match=r"seqinfo\.ini:1: not an INI file"):
        read_seqinfo(ini)
    with pytest.raises(FileNotFoundError, match="seqinfo.ini not found"):
        read_seqinfo(tmp_path)


def test_real_tud_campus_files(tud_campus):
    info = read_seqinfo(tud_campus)
    assert (info.name, info.seq_length, info.frame_rate, info.im_width, info.im_height) == ("TUD-Campus", 71, 25.0, 640, 480)
    dets = read_mot_detections(tud_campus / "det" / "det.txt")
    assert 0 < len(dets) <= 71 and min(dets) >= 0 and max(dets) <= 70
    for d in dets.values():
        assert (d.boxes[:, 2] > d.boxes[:, 0]).all() and (d.boxes[:, 3] > d.boxes[:, 1]).all()
    first = dets[0]
    assert first.boxes[0].tolist() == pytest.approx([198, 203, 198 + 62.22, 203 + 141.19], abs=1e-3)
    assert first.data["line"][0] == 1
    gt = read_mot_tracks(tud_campus / "gt" / "gt.txt")
    assert sum(len(t) for t in gt.values()) == 359
    assert len({i for t in gt.values() for i in t.ids.tolist()}) == 8
