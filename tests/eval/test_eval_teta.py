"""TETA on hand-made sequences whose values are computed by hand in the comments."""

from __future__ import annotations

import numpy as np
import pytest

from masa.eval.teta import (
    CLS_ALPHAS,
    LOC_ALPHAS,
    FrameBoxes,
    accumulate_teta,
    combine_teta,
    compute_teta,
    teta_summary,
)

# Two well separated 10x10 gt objects (IoU 0 with each other), present in 4 frames.
A = [0.0, 0.0, 10.0, 10.0]
B = [100.0, 0.0, 10.0, 10.0]
FAR = [500.0, 500.0, 10.0, 10.0]  # overlaps no gt box


def frame(*items):
    """items: (id, box[, class]) -> FrameBoxes."""
    ids = np.array([it[0] for it in items], dtype=np.int64)
    boxes = np.array([it[1] for it in items], dtype=float).reshape(-1, 4)
    classes = np.array([it[2] if len(it) > 2 else 1 for it in items], dtype=np.int64)
    return FrameBoxes(ids, boxes, classes)


def gt_two(n=4):
    return [frame((1, A), (2, B)) for _ in range(n)]


def shifted(box, dx):
    return [box[0] + dx, box[1], box[2], box[3]]


def test_perfect_prediction_is_one():
    gt = gt_two()
    pred = [frame((7, A), (8, B)) for _ in range(4)]
    r = compute_teta(gt, pred)
    assert r["TETA"] == pytest.approx(1.0)
    assert r["LocA"] == pytest.approx(1.0)
    assert r["AssocA"] == pytest.approx(1.0)
    assert r["ClsA"] == pytest.approx(1.0)
    assert len(r["LocA_alpha"]) == 20 and len(r["AssocA_alpha"]) == 20 and len(r["ClsA_alpha"]) == 10
    np.testing.assert_allclose(LOC_ALPHAS, np.arange(20) * 0.05)
    np.testing.assert_allclose(CLS_ALPHAS, 0.5 + np.arange(10) * 0.05)


def test_identity_swap_halfway():
    # Track 7 follows A in frames 0-1 then B in frames 2-3; track 8 the opposite. All IoUs are 1.
    # Every gt box is matched (LocA = 1). Matched pairs: (A,7) x2, (A,8) x2, (B,8) x2, (B,7) x2.
    # For (A,7): TPA = 2, FNA = frames(A) - TPA = 4 - 2 = 2, FPA = frames(7) - TPA = 4 - 2 = 2
    #   -> 2 / (2 + 2 + 2) = 1/3; the same for the other three pairs.
    # AssocA = mean over the 8 TPs of 1/3 = 1/3 at every alpha.  TETA = (1 + 1/3 + 1) / 3 = 7/9.
    gt = gt_two()
    pred = [frame((7, A), (8, B))] * 2 + [frame((7, B), (8, A))] * 2
    r = compute_teta(gt, pred)
    assert r["LocA"] == pytest.approx(1.0)
    assert r["AssocA"] == pytest.approx(1 / 3)
    assert r["ClsA"] == pytest.approx(1.0)
    assert r["TETA"] == pytest.approx(7 / 9)


def test_prediction_overlapping_no_gt_is_ignored():
    gt = gt_two()
    base = compute_teta(gt, [frame((7, A), (8, B)) for _ in range(4)])
    # A new track far from every gt box, in two frames, and a track that only grazes A (IoU 1/3 < 0.5,
    # the local-cluster threshold) in frame 1: neither is in any local cluster, so nothing changes.
    graze = shifted(A, 5.0)  # inter 50, union 150 -> IoU 1/3
    pred = [
        frame((7, A), (8, B)),
        frame((7, A), (8, B), (99, FAR), (55, graze)),
        frame((7, A), (8, B), (99, FAR)),
        frame((7, A), (8, B)),
    ]
    r = compute_teta(gt, pred)
    for k in ("TETA", "LocA", "AssocA", "ClsA"):
        assert r[k] == pytest.approx(base[k])
    assert r["TETA"] == pytest.approx(1.0)
    np.testing.assert_array_equal(r["Loc_FP"], 0)


def test_false_positive_inside_a_cluster_lowers_loca():
    # One gt object A in 4 frames, predicted perfectly by track 7. In frame 0 an extra prediction
    # (track 50) is shifted by 2.5 px: intersection 7.5*10 = 75, union 200 - 75 = 125, IoU = 0.6 >= 0.5,
    # so it lies in A's local cluster. A is matched to track 7 (IoU 1, much higher alignment), track 50 is
    # unmatched -> one FP at every alpha.
    # LocA = TP / (TP + FN + FP) = 4 / (4 + 0 + 1) = 0.8 at every alpha; AssocA = 1 (pair (A,7): 4/(4+0+0));
    # TETA = (0.8 + 1 + 1) / 3 = 14/15.
    gt = [frame((1, A)) for _ in range(4)]
    pred = [frame((7, A), (50, shifted(A, 2.5)))] + [frame((7, A)) for _ in range(3)]
    r = compute_teta(gt, pred)
    np.testing.assert_array_equal(r["Loc_FP"], 1)
    assert r["LocA"] == pytest.approx(0.8)
    assert r["AssocA"] == pytest.approx(1.0)
    assert r["TETA"] == pytest.approx(14 / 15)


def test_missed_gt_lowers_loca_and_assoca():
    # A in 4 frames, track 7 covers frames 0-2 only: TP 3, FN 1, FP 0 -> LocA = 3/4.
    # Pair (A,7): TPA 3, FNA 4 - 3 = 1, FPA 3 - 3 = 0 -> 3/4, AssocA = 3/4.
    # TETA = (3/4 + 3/4 + 1) / 3 = 5/6.
    gt = [frame((1, A)) for _ in range(4)]
    pred = [frame((7, A)) for _ in range(3)] + [frame()]
    r = compute_teta(gt, pred)
    assert r["LocA"] == pytest.approx(0.75)
    assert r["AssocA"] == pytest.approx(0.75)
    assert r["TETA"] == pytest.approx(5 / 6)


def test_localisation_quality_over_alpha():
    # Track 7 is shifted by 2 px in every frame: intersection 80, union 120, IoU = 2/3.
    # TP for alpha in 0.00..0.65 (14 of the 20 thresholds); above that the pair is not a TP, the gt is a
    # FN and the prediction (IoU >= 0.5, inside the cluster) a FP: LocA_alpha = 0.
    # LocA = 14/20 = 0.7; AssocA_alpha = 1 where there are TPs, 0 where there are none -> 0.7.
    gt = [frame((1, A)) for _ in range(4)]
    pred = [frame((7, shifted(A, 2.0))) for _ in range(4)]
    r = compute_teta(gt, pred)
    expected = (LOC_ALPHAS <= 0.65 + 1e-9).astype(float)
    np.testing.assert_allclose(r["LocA_alpha"], expected)
    assert r["LocA"] == pytest.approx(0.7)
    assert r["AssocA"] == pytest.approx(0.7)
    np.testing.assert_array_equal(r["Loc_FP"], np.where(expected == 1, 0, 4))  # 4 FPs where not TP


def test_extra_boxes_of_a_kept_track_lower_assoca():
    # Track 7 matches A in all 4 frames and also has 2 boxes far away (frames 4-5, no gt there).
    # The track is kept (it is in A's cluster), so all of its 6 boxes count: pair (A,7): TPA 4, FNA 0,
    # FPA 6 - 4 = 2 -> 4/6; AssocA = 2/3. The far boxes are in no cluster, so LocA stays 1.
    gt = [frame((1, A)) for _ in range(4)] + [frame(), frame()]
    pred = [frame((7, A)) for _ in range(4)] + [frame((7, FAR)), frame((7, FAR))]
    r = compute_teta(gt, pred)
    assert r["LocA"] == pytest.approx(1.0)
    assert r["AssocA"] == pytest.approx(2 / 3)


def test_class_aware_clsa():
    # gt A is class 1, gt B class 2; both predicted as class 1 (perfect boxes).
    # Class 1: TPC 1 per frame (A), FNC 0, FPC 1 per frame (B predicted as 1) -> 4 / (4 + 0 + 4) = 0.5.
    # Class 2: TPC 0, FNC 4 (B predicted as 1), FPC 0 -> 0.  ClsA = mean(0.5, 0) = 0.25 at every alpha.
    gt = [frame((1, A, 1), (2, B, 2)) for _ in range(4)]
    pred = [frame((7, A, 1), (8, B, 1)) for _ in range(4)]
    r = compute_teta(gt, pred, class_agnostic=False)
    assert r["ClsA"] == pytest.approx(0.25)
    assert r["LocA"] == pytest.approx(1.0)
    assert compute_teta(gt, pred, class_agnostic=True)["ClsA"] == pytest.approx(1.0)
    # Correct classes -> ClsA 1.
    pred_ok = [frame((7, A, 1), (8, B, 2)) for _ in range(4)]
    assert compute_teta(gt, pred_ok, class_agnostic=False)["ClsA"] == pytest.approx(1.0)


def test_combine_sums_counts_and_weights_assoca_by_tp():
    gt = gt_two()
    perfect = accumulate_teta(gt, [frame((7, A), (8, B)) for _ in range(4)])  # 8 TPs, AssocA 1
    swap = accumulate_teta(gt, [frame((7, A), (8, B))] * 2 + [frame((7, B), (8, A))] * 2)  # 8 TPs, 1/3
    missed = accumulate_teta([frame((1, A)) for _ in range(4)], [frame((7, A)) for _ in range(3)])
    c = teta_summary(combine_teta([perfect, swap]))
    assert c["AssocA"] == pytest.approx((8 * 1 + 8 * (1 / 3)) / 16)
    c = teta_summary(combine_teta([perfect, missed]))
    # TP 8 + 3, FN 0 + 1 -> LocA 11/12
    assert c["LocA"] == pytest.approx(11 / 12)


def test_empty_inputs():
    gt = gt_two()
    r = compute_teta(gt, [frame() for _ in range(4)])
    assert r["LocA"] == 0.0 and r["AssocA"] == 0.0
    np.testing.assert_array_equal(r["Loc_FN"], 8)
    r = compute_teta([frame() for _ in range(2)], [frame((1, A))] * 2)
    assert r["LocA"] == 0.0
    np.testing.assert_array_equal(r["Loc_FP"], 0)


def test_bad_frame_input():
    with pytest.raises(ValueError, match="duplicate ids"):
        compute_teta([frame((1, A), (1, B))], [frame()])
    with pytest.raises(ValueError, match="boxes"):
        compute_teta([FrameBoxes(np.array([1]), np.zeros((1, 3)))], [frame()])


def test_class_agnostic_clsa_is_one_by_construction():
    # Only a poorly localised TP (IoU 2/3): no TP at alpha >= 0.70, yet ClsA stays 1 at every ClsA alpha.
    gt = [frame((1, A)) for _ in range(4)]
    r = compute_teta(gt, [frame((7, shifted(A, 2.0))) for _ in range(4)])
    np.testing.assert_array_equal(r["ClsA_alpha"], 1.0)
    # Nothing matched at IoU >= 0.5 (IoU 1/3 only): nothing was classified -> ClsA 0, and an empty
    # output scores TETA 0 rather than 1/3.
    r = compute_teta(gt, [frame((7, shifted(A, 5.0))) for _ in range(4)])
    assert r["ClsA"] == 0.0
    r = compute_teta(gt, [frame() for _ in range(4)])
    assert r["TETA"] == 0.0 and r["ClsA"] == 0.0
