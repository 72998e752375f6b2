"""TETA on hand-made sequences whose values are computed by hand in the comments.

The expected values follow the authors' evaluator (SysCV/tet, teta/): see docs/eval.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from masa.eval import COMBINED, evaluate_mot
from masa.eval.common import FrameBoxes
from masa.eval.teta import CLS_ALPHAS, LOC_ALPHAS, combine_teta, compute_teta, teta_sequence, teta_summary

# Two well separated 10x10 gt objects (IoU 0 with each other).
A = [0.0, 0.0, 10.0, 10.0]
B = [100.0, 0.0, 10.0, 10.0]
FAR = [500.0, 500.0, 10.0, 10.0]  # overlaps no gt box


def frame(*items):
    """items: (id, box[, class]) -> FrameBoxes (class 1 by default)."""
    ids = np.array([it[0] for it in items], dtype=np.int64)
    boxes = np.array([it[1] for it in items], dtype=float).reshape(-1, 4)
    classes = np.array([it[2] if len(it) > 2 else 1 for it in items], dtype=np.int64)
    return FrameBoxes(ids, boxes, classes)


def gt_two(n=4):
    return [frame((1, A), (2, B)) for _ in range(n)]


def shifted(box, dx):
    return [box[0] + dx, box[1], box[2], box[3]]


def test_alphas_are_the_authors_values():
    # metrics/teta.py: np.arange(0.0, 0.99, 0.05) and np.arange(0.5, 0.99, 0.05), bit for bit.
    np.testing.assert_array_equal(LOC_ALPHAS, np.arange(0.0, 0.99, 0.05))
    assert len(LOC_ALPHAS) == 20 and len(CLS_ALPHAS) == 10 and LOC_ALPHAS[10] == 0.5
    np.testing.assert_allclose(CLS_ALPHAS, 0.5 + np.arange(10) * 0.05)


def test_perfect_prediction_is_one():
    r = compute_teta(gt_two(), [frame((7, A), (8, B)) for _ in range(4)])
    for k in ("TETA", "LocA", "AssocA", "ClsA"):
        assert r[k] == pytest.approx(1.0), k
    assert len(r["LocA_alpha"]) == 20 and len(r["AssocA_alpha"]) == 20 and len(r["ClsA_alpha"]) == 10


def test_identity_swap_halfway():
    # Track 7 follows A in frames 0-1 then B in frames 2-3; track 8 the opposite. All IoUs are 1.
    # Every gt box is matched (LocA = 1). Matched pairs: (A,7) x2, (A,8) x2, (B,8) x2, (B,7) x2.
    # For (A,7): TPA = 2, FNA = frames(A) - TPA = 4 - 2 = 2, FPA = frames(7) - TPA = 4 - 2 = 2
    #   -> 2 / (2 + 2 + 2) = 1/3; the same for the other three pairs.
    # AssocA = mean over the 8 TPs of 1/3 = 1/3 at every alpha.  TETA = (1 + 1/3 + 1) / 3 = 7/9.
    pred = [frame((7, A), (8, B))] * 2 + [frame((7, B), (8, A))] * 2
    r = compute_teta(gt_two(), pred)
    assert r["LocA"] == pytest.approx(1.0)
    assert r["AssocA"] == pytest.approx(1 / 3)
    assert r["ClsA"] == pytest.approx(1.0)
    assert r["TETA"] == pytest.approx(7 / 9)


def test_prediction_overlapping_no_gt_is_ignored_in_tao_mode():
    # A track far from every gt box, and a track that only grazes A (IoU 1/3 < 0.5, the overlap
    # threshold): neither overlaps a gt box, so nothing changes (TAO mode).
    graze = shifted(A, 5.0)  # inter 50, union 150 -> IoU 1/3
    pred = [
        frame((7, A), (8, B)),
        frame((7, A), (8, B), (99, FAR), (55, graze)),
        frame((7, A), (8, B), (99, FAR)),
        frame((7, A), (8, B)),
    ]
    r = compute_teta(gt_two(), pred)
    assert r["TETA"] == pytest.approx(1.0)
    np.testing.assert_array_equal(r["Loc_FP"], 0)


def test_false_positive_inside_a_cluster_lowers_loca():
    # One gt object A in 4 frames, predicted perfectly by track 7. In frame 0 an extra prediction
    # (track 50) is shifted by 2.5 px: intersection 7.5*10 = 75, union 200 - 75 = 125, IoU = 0.6 >= 0.5,
    # so it overlaps A. A is matched to track 7 (IoU 1, higher alignment), track 50 is unmatched -> one
    # FP at every alpha. LocA = TP / (TP + FN + FP) = 4 / (4 + 0 + 1) = 0.8 at every alpha;
    # AssocA = 1 (pair (A,7): 4/(4+0+0)); ClsA = 1; TETA = (0.8 + 1 + 1) / 3 = 14/15.
    gt = [frame((1, A)) for _ in range(4)]
    pred = [frame((7, A), (50, shifted(A, 2.5)))] + [frame((7, A)) for _ in range(3)]
    r = compute_teta(gt, pred)
    np.testing.assert_array_equal(r["Loc_FP"], 1)
    assert r["LocA"] == pytest.approx(0.8)
    assert r["AssocA"] == pytest.approx(1.0)
    assert r["TETA"] == pytest.approx(14 / 15)


def test_missed_gt_lowers_loca_and_assoca():
    # A in 4 frames, track 7 covers frames 0-2 only: TP 3, FN 1, FP 0 -> LocA = 3/4.
    # Pair (A,7): TPA 3, FNA 4 - 3 = 1, FPA 3 - 3 = 0 -> 3/4, AssocA = 3/4.  ClsA = 1 (a TP at every
    # ClsA threshold).  TETA = (3/4 + 3/4 + 1) / 3 = 5/6.
    gt = [frame((1, A)) for _ in range(4)]
    pred = [frame((7, A)) for _ in range(3)] + [frame()]
    r = compute_teta(gt, pred)
    assert r["LocA"] == pytest.approx(0.75)
    assert r["AssocA"] == pytest.approx(0.75)
    assert r["TETA"] == pytest.approx(5 / 6)


# --- the three rules in which the authors' evaluator differed from our earlier code -------------


def test_rule1_class_agnostic_clsa_is_zero_where_nothing_matches():
    # Track 7 is shifted by 2 px in every frame: intersection 8*10 = 80, union 100 + 100 - 80 = 120,
    # IoU = 2/3. It is a match at alpha 0.00..0.65 (14 of the 20 LocA thresholds) and at ClsA alpha
    # 0.50, 0.55, 0.60, 0.65 (4 of 10). ClsA_alpha = ClsTP / max(1, ClsTP + ClsFN + ClsFP) is
    # 4/4 = 1 at those 4 and 0/max(1, 0) = 0 at the other 6 -> ClsA = 4/10 = 0.4 (not 1).
    # LocA: 1 at 14 alphas; above, TP 0, FN 4, FP 4 (the box overlaps A at IoU >= 0.5) -> 0: 14/20 = 0.7.
    # AssocA: pair (A,7) 4/(4+4-4) = 1 where matched, 0 elsewhere -> 0.7.
    # TETA = (0.7 + 0.7 + 0.4) / 3 = 0.6.
    gt = [frame((1, A)) for _ in range(4)]
    r = compute_teta(gt, [frame((7, shifted(A, 2.0))) for _ in range(4)])
    np.testing.assert_array_equal(r["ClsA_alpha"], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    assert r["ClsA"] == pytest.approx(0.4)
    np.testing.assert_allclose(r["LocA_alpha"], (np.arange(20) <= 13).astype(float))
    assert r["LocA"] == pytest.approx(0.7)
    assert r["AssocA"] == pytest.approx(0.7)
    assert r["TETA"] == pytest.approx(0.6)
    np.testing.assert_array_equal(r["Loc_FP"], np.where(np.arange(20) <= 13, 0, 4))


def test_rule2_alpha_zero_keeps_hungarian_pairs_with_zero_iou():
    # gt A in frames 0 and 1. Track 7 is on A in frame 0 (IoU 1) and far away in frame 1 (IoU 0);
    # it is kept (it overlaps A once). In frame 1 the Hungarian pairs (A, 7) with similarity 0, and
    # at alpha 0 a pair counts when "IoU >= alpha - eps", i.e. always:
    #   alpha 0:     TP 2, FN 0, FP 0 -> LocA_0 = 1;   pair (A,7): 2*2/(2+2-2) / TP 2 = 1
    #   alpha >= .05: TP 1, FN 1, FP 0 (the far box overlaps nothing) -> 1/2;  (A,7): 1/(2+2-1) = 1/3
    # LocA = (1 + 19 * 1/2) / 20 = 0.525;  AssocA = (1 + 19 * 1/3) / 20 = 11/30.
    gt = [frame((1, A)), frame((1, A))]
    pred = [frame((7, A)), frame((7, FAR))]
    r = compute_teta(gt, pred)
    assert r["Loc_TP"][0] == 2 and r["Loc_TP"][1] == 1
    assert r["LocA_alpha"][0] == 1.0
    assert r["LocA"] == pytest.approx(0.525)
    assert r["AssocA"] == pytest.approx(11 / 30)
    assert r["ClsA"] == pytest.approx(1.0)


def test_rule3_frames_without_gt_are_dropped_with_their_predictions():
    # gt A in frames 0-3; frames 4 and 5 have no gt box. Track 7 is on A in frames 0-1 and far away
    # in frames 4-5; track 8 is on A in frames 2-3. Frames 4-5 are dropped (the authors' TAO loader
    # only has time steps for images with gt), so track 7 has 2 boxes, not 4:
    #   (A,7): TPA 2 / (frames(A) 4 + frames(7) 2 - 2) = 1/2;  (A,8): 2 / (4 + 2 - 2) = 1/2
    #   AssocA = 1/2 (keeping the far boxes would give (2*(2/6) + 2*(1/2)) / 4 = 5/12).
    # LocA = 1 (4 TPs), ClsA = 1, TETA = (1 + 1/2 + 1) / 3 = 5/6.
    gt = [frame((1, A)) for _ in range(4)] + [frame(), frame()]
    pred = [frame((7, A))] * 2 + [frame((8, A))] * 2 + [frame((7, FAR)), frame((7, FAR))]
    r = compute_teta(gt, pred)
    assert r["AssocA"] == pytest.approx(0.5)
    assert r["LocA"] == pytest.approx(1.0)
    assert r["TETA"] == pytest.approx(5 / 6)


# --- exhaustive mode and classes --------------------------------------------------------------


def test_exhaustive_mode_counts_unmatched_predictions_in_clsa():
    # gt A in frames 0-3, tracked perfectly by 7; track 99 far away in frames 0 and 1 (and in frame 4,
    # which has no gt and is dropped). TAO mode ignores 99: TETA 1.
    # Exhaustive (the authors' COCO / BDD evaluation): per frame, the predictions of the class that
    # do not overlap a gt box of it are ClsA false positives: 1 in frames 0 and 1 -> ClsFP = 2 at every
    # ClsA alpha; ClsA = 4 / (4 + 0 + 2) = 2/3. LocA and AssocA are unchanged (1).
    # TETA = (1 + 1 + 2/3) / 3 = 8/9.
    gt = [frame((1, A)) for _ in range(4)] + [frame()]
    pred = [frame((7, A), (99, FAR))] * 2 + [frame((7, A))] * 2 + [frame((99, FAR))]
    assert compute_teta(gt, pred)["TETA"] == pytest.approx(1.0)
    r = compute_teta(gt, pred, mode="exhaustive")
    assert r["ClsA"] == pytest.approx(2 / 3)
    np.testing.assert_array_equal(r["Cls_FP"], 2)
    assert (r["LocA"], r["AssocA"]) == (pytest.approx(1.0), pytest.approx(1.0))
    assert r["TETA"] == pytest.approx(8 / 9)


def test_class_aware_clsa_tao_and_exhaustive():
    # gt A is class 1, gt B class 2; both predicted as class 1 (perfect boxes), 4 frames.
    # TAO: class 1 (gt A): ClsTP 4, ClsFP 4 (B's match predicted as 1 is a FP of class 1) -> 4/8 = 1/2;
    #      class 2 (gt B): ClsTP 0, ClsFN 4 -> 0.  ClsA = mean(1/2, 0) = 1/4.  LocA = AssocA = 1 per class,
    #      TETA = mean over classes = (1 + 1 + 1/4) / 3 = 3/4.
    # Exhaustive: class 1 also counts, per frame, its predictions outside its overlap set
    #      ({7, 8} minus {7}: 1) -> ClsFP 4 + 4 = 8, ClsA_1 = 4/12 = 1/3; ClsA = mean(1/3, 0) = 1/6.
    gt = [frame((1, A, 1), (2, B, 2)) for _ in range(4)]
    pred = [frame((7, A, 1), (8, B, 1)) for _ in range(4)]
    r = compute_teta(gt, pred, class_aware=True)
    assert r["ClsA"] == pytest.approx(0.25)
    assert r["LocA"] == pytest.approx(1.0)
    assert r["TETA"] == pytest.approx(0.75)
    assert r["classes"] == [1, 2]
    assert r["per_class"][1]["ClsA"] == pytest.approx(0.5) and r["per_class"][2]["ClsA"] == 0.0
    assert compute_teta(gt, pred, class_aware=True, mode="exhaustive")["ClsA"] == pytest.approx(1 / 6)
    assert compute_teta(gt, pred)["ClsA"] == pytest.approx(1.0)  # class-agnostic
    pred_ok = [frame((7, A, 1), (8, B, 2)) for _ in range(4)]
    assert compute_teta(gt, pred_ok, class_aware=True)["ClsA"] == pytest.approx(1.0)


def test_combine_sums_counts_and_weights_assoca_by_tp():
    gt = gt_two()
    perfect = teta_sequence(gt, [frame((7, A), (8, B)) for _ in range(4)])  # 8 TPs, AssocA 1
    swap = teta_sequence(gt, [frame((7, A), (8, B))] * 2 + [frame((7, B), (8, A))] * 2)  # 8 TPs, 1/3
    missed = teta_sequence([frame((1, A)) for _ in range(4)], [frame((7, A)) for _ in range(3)])
    assert teta_summary(combine_teta([perfect, swap]))["AssocA"] == pytest.approx((8 * 1 + 8 * (1 / 3)) / 16)
    # TP 8 + 3, FN 0 + 1 -> LocA 11/12
    assert teta_summary(combine_teta([perfect, missed]))["LocA"] == pytest.approx(11 / 12)


def test_empty_inputs():
    r = compute_teta(gt_two(), [frame() for _ in range(4)])
    assert r["TETA"] == 0.0 and r["LocA"] == 0.0 and r["ClsA"] == 0.0
    np.testing.assert_array_equal(r["Loc_FN"], 8)
    # No gt box at all: no class is evaluated, TETA is undefined (NaN); the predictions are dropped.
    r = compute_teta([frame() for _ in range(2)], [frame((1, A))] * 2)
    assert np.isnan(r["TETA"]) and r["classes"] == []


def test_bad_frame_input():
    with pytest.raises(ValueError, match="duplicate ids"):
        compute_teta([frame((1, A), (1, B))], [frame()])
    with pytest.raises(ValueError, match="boxes"):
        compute_teta([FrameBoxes(np.array([1]), np.zeros((1, 3)))], [frame()])
    with pytest.raises(ValueError, match="TETA mode"):
        compute_teta([frame((1, A))], [frame()], mode="coco")


def test_evaluate_mot_teta_options():
    # The class column (8) is read with class_aware=True; MOT15 otherwise ignores it.
    gt = np.array([[f, 1, *A, 1, 1, -1] for f in (1, 2, 3, 4)] + [[f, 2, *B, 1, 2, -1] for f in (1, 2, 3, 4)], float)
    pred = gt.copy()
    pred[:, 1] += 10
    pred[:, 7] = 1  # B predicted as class 1
    r = evaluate_mot({"s": gt}, {"s": pred}, metrics=["TETA"])
    assert r["s"]["ClsA"] == pytest.approx(1.0) and (r.teta_mode, r.class_aware) == ("tao", False)
    r = evaluate_mot({"s": gt}, {"s": pred}, metrics=["TETA"], class_aware=True)
    assert r["s"]["ClsA"] == pytest.approx(0.25) and r[COMBINED]["ClsA"] == pytest.approx(0.25)
    r = evaluate_mot({"s": gt}, {"s": pred}, metrics=["TETA"], class_aware=True, teta_mode="exhaustive")
    assert r["s"]["ClsA"] == pytest.approx(1 / 6)
    with pytest.raises(ValueError, match="TETA mode"):
        evaluate_mot({"s": gt}, {"s": pred}, teta_mode="bdd")


# --- the pinned reference: the authors' evaluator on TUD-Campus ----------------------------------


@pytest.mark.data
def test_tud_campus_pins_the_authors_evaluator(shared_data: Path):
    # SysCV/tet teta/ (TAO mode, one class) on metric-reference/TUD-Campus-tracker.txt vs TUD-Campus gt:
    # TETA 56.971, LocA 43.407, AssocA 37.507, ClsA 90.0 (nothing is matched at IoU >= 0.95: 9 of the
    # 10 ClsA thresholds score 1). Exhaustive mode (run_coco.py): TETA 51.032, ClsA 72.183.
    gt = shared_data / "mot15" / "TUD-Campus"
    pred = shared_data / "metric-reference" / "TUD-Campus-tracker.txt"
    s = evaluate_mot({"TUD-Campus": gt}, {"TUD-Campus": pred}, metrics=["TETA"])["TUD-Campus"]
    assert 100 * s["TETA"] == pytest.approx(56.971, abs=1e-3)
    assert 100 * s["LocA_teta"] == pytest.approx(43.407, abs=1e-3)
    assert 100 * s["AssocA"] == pytest.approx(37.507, abs=1e-3)
    assert 100 * s["ClsA"] == pytest.approx(90.0, abs=1e-3)
    s = evaluate_mot({"TUD-Campus": gt}, {"TUD-Campus": pred}, metrics=["TETA"], teta_mode="exhaustive")["TUD-Campus"]
    assert 100 * s["TETA"] == pytest.approx(51.032, abs=1e-3)
    assert 100 * s["ClsA"] == pytest.approx(72.183, abs=1e-3)
    assert 100 * s["LocA_teta"] == pytest.approx(43.407, abs=1e-3)
