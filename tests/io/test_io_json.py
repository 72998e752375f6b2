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
        ({"image_id": 1, "bbox": [1, 2]}, r"detections\.json record 1: bbox must be 4 numbers \[x, y, w, h\], got \[1, 2\]"),
        ({"bbox": [1, 2, 3, 4]}, r"record 1: missing \"image_id\" or \"frame\""),
        ({"image_id": 0, "bbox": [1, 2, 3, 4]}, r"record 1: image_id must be an integer >= 1"),
        ({"frame": "2", "bbox": [1, 2, 3, 4]}, r"record 1: frame must be an integer >= 1"),
        ({"image_id": 1, "bbox": [1, 2, 3, 4], "score": "high"}, r"record 1: score must be a finite number"),
        ({"image_id": 1}, r"record 1: missing \"bbox\""),
        ([1, 2, 3], r"record 1: expected an object"),
    ],
)
def test_read_json_detections_errors(tmp_path, record, message):
    path = _write(tmp_path, [{"image_id": 1, "bbox": [1, 2, 3, 4]}, record])
    with pytest.raises(InputError, match=message):
        read_json_detections(path)


def test_invalid_json_and_missing(tmp_path):
    path = tmp_path / "detections.json"
    path.write_text('[\n{"image_id": 1,\n "bbox": [1, 2, 3, 4]]')
    with pytest.raises(InputError, match=r"detections\.json line 3 column \d+: invalid JSON"):
        read_json_detections(path)
    path.write_text('{"foo": 1}')
    with pytest.raises(InputError, match="expected a list of records"):
        read_json_detections(path)
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_json_detections(tmp_path / "nope.json")


def test_zero_size_records_are_skipped(tmp_path):
    path = _write(tmp_path, [{"image_id": 1, "bbox": [1, 2, 3, 4]}, {"image_id": 1, "bbox": [1, 2, 0, 4]}])
    with pytest.warns(RuntimeWarning, match=r"skipped 1 record"):
        dets = read_json_detections(path)
    assert len(dets[0]) == 1


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
    with pytest.warns(RuntimeWarning, match="not closed"):
        assert len(read_json_records(path)) == 1
    writer.close()
    assert len(json.loads(path.read_text())) == 1
