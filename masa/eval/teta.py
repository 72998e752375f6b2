"""TETA: Track Every Thing Accuracy (Li et al., "Tracking Every Thing in the Wild", ECCV 2022).

``TETA = (LocA + AssocA + ClsA) / 3``. Written from the paper's definition and the behaviour of
the authors' ``teta`` package (which is not on PyPI); all values are **fractions** in ``[0, 1]``.

Definition implemented here
---------------------------
Per frame, inputs are ``FrameBoxes(ids int[N], boxes float[N, 4] (x, y, w, h), classes int[N])``.

* **Local clusters.** Each gt box anchors a cluster: the predictions whose IoU with it is
  ``>= cluster_iou`` (0.5, as in the official code). A prediction that is in no cluster in a frame
  is never a false positive. A predicted *track* that is in no cluster in *any* frame is
  dropped entirely (it cannot hurt any term); a track that is in some cluster at least once is
  kept with all of its boxes (they take part in matching and in association precision).
* **Matching.** Per frame, gt boxes and the kept predictions are matched one-to-one by the
  Hungarian algorithm on ``global_alignment(gt_id, pred_id) * IoU`` (the HOTA matching score;
  the global alignment is the soft id-overlap Jaccard over the sequence). A matched pair is a
  true positive at threshold alpha when ``IoU >= alpha``.
* **LocA** (alpha = 0.00, 0.05, ..., 0.95; 20 values):
  ``TP / (TP + FN + FP)`` with TP the matched pairs, FN the unmatched gt boxes and FP the
  predictions that lie in some local cluster (IoU >= ``cluster_iou`` with some gt box) but are not
  a TP. LocA is the mean over alpha.
* **AssocA** (same 20 alphas): for every TP pair (gt id g, pred id p),
  ``TPA / (TPA + FPA + FNA)`` with TPA the number of TPs between g and p, FNA = (frames of g) - TPA
  and FPA = (frames of p, counting all its kept boxes) - TPA; AssocA_alpha is the mean over TPs
  (0 when there is no TP), AssocA the mean over alpha. This is HOTA's AssA on the clustered data.
* **ClsA** (alpha = 0.50, ..., 0.95; 10 values): only TP pairs are classified. Per class c,
  ``TPC / (TPC + FNC + FPC)`` with TPC the TPs of gt class c predicted as c, FNC the TPs of gt
  class c predicted as another class and FPC the TPs predicted as c whose gt class is another one;
  ClsA_alpha is the mean over the classes present in the ground truth, ClsA the mean over alpha.
  With ``class_agnostic=True`` (the default, and what :func:`masa.eval.evaluate_mot` uses for
  single-class MOTChallenge data) there is nothing to classify and **ClsA is 1.0 (100 %) by
  construction** for every ClsA threshold (also those without any TP, where the official formula
  would give 0), as long as something is matched at IoU >= 0.5; if nothing is, no
  classification took place and ClsA is 0 (so an empty output scores TETA 0, not 1/3).
* **Combining sequences** (:func:`combine_teta`): TP/FN/FP and class counts are summed per alpha;
  AssocA is the TP-weighted mean of the per-sequence AssocA (the official/TrackEval rule).
  Track ids are never shared between sequences.

Difference from the official code
---------------------------------
The official code counts every Hungarian assignment as a TP at alpha = 0, including pairs that do
not overlap at all (IoU 0). Here a match needs a positive overlap (IoU > 0), so zero-overlap
pairs are never TPs. Results differ only at alpha = 0.00 and only when such pairs occur.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "FrameBoxes",
    "LOC_ALPHAS",
    "CLS_ALPHAS",
    "TetaAccumulator",
    "accumulate_teta",
    "combine_teta",
    "teta_summary",
    "compute_teta",
]

LOC_ALPHAS = np.round(np.arange(20) * 0.05, 2)  # 0.00 .. 0.95 (LocA, AssocA)
CLS_ALPHAS = LOC_ALPHAS[10:]  # 0.50 .. 0.95 (ClsA)
_EPS = float(np.finfo(float).eps)


class FrameBoxes(NamedTuple):
    """Boxes of one frame: ``ids int[N]``, ``boxes float[N, 4]`` as ``(x, y, w, h)``, ``classes int[N]``
    (``None`` = all class 0)."""

    ids: Any
    boxes: Any
    classes: Any = None


@dataclass
class TetaAccumulator:
    """Summable TETA counts of one or more sequences (index = alpha index)."""

    class_agnostic: bool = True
    loc_tp: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    loc_fn: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    loc_fp: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    # Sums over TPs of the per-pair association scores (AssocA numerators; divide by loc_tp).
    assoc_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    assoc_re_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    assoc_pr_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    # class id -> float[len(CLS_ALPHAS), 3] of (TP, FN, FP); only filled when not class-agnostic.
    cls_counts: dict[int, np.ndarray] = field(default_factory=dict)
    # Classes present in the ground truth (the classes ClsA averages over).
    gt_classes: set[int] = field(default_factory=set)

    def _cls(self, c: int) -> np.ndarray:
        if c not in self.cls_counts:
            self.cls_counts[c] = np.zeros((len(CLS_ALPHAS), 3))
        return self.cls_counts[c]


def _frame_arrays(frame: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if isinstance(frame, dict):
        ids, boxes, classes = frame.get("ids"), frame.get("boxes"), frame.get("classes")
    else:
        try:
            parts = tuple(frame)
        except TypeError:
            raise ValueError(f"{where}: expected (ids, boxes[, classes]), got {type(frame).__name__}") from None
        if len(parts) not in (2, 3):
            raise ValueError(f"{where}: expected (ids, boxes[, classes]), got {len(parts)} items")
        ids, boxes = parts[0], parts[1]
        classes = parts[2] if len(parts) == 3 else None
    ids = np.asarray(ids if ids is not None else [], dtype=np.int64).reshape(-1)
    boxes = np.asarray(boxes if boxes is not None else [], dtype=float)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or boxes.shape[0] != ids.shape[0]:
        raise ValueError(f"{where}: boxes must be float[{ids.shape[0]}, 4], got shape {boxes.shape}")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{where}: non-finite box coordinates")
    if classes is None:
        classes = np.zeros(ids.shape[0], np.int64)
    else:
        classes = np.asarray(classes, dtype=np.int64).reshape(-1)
        if classes.shape[0] != ids.shape[0]:
            raise ValueError(f"{where}: {classes.shape[0]} classes for {ids.shape[0]} ids")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"{where}: duplicate ids in one frame")
    return ids, boxes, classes


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from masa.eval.mot_metrics import box_iou_xywh

    return box_iou_xywh(a, b)


def accumulate_teta(
    gt: Sequence[Any],
    pred: Sequence[Any],
    *,
    class_agnostic: bool = True,
    cluster_iou: float = 0.5,
    similarity: Sequence[np.ndarray] | None = None,
) -> TetaAccumulator:
    """TETA counts of one sequence. ``gt[t]`` / ``pred[t]`` are the boxes of frame ``t``
    (:class:`FrameBoxes` or ``(ids, boxes, classes)``); the shorter list is padded with empty
    frames. ``similarity[t]`` optionally gives the ``[num_gt_t, num_pred_t]`` IoU matrices
    (computed from the boxes otherwise). See the module docstring for the definition."""
    from scipy.optimize import linear_sum_assignment

    n_t = max(len(gt), len(pred))
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64))
    g_fr = [_frame_arrays(gt[t], f"gt frame {t}") if t < len(gt) else empty for t in range(n_t)]
    p_fr = [_frame_arrays(pred[t], f"pred frame {t}") if t < len(pred) else empty for t in range(n_t)]

    acc = TetaAccumulator(class_agnostic=class_agnostic)
    for _, _, gc in g_fr:
        acc.gt_classes.update(int(c) for c in np.unique(gc))

    if similarity is None:
        sims = [_iou_xywh(g[1], p[1]) for g, p in zip(g_fr, p_fr)]
    else:
        if len(similarity) != n_t:
            raise ValueError(f"similarity has {len(similarity)} frames, expected {n_t}")
        sims = [np.asarray(x, dtype=float).reshape(len(g[0]), len(p[0])) for x, g, p in zip(similarity, g_fr, p_fr)]
    # Predictions inside some local cluster, per frame; tracks inside a cluster at least once.
    in_cluster = [
        (s >= cluster_iou - _EPS).any(axis=0) if s.shape[0] else np.zeros(s.shape[1], bool) for s in sims
    ]
    kept_tracks = np.unique(np.concatenate([p[0][m] for p, m in zip(p_fr, in_cluster)] + [np.zeros(0, np.int64)]))
    keep = [np.isin(p[0], kept_tracks) for p in p_fr]

    gt_uniq = np.unique(np.concatenate([g[0] for g in g_fr] + [np.zeros(0, np.int64)]))
    n_gt_ids, n_tk_ids = len(gt_uniq), len(kept_tracks)
    g_ids = [np.searchsorted(gt_uniq, g[0]) for g in g_fr]
    p_ids = [np.searchsorted(kept_tracks, p[0][k]) for p, k in zip(p_fr, keep)]
    sims = [s[:, k] for s, k in zip(sims, keep)]
    in_cluster = [m[k] for m, k in zip(in_cluster, keep)]
    p_cls = [p[2][k] for p, k in zip(p_fr, keep)]

    n_alpha = len(LOC_ALPHAS)
    if n_gt_ids == 0 or n_tk_ids == 0:
        acc.loc_fn += sum(len(x) for x in g_ids)
        return acc

    # Global alignment score between ids (as in HOTA): soft id-overlap Jaccard.
    potential = np.zeros((n_gt_ids, n_tk_ids))
    gt_count = np.zeros((n_gt_ids, 1))
    tk_count = np.zeros((1, n_tk_ids))
    for gi, pi, s in zip(g_ids, p_ids, sims):
        if len(gi) and len(pi):
            denom = s.sum(0, keepdims=True) + s.sum(1, keepdims=True) - s
            soft = np.zeros_like(s)
            ok = denom > _EPS
            soft[ok] = s[ok] / denom[ok]
            potential[gi[:, None], pi[None, :]] += soft
        gt_count[gi, 0] += 1
        tk_count[0, pi] += 1
    ga = potential / np.maximum(_EPS, gt_count + tk_count - potential)

    matches = np.zeros((n_alpha, n_gt_ids, n_tk_ids))
    for t in range(n_t):
        gi, pi, s = g_ids[t], p_ids[t], sims[t]
        if len(gi) == 0:
            continue  # predictions in frames without gt are in no cluster
        if len(pi) == 0:
            acc.loc_fn += len(gi)
            continue
        score = ga[gi[:, None], pi[None, :]] * s
        rows, cols = linear_sum_assignment(-score)
        pos = score[rows, cols] > _EPS  # a match needs a positive overlap
        rows, cols = rows[pos], cols[pos]
        pair_iou = s[rows, cols]
        # ok[a, j]: pair j is a TP at alpha a.
        ok = pair_iou[None, :] >= LOC_ALPHAS[:, None] - _EPS
        n_tp = ok.sum(axis=1)
        pair_in_cluster = in_cluster[t][cols]
        acc.loc_tp += n_tp
        acc.loc_fn += len(gi) - n_tp
        # FP: predictions inside some local cluster that are not a TP at this alpha.
        acc.loc_fp += int(in_cluster[t].sum()) - (ok & pair_in_cluster[None, :]).sum(axis=1)
        a_idx, j_idx = np.nonzero(ok)
        matches[a_idx, gi[rows[j_idx]], pi[cols[j_idx]]] += 1
        if not class_agnostic:
            gcls, pcls = g_fr[t][2][rows], p_cls[t][cols]
            first = n_alpha - len(CLS_ALPHAS)
            for k in range(len(CLS_ALPHAS)):
                sel = ok[first + k]
                for gc_, pc_ in zip(gcls[sel], pcls[sel]):
                    if gc_ == pc_:
                        acc._cls(int(gc_))[k, 0] += 1
                    else:
                        acc._cls(int(gc_))[k, 1] += 1
                        acc._cls(int(pc_))[k, 2] += 1

    for a in range(n_alpha):
        m = matches[a]
        acc.assoc_sum[a] += np.sum(m * m / np.maximum(1, gt_count + tk_count - m))
        acc.assoc_re_sum[a] += np.sum(m * m / np.maximum(1, gt_count))
        acc.assoc_pr_sum[a] += np.sum(m * m / np.maximum(1, tk_count))
    return acc


def combine_teta(accs: Sequence[TetaAccumulator]) -> TetaAccumulator:
    """Sum the counts of several sequences (AssocA becomes the TP-weighted mean)."""
    accs = list(accs)
    out = TetaAccumulator(class_agnostic=all(a.class_agnostic for a in accs) if accs else True)
    for a in accs:
        out.loc_tp += a.loc_tp
        out.loc_fn += a.loc_fn
        out.loc_fp += a.loc_fp
        out.assoc_sum += a.assoc_sum
        out.assoc_re_sum += a.assoc_re_sum
        out.assoc_pr_sum += a.assoc_pr_sum
        out.gt_classes |= a.gt_classes
        for c, v in a.cls_counts.items():
            out._cls(c)[:] += v
    return out


def teta_summary(acc: TetaAccumulator) -> dict[str, Any]:
    """Final TETA values (fractions) of an accumulator.

    Keys: ``TETA, LocA, AssocA, ClsA, LocRe, LocPr, AssocRe, AssocPr`` (floats) and the curves
    ``LocA_alpha, AssocA_alpha`` (over :data:`LOC_ALPHAS`), ``ClsA_alpha`` (over
    :data:`CLS_ALPHAS`), plus ``Loc_TP, Loc_FN, Loc_FP`` (per-alpha counts) and the alpha arrays.
    """
    tp, fn, fp = acc.loc_tp, acc.loc_fn, acc.loc_fp
    loc_a = tp / np.maximum(1, tp + fn + fp)
    loc_re = tp / np.maximum(1, tp + fn)
    loc_pr = tp / np.maximum(1, tp + fp)
    assoc_a = acc.assoc_sum / np.maximum(1, tp)
    assoc_re = acc.assoc_re_sum / np.maximum(1, tp)
    assoc_pr = acc.assoc_pr_sum / np.maximum(1, tp)
    if acc.class_agnostic:
        # Nothing to classify: every TP is "correctly classified". When nothing is matched at
        # IoU >= 0.5 no classification happened at all and ClsA is 0 (the official empty-case
        # convention), so an empty output scores TETA 0, not 1/3.
        evaluated = tp[len(LOC_ALPHAS) - len(CLS_ALPHAS)] > 0
        cls_a = np.full(len(CLS_ALPHAS), 1.0 if evaluated else 0.0)
    else:
        classes = sorted(acc.gt_classes)
        if classes:
            per_cls = []
            for c in classes:
                v = acc.cls_counts.get(c, np.zeros((len(CLS_ALPHAS), 3)))
                per_cls.append(v[:, 0] / np.maximum(1, v.sum(axis=1)))
            cls_a = np.mean(per_cls, axis=0)
        else:
            cls_a = np.zeros(len(CLS_ALPHAS))
    loc, assoc, cls = float(loc_a.mean()), float(assoc_a.mean()), float(cls_a.mean())
    return {
        "TETA": (loc + assoc + cls) / 3.0,
        "LocA": loc,
        "AssocA": assoc,
        "ClsA": cls,
        "LocRe": float(loc_re.mean()),
        "LocPr": float(loc_pr.mean()),
        "AssocRe": float(assoc_re.mean()),
        "AssocPr": float(assoc_pr.mean()),
        "LocA_alpha": loc_a,
        "AssocA_alpha": assoc_a,
        "ClsA_alpha": cls_a,
        "Loc_TP": tp.astype(np.int64),
        "Loc_FN": fn.astype(np.int64),
        "Loc_FP": fp.astype(np.int64),
        "loc_alphas": LOC_ALPHAS.copy(),
        "cls_alphas": CLS_ALPHAS.copy(),
    }


def compute_teta(
    gt: Sequence[Any],
    pred: Sequence[Any],
    *,
    class_agnostic: bool = True,
    cluster_iou: float = 0.5,
) -> dict[str, Any]:
    """TETA of one sequence: ``{"TETA", "LocA", "AssocA", "ClsA", ...}`` (fractions) plus per-alpha
    arrays; see :func:`teta_summary` for all keys and the module docstring for the definition.

    ``gt[t]`` and ``pred[t]`` hold frame ``t``'s boxes as :class:`FrameBoxes`
    ``(ids int[N], boxes float[N, 4] xywh, classes int[N])``.
    """
    return teta_summary(accumulate_teta(gt, pred, class_agnostic=class_agnostic, cluster_iou=cluster_iou))
