"""HOTA / CLEAR / Identity through TrackEval: the py-motmetrics reference and synthetic cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from masa.eval import COMBINED, evaluate_mot
from masa.eval.mot_metrics import load_mot_file, preprocess_sequence, to_trackeval_data

REQUIRED_KEYS = {
    "HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN", "TP",
    "CLR_TP", "Frag", "MT", "ML", "TETA", "LocA_teta", "AssocA", "ClsA",
}  # fmt: skip


def _ref(shared_data: Path, seq: str):
    return shared_data / "mot15" / seq, shared_data / "metric-reference" / f"{seq}-tracker.txt"


@pytest.mark.data
def test_tud_campus_matches_motmetrics(shared_data: Path):
    gt, pred = _ref(shared_data, "TUD-Campus")
    r = evaluate_mot({"TUD-Campus": gt / "gt" / "gt.txt"}, {"TUD-Campus": pred})
    s = r["TUD-Campus"]
    assert REQUIRED_KEYS <= set(s)
    # py-motmetrics 1.4.0's own test pins (IoU 0.5).
    assert s["MOTA"] == pytest.approx(0.526462, abs=1e-4)
    assert s["IDF1"] == pytest.approx(0.557659, abs=1e-4)
    assert (s["FP"], s["FN"], s["IDSW"]) == (13, 150, 7)
    assert isinstance(s["FP"], int) and isinstance(s["IDSW"], int)
    assert s["MOTP"] == pytest.approx(1 - 0.277201, abs=1e-4)  # motmetrics reports the distance 1 - IoU
    for k in ("HOTA", "DetA", "AssA", "LocA", "TETA", "LocA_teta", "AssocA"):
        assert 0.0 < s[k] < 1.0
    # Class-agnostic TETA as the authors compute it: nothing is matched at IoU >= 0.95, so 9 of the 10
    # ClsA thresholds score 1 (the TETA pins are in test_eval_teta.py).
    assert s["ClsA"] == pytest.approx(0.9)
    assert s["TETA"] == pytest.approx((s["LocA_teta"] + s["AssocA"] + s["ClsA"]) / 3)
    # One sequence: COMBINED equals the sequence.
    for k in ("HOTA", "MOTA", "IDF1", "TETA", "FP"):
        assert r[COMBINED][k] == pytest.approx(s[k])


@pytest.mark.data
def test_tud_stadtmitte_matches_motmetrics_and_combines(shared_data: Path):
    seqs = ("TUD-Campus", "TUD-Stadtmitte")
    gt = {s: _ref(shared_data, s)[0] for s in seqs}  # sequence folders
    pred = {s: _ref(shared_data, s)[1] for s in seqs}
    r = evaluate_mot(gt, pred)
    s = r["TUD-Stadtmitte"]
    assert s["MOTA"] == pytest.approx(0.5640, abs=1e-3)
    assert s["IDF1"] == pytest.approx(0.6446, abs=1e-3)
    assert s["num_frames"] == 179  # seqinfo.ini
    c = r[COMBINED]
    # Counts add up; MOTA/IDF1 recomputed from the summed counts.
    for k in ("TP", "FP", "FN", "IDSW", "MT", "ML", "IDTP", "IDFP", "IDFN"):
        assert c[k] == sum(r[n][k] for n in seqs)
    assert c["MOTA"] == pytest.approx((c["TP"] - c["FP"] - c["IDSW"]) / (c["TP"] + c["FN"]))
    assert c["IDF1"] == pytest.approx(2 * c["IDTP"] / (2 * c["IDTP"] + c["IDFP"] + c["IDFN"]))
    assert min(r[n]["HOTA"] for n in seqs) <= c["HOTA"] <= max(r[n]["HOTA"] for n in seqs) + 0.02


def _synthetic_gt(n_frames=10, n_obj=3, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_obj):
        x, y = 50.0 + 120 * i, 40.0
        for f in range(1, n_frames + 1):
            rows.append([f, i + 1, x + 3 * f + rng.uniform(0, 1), y, 40, 90, 1, 1, 1])
    return np.array(rows)


def test_perfect_prediction_scores_one():
    gt = _synthetic_gt()
    pred = gt.copy()
    pred[:, 1] += 100  # different id values do not matter
    pred[:, 6:] = -1
    r = evaluate_mot({"s": gt}, {"s": pred})
    s = r["s"]
    for k in ("HOTA", "DetA", "AssA", "LocA", "MOTA", "MOTP", "IDF1", "TETA", "LocA_teta", "AssocA", "ClsA"):
        assert s[k] == pytest.approx(1.0), k
    assert (s["FP"], s["FN"], s["IDSW"]) == (0, 0, 0)


def test_empty_prediction_and_metric_subset():
    gt = _synthetic_gt()
    r = evaluate_mot({"s": gt}, {"s": None}, metrics=["clear", "TETA"])
    s = r["s"]
    assert s["FN"] == len(gt) and s["FP"] == 0 and s["MOTA"] == 0.0
    assert s["LocA_teta"] == 0.0
    assert "HOTA" not in s and "IDF1" not in s
    assert r.metrics == ("CLEAR", "TETA")


def test_argument_errors():
    gt = _synthetic_gt()
    with pytest.raises(ValueError, match="no predictions"):
        evaluate_mot({"s": gt}, {})
    with pytest.raises(ValueError, match="unknown sequence"):
        evaluate_mot({"s": gt}, {"s": gt, "t": gt})
    with pytest.raises(ValueError, match="benchmark"):
        evaluate_mot({"s": gt}, {"s": gt}, benchmark="MOT99")
    with pytest.raises(ValueError, match="metric"):
        evaluate_mot({"s": gt}, {"s": gt}, metrics=["MOTA"])


def test_mot17_preprocessing():
    # Frame 1: pedestrian 1, a static person (class 7) 2, a zero-marked pedestrian 3, a car (class 3) 4.
    gt = np.array(
        [
            [1, 1, 0, 0, 10, 20, 1, 1, 1],
            [1, 2, 100, 0, 10, 20, 1, 7, 1],
            [1, 3, 200, 0, 10, 20, 0, 1, 1],
            [1, 4, 300, 0, 10, 20, 1, 3, 1],
        ],
        dtype=float,
    )
    # Predictions on every object plus one far away.
    pred = np.array(
        [
            [1, 11, 0, 0, 10, 20, -1, -1, -1],
            [1, 12, 100, 0, 10, 20, -1, -1, -1],
            [1, 13, 200, 0, 10, 20, -1, -1, -1],
            [1, 14, 300, 0, 10, 20, -1, -1, -1],
            [1, 15, 500, 0, 10, 20, -1, -1, -1],
        ],
        dtype=float,
    )
    seq = preprocess_sequence(load_mot_file(gt), load_mot_file(pred), benchmark="MOT17")
    # Only pedestrian 1 is evaluated; the prediction on the distractor (id 12) is removed.
    assert seq.gt_ids[0].tolist() == [1]
    assert seq.pred_ids[0].tolist() == [11, 13, 14, 15]
    assert seq.removed_pred == 1 and seq.ignored_gt == 3
    data = to_trackeval_data(seq)
    assert data["num_gt_ids"] == 1 and data["num_tracker_ids"] == 4
    assert data["tracker_ids"][0].tolist() == [0, 1, 2, 3]
    assert data["similarity_scores"][0].shape == (1, 4)
    s = evaluate_mot({"s": gt}, {"s": pred}, benchmark="MOT17", metrics=["CLEAR"])["s"]
    assert (s["TP"], s["FP"], s["FN"]) == (1, 3, 0)
    # MOT15 keeps everything except the zero-marked row, and removes no prediction.
    s = evaluate_mot({"s": gt}, {"s": pred}, benchmark="MOT15", metrics=["CLEAR"])["s"]
    assert (s["TP"], s["FP"], s["FN"]) == (3, 2, 0)
    # MOT17 needs valid gt classes.
    bad = gt.copy()
    bad[0, 7] = -1
    with pytest.raises(ValueError, match="class"):
        evaluate_mot({"s": bad}, {"s": pred}, benchmark="MOT17")


def test_mot20_non_mot_vehicle_is_a_distractor():
    gt = np.array([[1, 1, 0, 0, 10, 20, 1, 1, 1], [1, 2, 100, 0, 10, 20, 1, 6, 1]], dtype=float)
    pred = np.array([[1, 11, 0, 0, 10, 20], [1, 12, 100, 0, 10, 20]], dtype=float)
    assert evaluate_mot({"s": gt}, {"s": pred}, benchmark="MOT17", metrics=["CLEAR"])["s"]["FP"] == 1
    assert evaluate_mot({"s": gt}, {"s": pred}, benchmark="MOT20", metrics=["CLEAR"])["s"]["FP"] == 0
