"""JSON detections input and streamed JSON results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from masa import Detections, Tracks
from masa.io import InputError, JsonResultWriter, read_json_detections, read_json_records, write_json_detections


def _write(tmp_path, content, name="detections.json"):
    path = tmp_path / name
    path.write_text(json.dumps(content))
    return path


def test_read_json_detections_list_and_object(tmp_path):
    records = [
        {"image_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9, "category_id": 2, "note": "a"},
        {"frame": 3, "bbox": [0, 0, 5, 5]},
        {"image_id": 1, "bbox": [1, 1, 2, 2], "score": 0.4, "extra": [1, 2]},
    ]
    for content in (records, {"detections": records}):
        dets = read_json_detections(_write(tmp_path, content))
        assert sorted(dets) == [0, 2]
        assert torch.allclose(dets[0].boxes, torch.tensor([[10.0, 20, 40, 60], [1, 1, 3, 3]]))
        assert dets[0].labels.tolist() == [2, 0]
        assert dets[2].scores.tolist() == [1.0] and dets[2].labels.tolist() == [0]
        assert dets[0].data["note"] == ["a", None] and dets[0].data["extra"] == [None, [1, 2]]
        assert dets[0].data["record"].tolist() == [0, 2] and dets[2].data["record"].tolist() == [1]
        Detections.cat(list(dets.values()))  # same columns in every frame


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ({"image_id": 1, "bbox": [1, 2]}, r"bbox is \[1, 2\]; expected 4 finite numbers \[x, y, w, h\] \(pixels\)$"),
        ({"image_id": 1, "bbox": [1, 2, 3, float("nan")]}, r"bbox is \[1, 2, 3, nan\]; expected 4 finite"),
        ({"bbox": [1, 2, 3, 4]}, r'image_id is None \(the record has neither "image_id" nor "frame"\); expected an integer >= 1'),
        ({"image_id": 0, "bbox": [1, 2, 3, 4]}, r"image_id is 0; expected an integer >= 1 \(the 1-based frame number\)$"),
        ({"frame": "2", "bbox": [1, 2, 3, 4]}, r"frame is '2'; expected an integer >= 1"),
        ({"image_id": True, "bbox": [1, 2, 3, 4]}, r"image_id is True; expected an integer >= 1"),
        ({"image_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}, r"score is 'high'; expected a finite number$"),
        ({"image_id": 1, "bbox": [1, 2, 3, 4], "category_id": 1.5}, r"category_id is 1\.5; expected an integer$"),
        ({"image_id": 1}, r'bbox is None \(the record has no "bbox"\); expected 4 finite numbers'),
        ([1, 2, 3], r'record is \[1, 2, 3\]; expected an object with "image_id" and "bbox"$'),
    ],
)
def test_read_json_detections_errors(tmp_path, record, message):
    # one record per line after the "[": the second record starts on line 3
    path = tmp_path / "detections.json"
    path.write_text("[\n" + json.dumps({"image_id": 1, "bbox": [1, 2, 3, 4]}) + ",\n" + json.dumps(record) + "\n]\n")
    with pytest.raises(InputError, match=message) as info:
        read_json_detections(path)
    assert info.value.source == str(path) and info.value.line == 3 and str(info.value).startswith(f"{path}:3: ")


def test_error_line_is_where_the_record_starts(tmp_path):
    records = [{"image_id": 1, "bbox": [1, 2, 3, 4]}, {"image_id": 2, "bbox": [1, 2, 3, 4]}, {"image_id": 2, "bbox": "x"}]
    path = tmp_path / "detections.json"
    # indent=2: each record spans 9 lines; the third one's "{" is on line 31
    path.write_text(json.dumps({"info": {"lists": [[1], [2]]}, "detections": records}, indent=2))
    with pytest.raises(InputError, match=r"detections\.json:31: bbox is 'x'"):
        read_json_detections(path)


def test_invalid_json_and_missing(tmp_path):
    path = tmp_path / "detections.json"
    path.write_text('[\n{"image_id": 1,\n "bbox": [1, 2, 3, 4]]')
    with pytest.raises(InputError, match=r"invalid JSON: Expecting ',' delimiter \(column \d+\); expected a JSON list"):
        read_json_detections(path)
    path.write_text("")
    with pytest.raises(InputError, match=r"detections\.json:1: invalid JSON: Expecting value"):
        read_json_detections(path)
    path.write_text('\n{"foo": 1, "detections": 3}')
    with pytest.raises(InputError) as info:
        read_json_detections(path)
    assert str(info.value) == (
        f"{path}:2: the file holds an object with keys ['detections', 'foo']; "
        'expected a JSON list of records {"image_id", "bbox", ...}, or an object with a "detections" or "annotations" list'
    )
    path.write_text("3")
    with pytest.raises(InputError, match=r"detections\.json:1: the file holds a number \(3\); expected a JSON list of records"):
        read_json_detections(path)
    path.write_bytes(b"[\xff]")
    with pytest.raises(InputError, match=r"detections\.json: cannot decode as UTF-8"):
        read_json_detections(path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_json_detections(tmp_path / "nope.json")


def test_object_with_annotations(tmp_path):
    ann = [{"image_id": 2, "bbox": [1, 2, 3, 4]}]
    path = _write(tmp_path, {"images": [{"id": 2}], "annotations": ann})
    assert sorted(read_json_detections(path)) == [1]
    # "detections" wins over "annotations"; a key given twice counts with its last value (as json.loads)
    path.write_text('{"annotations": [], "detections": [], "detections": [{"image_id": 3, "bbox": [1, 2, 3, 4]}]}')
    assert sorted(read_json_detections(path)) == [2]


def test_zero_size_records_are_skipped(tmp_path):
    path = tmp_path / "detections.json"
    records = [{"image_id": 1, "bbox": [1, 2, 3, 4]}, {"image_id": 1, "bbox": [1, 2, 0, 4]}, {"image_id": 2, "bbox": [1, 2, 3, -1]}]
    path.write_text("[\n" + ",\n".join(map(json.dumps, records)) + "\n]\n")
    with pytest.warns(RuntimeWarning, match=r"detections\.json: skipped 2 record\(s\) with width or height <= 0 \(line 3, 4\)$"):
        dets = read_json_detections(path)
    assert sorted(dets) == [0] and len(dets[0]) == 1 and dets[0].data["record"].tolist() == [0]


def test_json_detections_round_trip(tmp_path):
    dets = {
        0: Detections(
            boxes=[[10, 20, 40, 60], [1, 1, 3, 3]],
            scores=[0.9, 0.4],
            labels=[2, 0],
            data={"note": ["a", None], "weight": np.array([1.5, 2.5]), "line": np.array([4, 5])},
        ),
        4: Detections(
            boxes=[[0, 0, 5, 5]], scores=[1.0], labels=[1], data={"note": ["b"], "weight": np.array([3.0]), "line": np.array([9])}
        ),
    }
    path = tmp_path / "out" / "dets.json"
    assert write_json_detections(path, dets) == 3
    back = read_json_detections(path)
    assert sorted(back) == [0, 4]
    for index in dets:
        assert torch.allclose(back[index].boxes, dets[index].boxes)
        assert torch.allclose(back[index].scores, dets[index].scores)
        assert back[index].labels.tolist() == dets[index].labels.tolist()
        assert back[index].data["note"] == dets[index].data["note"]
        assert back[index].data["weight"] == dets[index].data["weight"].tolist()
        assert "line" not in back[index].data


def test_json_result_writer_valid_after_exception(tmp_path):
    path = tmp_path / "res" / "tracks.json"
    tracks = Tracks(boxes=[[10, 20, 40, 60]], scores=[0.75], labels=[3], ids=[4], data={"line": np.array([17])})
    with pytest.raises(RuntimeError, match="boom"):
        with JsonResultWriter(path, video_id=2, video_name="cam") as writer:
            writer.write(0, tracks)
            writer.write(1, Tracks.empty())
            writer.write(5, tracks)
            raise RuntimeError("boom")
    records = json.loads(path.read_text())
    assert len(records) == 2
    assert records[0] == {
        "video_id": 2,
        "video_name": "cam",
        "image_id": 1,
        "track_id": 5,
        "bbox": [10.0, 20.0, 30.0, 40.0],
        "score": 0.75,
        "category_id": 3,
        "line": 17,
    }
    assert records[1]["image_id"] == 6
    # the results can be read back as detections (pass-through keys kept)
    dets = read_json_detections(path)
    assert sorted(dets) == [0, 5] and dets[5].data["track_id"] == [5]


def test_truncated_results_are_still_readable(tmp_path):
    path = tmp_path / "tracks.json"
    writer = JsonResultWriter(path)
    writer.write(0, Tracks(boxes=[[1, 1, 4, 4]], ids=[0]))
    # simulate a killed process: the file is flushed but never closed
    text = path.read_text()
    assert text.startswith("[") and not text.rstrip().endswith("]")
    with pytest.warns(RuntimeWarning, match="not closed") as caught:
        assert len(read_json_records(path)) == 1
    assert len(caught) == 1
    with pytest.warns(RuntimeWarning, match=r"tracks\.json: the JSON list is not closed .*; read 1 complete records"):
        dets = read_json_detections(path)
    assert dets[0].data["track_id"] == [1] and dets[0].data["record"].tolist() == [0]
    writer.write(1, Tracks(boxes=[[1, 1, 4, 4]], ids=[0]))
    path.write_text(path.read_text() + ",\n")  # killed between two records
    with pytest.warns(RuntimeWarning, match="read 2 complete records"):
        assert sorted(read_json_detections(path)) == [0, 1]
    path.write_text(path.read_text() + '{"image_id": 3, "bb')  # killed inside a record: not repaired
    with pytest.raises(InputError, match=r"tracks\.json:4: invalid JSON"):
        read_json_detections(path)
    path.write_text("[")  # killed before the first record
    with pytest.warns(RuntimeWarning, match="read 0 complete records"):
        assert read_json_detections(path) == {}
    path.write_text('[\n{"image_id": 1, "bbox": [1, 2, 3, 4]}\n{"image_id": 2}')  # a missing comma is a syntax error
    with pytest.raises(InputError, match=r"tracks\.json:3: invalid JSON: Expecting ',' delimiter"):
        read_json_detections(path)
    writer = JsonResultWriter(path)
    writer.write(0, Tracks(boxes=[[1, 1, 4, 4]], ids=[0]))
    writer.close()
    assert len(json.loads(path.read_text())) == 1
