"""Tracklets from a video's own detections (linking rules), and the periodic tracking check."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from masa.data.views import ViewConfig
from masa.modeling.build import build_predictor
from masa.structures import Detections
from masa.training.evaluate import track_eval
from masa.training.tracklets import TrackletConfig, TrackletPairDataset, link_tracklets


def _dets(boxes: list[list[float]], scores: list[float] | None = None) -> Detections:
    return Detections(boxes=torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4), scores=torch.tensor(scores or [1.0] * len(boxes)))


def test_clear_overlaps_link_and_short_or_ambiguous_ones_do_not() -> None:
    frames = {}
    for f in range(6):
        boxes = [[10 + 2 * f, 10, 50 + 2 * f, 90], [200, 10, 240, 90]]  # two well-separated objects
        if f == 3:
            boxes.append([205, 12, 245, 92])  # a near-duplicate: object 2 is ambiguous from frame 2 to 3
        frames[f] = _dets(boxes)
    t = link_tracklets(frames, TrackletConfig(score_quantile=0.0, min_length=3))
    first = {int(i) for i in t.ids[0]}
    assert len(first) == 2
    moving = int(t.ids[0][0])
    assert t.spans[moving] == (0, 5)  # the moving object is one tracklet over all frames
    assert all(moving in t.ids[f] for f in range(6))
    static = int(t.ids[0][1])
    assert t.spans[static] == (0, 2)  # cut where the duplicate made the link ambiguous


def test_low_scores_take_no_part_and_max_length_cuts() -> None:
    frames = {f: _dets([[10, 10, 50, 90], [100, 10, 140, 90]], [0.9, 0.1]) for f in range(8)}
    t = link_tracklets(frames, TrackletConfig(score_quantile=0.5, min_length=2, max_length=4))
    assert all(len(t.ids[f]) == 1 for f in t.ids)  # the low-scoring box is never used
    assert sorted(t.spans.values()) == [(0, 3), (4, 7)]


def _sequence(root: Path, frames: int = 6) -> Path:
    seq = root / "SEQ"
    (seq / "img1").mkdir(parents=True)
    (seq / "gt").mkdir()
    rows = []
    for f in range(frames):
        img = np.full((120, 160, 3), 90, np.uint8)
        for k, (x, colour) in enumerate(((10 + 3 * f, (0, 0, 255)), (100 - 2 * f, (0, 255, 0)))):
            cv2.rectangle(img, (x, 20), (x + 30, 90), colour, -1)
            rows.append(f"{f + 1},{k + 1},{x},20,31,71,1,-1,-1,-1")
        cv2.imwrite(str(seq / "img1" / f"{f + 1:06d}.jpg"), img)
    (seq / "gt" / "gt.txt").write_text("\n".join(rows) + "\n")
    (seq / "seqinfo.ini").write_text(
        f"[Sequence]\nname=SEQ\nimDir=img1\nframeRate=10\nseqLength={frames}\nimWidth=160\nimHeight=120\nimExt=.jpg\n"
    )
    return seq


def test_pairs_come_from_frames_sharing_tracklets(tmp_path: Path) -> None:
    from masa.pipeline import load_detections
    from masa.training.tracklets import frame_paths

    seq = _sequence(tmp_path)
    tracklets = link_tracklets(load_detections(seq / "gt" / "gt.txt"), TrackletConfig(score_quantile=0.0))
    ds = TrackletPairDataset(frame_paths([seq]), tracklets, ViewConfig(output_size=(96, 96), mixup=False), seed=0, max_offset=2)
    item = ds[3]
    assert "skip" not in item and set(item["key"].ids) <= set(item["ref"].ids) | set(item["key"].ids)
    assert len(np.intersect1d(item["key"].ids, item["ref"].ids)) >= 1


def test_track_eval_scores_a_sequence(tmp_path: Path) -> None:
    seq = _sequence(tmp_path)
    scores = track_eval(build_predictor("raw_efficientnet_lite0"), [seq])
    assert set(scores) == {"HOTA", "AssA", "IDF1"} and scores["IDF1"] > 90
