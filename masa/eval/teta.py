"""TETA: Track Every Thing Accuracy (Li et al., "Tracking Every Thing in the Wild", ECCV 2022).

``TETA = (LocA + AssocA + ClsA) / 3``, computed as the authors' evaluator computes it (SysCV/tet,
folder ``teta/``; this is our own code, the comments name the function each step follows).
``docs/eval.md`` describes the definition, the two modes and the pinned reference values.

* ``mode="tao"`` (default) is the authors' TAO evaluation (``scripts/run_tao.py``:
  ``datasets/tao.py`` + ``TETA(exhaustive=False)``); ``mode="exhaustive"`` is their COCO / BDD100K
  evaluation (``scripts/run_coco.py``: ``datasets/coco.py`` + ``TETA(exhaustive=True)``), in which
  predictions of a class that overlap no gt box of that class are false positives of ClsA.
* Classes are integers. Class-agnostic evaluation is the case where every gt box and every
  prediction has the same class (``compute_teta(..., class_aware=False)`` and
  :func:`masa.eval.evaluate_mot` do that).

Frames are lists indexed by time step; each frame is a :class:`~masa.eval.common.FrameBoxes`
``(ids int[N], boxes float[N, 4] (x, y, w, h), classes int[N])``. All values are fractions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from masa.eval.common import FrameBoxes
from masa.ops.boxes import box_iou_xywh_np

__all__ = [
    "CLS_ALPHAS",
    "LOC_ALPHAS",
    "TETA_MODES",
    "TetaCounts",
    "combine_teta",
    "compute_teta",
    "teta_sequence",
    "teta_summary",
]

# metrics/teta.py TETA.__init__: array_labels / cls_array_labels (the same float values, which
# differ from round(k * 0.05, 2) in the last bit for some k).
LOC_ALPHAS = np.arange(0.0, 0.99, 0.05)  # 0.00 .. 0.95: LocA, AssocA
CLS_ALPHAS = np.arange(0.5, 0.99, 0.05)  # 0.50 .. 0.95: ClsA
_FIRST_CLS = len(LOC_ALPHAS) - len(CLS_ALPHAS)  # LOC_ALPHAS[10] == 0.5 ("a - 10" in the authors' code)
TETA_MODES = ("tao", "exhaustive")
_EPS = float(np.finfo(float).eps)
# datasets/tao.py get_preprocessed_seq_data_thr: overlap_ious_thr (and thr / 100 in the metric).
_OVERLAP_IOU = 0.5


@dataclass
class TetaCounts:
    """Summable TETA counts of one class, over one or several sequences (index = alpha index).

    ``loc_*`` are over :data:`LOC_ALPHAS`, ``cls_*`` over :data:`CLS_ALPHAS`; ``assoc_*_sum`` are the
    sums over true positives of the per-pair association scores (AssocA = ``assoc_sum / max(1, loc_tp)``,
    which makes the authors' TP-weighted mean over sequences a plain sum).
    """

    loc_tp: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    loc_fn: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    loc_fp: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    assoc_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    assoc_re_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    assoc_pr_sum: np.ndarray = field(default_factory=lambda: np.zeros(len(LOC_ALPHAS)))
    cls_tp: np.ndarray = field(default_factory=lambda: np.zeros(len(CLS_ALPHAS)))
    cls_fn: np.ndarray = field(default_factory=lambda: np.zeros(len(CLS_ALPHAS)))
    cls_fp: np.ndarray = field(default_factory=lambda: np.zeros(len(CLS_ALPHAS)))

    def __iadd__(self, other: TetaCounts) -> TetaCounts:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        return self

    @property
    def is_empty(self) -> bool:
        """No gt box, no TP and no FP at any alpha (metrics/teta.py ``check_empty``): left out of the class mean."""
        return not (self.loc_tp + self.loc_fn + self.loc_fp > _EPS).any()


# ---------------------------------------------------------------------------------------------
# input frames
# ---------------------------------------------------------------------------------------------


def _frame_arrays(frame: Any, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids int64[N], boxes float64[N, 4], classes int64[N])`` of one frame, validated."""
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


@dataclass
class _Frames:
    """The time steps the authors evaluate: only frames with at least one gt box."""

    gt_ids: list[np.ndarray]
    gt_cls: list[np.ndarray]
    pr_ids: list[np.ndarray]
    pr_cls: list[np.ndarray]
    sim: list[np.ndarray]  # [num_gt_t, num_pred_t] IoU


def _load_frames(gt: Sequence[Any], pred: Sequence[Any], similarity: Sequence[np.ndarray] | None) -> _Frames:
    n_t = max(len(gt), len(pred))
    if similarity is not None and len(similarity) != n_t:
        raise ValueError(f"similarity has {len(similarity)} frames, expected {n_t}")
    empty = (np.zeros(0, np.int64), np.zeros((0, 4)), np.zeros(0, np.int64))
    out = _Frames([], [], [], [], [])
    for t in range(n_t):
        g_ids, g_boxes, g_cls = _frame_arrays(gt[t], f"gt frame {t}") if t < len(gt) else empty
        p_ids, p_boxes, p_cls = _frame_arrays(pred[t], f"pred frame {t}") if t < len(pred) else empty
        # datasets/tao.py TAO._load_raw_file: time steps are the images that have gt annotations
        # (_compute_image_to_timestep_mappings); "tracker data ... on images without any ground
        # truth info ... are ignored". A frame without gt boxes is dropped with its predictions.
        if len(g_ids) == 0:
            continue
        if similarity is None:
            sim = box_iou_xywh_np(g_boxes, p_boxes)
        else:
            sim = np.asarray(similarity[t], dtype=float).reshape(len(g_ids), len(p_ids))
        out.gt_ids.append(g_ids)
        out.gt_cls.append(g_cls)
        out.pr_ids.append(p_ids)
        out.pr_cls.append(p_cls)
        out.sim.append(sim)
    return out


# ---------------------------------------------------------------------------------------------
# preprocessing of one class (datasets/tao.py, datasets/coco.py get_preprocessed_seq_data_thr)
# ---------------------------------------------------------------------------------------------


@dataclass
class _ClassData:
    gt_ids: list[np.ndarray]  # relabelled 0..num_gt_ids-1, gt of this class
    gt_orig: list[np.ndarray]  # their original ids
    tk_ids: list[np.ndarray]  # relabelled 0..num_tk_ids-1, kept predictions (any class)
    tk_cls: list[np.ndarray]  # classes of the kept predictions
    tk_orig: list[np.ndarray]  # original ids of the kept predictions
    in_overlap: list[np.ndarray]  # bool per kept prediction: in tk_overlap_ids
    num_overlap: list[int]  # len(tk_overlap_ids[t])
    num_cls_eval: list[int]  # len(tk_class_eval_tk_ids[t])
    sim: list[np.ndarray]  # [gt of this class, kept predictions]
    num_gt_ids: int
    num_tk_ids: int

    @property
    def num_gt_dets(self) -> int:
        return int(sum(len(g) for g in self.gt_ids))

    @property
    def num_tk_overlap_dets(self) -> int:
        return int(sum(self.num_overlap))

    @property
    def num_tk_cls_dets(self) -> int:
        return int(sum(self.num_cls_eval))


def _preprocess(
    frames: _Frames, cls: int | None, assignment: list[dict[int, int]] | None, exhaustive: bool
) -> _ClassData:
    """The per-class data of get_preprocessed_seq_data_thr (``cls=None`` is the authors' ``"all"``).

    Kept predictions (for matching and association) are all boxes, of any class, of the tracks that
    overlap (IoU >= 0.5) a gt box of this class at least once; ``tk_overlap_ids`` are the boxes that
    overlap one in their frame, except the tracks the class-agnostic assignment gave to a gt box of
    another class. In exhaustive mode (datasets/coco.py) ``tk_exh_ids`` are all predictions of this
    class, and ``tk_class_eval_tk_ids`` the union of both.
    """
    n_t = len(frames.gt_ids)
    gt_masks, overlap_masks = [], []
    loc_and_asso: set[int] = set()
    for t in range(n_t):
        g_mask = np.ones(len(frames.gt_ids[t]), bool) if cls is None else frames.gt_cls[t] == cls
        overlap = (frames.sim[t][g_mask] >= _OVERLAP_IOU).any(axis=0)
        if assignment:
            # tk_ids_out: tracks assigned (class-agnostic) to a gt box not of this class.
            inside = set(frames.gt_ids[t][g_mask].tolist())
            out_tracks = [tk for g, tk in assignment[t].items() if g not in inside]
            overlap &= ~np.isin(frames.pr_ids[t], out_tracks)
        gt_masks.append(g_mask)
        overlap_masks.append(overlap)
        loc_and_asso.update(frames.pr_ids[t][overlap].tolist())
    kept_ids = np.array(sorted(loc_and_asso), dtype=np.int64)
    gt_all = [frames.gt_ids[t][gt_masks[t]] for t in range(n_t)]
    gt_uniq = np.unique(np.concatenate([np.zeros(0, np.int64), *gt_all]))
    data = _ClassData([], [], [], [], [], [], [], [], [], len(gt_uniq), len(kept_ids))
    for t in range(n_t):
        kept = np.isin(frames.pr_ids[t], kept_ids)
        data.gt_ids.append(np.searchsorted(gt_uniq, gt_all[t]))
        data.gt_orig.append(gt_all[t])
        data.tk_ids.append(np.searchsorted(kept_ids, frames.pr_ids[t][kept]))
        data.tk_cls.append(frames.pr_cls[t][kept])
        data.tk_orig.append(frames.pr_ids[t][kept])
        data.in_overlap.append(overlap_masks[t][kept])
        data.num_overlap.append(int(overlap_masks[t].sum()))
        cls_eval = overlap_masks[t] | (frames.pr_cls[t] == cls) if exhaustive and cls is not None else overlap_masks[t]
        data.num_cls_eval.append(int(cls_eval.sum()))
        data.sim.append(frames.sim[t][gt_masks[t]][:, kept])
    return data


# ---------------------------------------------------------------------------------------------
# the metric (metrics/teta.py TETA)
# ---------------------------------------------------------------------------------------------


def _global_alignment(data: _ClassData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TETA.compute_global_alignment_score: the soft id-overlap Jaccard between gt and track ids."""
    potential = np.zeros((data.num_gt_ids, data.num_tk_ids))
    gt_count = np.zeros((data.num_gt_ids, 1))
    tk_count = np.zeros((1, data.num_tk_ids))
    for g, k, sim in zip(data.gt_ids, data.tk_ids, data.sim):
        denom = sim.sum(0, keepdims=True) + sim.sum(1, keepdims=True) - sim
        soft = np.zeros_like(sim)
        ok = denom > _EPS
        soft[ok] = sim[ok] / denom[ok]
        potential[g[:, None], k[None, :]] += soft
        gt_count[g] += 1
        tk_count[0, k] += 1
    return potential / (gt_count + tk_count - potential), gt_count, tk_count


def _hungarian(ga: np.ndarray, g: np.ndarray, k: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """TETA.compute_matches: one assignment on ``global alignment * IoU`` (thresholded per alpha by the caller)."""
    rows, cols = linear_sum_assignment(-(ga[g[:, None], k[None, :]] * sim))
    return rows, cols


def _global_assignment(data: _ClassData) -> list[dict[int, int]]:
    """TETA.compute_global_assignment (alpha 0.5): per frame, original gt id -> original track id."""
    out: list[dict[int, int]] = [{} for _ in data.gt_ids]
    if data.num_tk_overlap_dets == 0 or data.num_gt_dets == 0:
        return out
    ga, _, _ = _global_alignment(data)
    for t, (g, k, sim) in enumerate(zip(data.gt_ids, data.tk_ids, data.sim)):
        rows, cols = _hungarian(ga, g, k, sim)
        ok = sim[rows, cols] >= 0.5 - _EPS
        out[t] = dict(zip(data.gt_orig[t][rows[ok]].tolist(), data.tk_orig[t][cols[ok]].tolist()))
    return out


def _eval_class(
    data: _ClassData, cls: int, classes: Sequence[int], cls_fp: dict[int, np.ndarray], exhaustive: bool
) -> TetaCounts:
    """TETA.eval_sequence_single_thr for one class; adds ClsA false positives of any class to ``cls_fp``."""
    res = TetaCounts()
    if data.num_tk_overlap_dets == 0 or data.num_gt_dets == 0:
        res.loc_fn[:] = data.num_gt_dets
        if exhaustive:
            # The authors assign (not add): earlier wrong-class false positives of this class in
            # this sequence are replaced.
            cls_fp[cls] = np.full(len(CLS_ALPHAS), float(data.num_tk_cls_dets))
        return res
    ga, gt_count, tk_count = _global_alignment(data)
    n_alpha = len(LOC_ALPHAS)
    matches = np.zeros((n_alpha, data.num_gt_ids, data.num_tk_ids))
    class_index = {c: i for i, c in enumerate(classes)}
    for t, (g, k, sim) in enumerate(zip(data.gt_ids, data.tk_ids, data.sim)):
        if len(g) == 0:
            if exhaustive:
                cls_fp[cls] += data.num_cls_eval[t]
            continue
        rows, cols = _hungarian(ga, g, k, sim)
        if exhaustive:
            cls_fp[cls] += data.num_cls_eval[t] - data.num_overlap[t]
        # ok[a, j]: Hungarian pair j is a match at alpha a ("sim >= a - EPS": at alpha 0 every
        # pair is one, also pairs whose IoU is 0).
        ok = sim[rows, cols][None, :] >= LOC_ALPHAS[:, None] - _EPS
        n_match = ok.sum(axis=1)
        res.loc_tp += n_match
        res.loc_fn += len(g) - n_match
        # Loc_FP: overlapping predictions (tk_overlap_ids) that are not matched at this alpha.
        res.loc_fp += data.num_overlap[t] - (ok & data.in_overlap[t][cols][None, :]).sum(axis=1)
        a_idx, j_idx = np.nonzero(ok)
        np.add.at(matches, (a_idx, g[rows[j_idx]], k[cols[j_idx]]), 1)
        # ClsA at alpha >= 0.5: a match predicted as this class is a Cls TP, otherwise a Cls FN of
        # this class and a Cls FP of the predicted class (if that class is evaluated).
        ok_cls = ok[_FIRST_CLS:]
        pred_cls = data.tk_cls[t][cols]
        right = pred_cls == cls
        res.cls_tp += (ok_cls & right[None, :]).sum(axis=1)
        res.cls_fn += (ok_cls & ~right[None, :]).sum(axis=1)
        for j in np.flatnonzero(~right):
            if int(pred_cls[j]) in class_index:
                cls_fp[int(pred_cls[j])] += ok_cls[:, j]
    # TETA.compute_association_scores
    for a in range(n_alpha):
        m = matches[a]
        res.assoc_sum[a] = np.sum(m * m / np.maximum(1, gt_count + tk_count - m))
        res.assoc_re_sum[a] = np.sum(m * m / np.maximum(1, gt_count))
        res.assoc_pr_sum[a] = np.sum(m * m / np.maximum(1, tk_count))
    return res


def teta_sequence(
    gt: Sequence[Any],
    pred: Sequence[Any],
    *,
    classes: Sequence[int] | None = None,
    mode: str = "tao",
    similarity: Sequence[np.ndarray] | None = None,
) -> dict[int, TetaCounts]:
    """TETA counts of one sequence, per evaluated class (eval.py ``eval_sequence``).

    ``gt[t]`` / ``pred[t]``: the boxes of time step ``t`` (:class:`~masa.eval.common.FrameBoxes`);
    the shorter list is padded with empty frames. ``classes``: the evaluated classes (the authors use
    the classes that have gt in *any* evaluated sequence, which matters in exhaustive mode; default:
    this sequence's gt classes). ``similarity[t]``: optional ``[num_gt_t, num_pred_t]`` IoU matrices
    (computed from the boxes otherwise). Combine sequences with :func:`combine_teta`, summarise with
    :func:`teta_summary`.
    """
    if mode not in TETA_MODES:
        raise ValueError(f"unknown TETA mode {mode!r}; expected one of {', '.join(TETA_MODES)}")
    exhaustive = mode == "exhaustive"
    frames = _load_frames(gt, pred, similarity)
    if classes is None:
        classes = sorted({int(c) for cs in frames.gt_cls for c in cs.tolist()})
    classes = [int(c) for c in classes]
    # eval.py eval_sequence: the class-agnostic ("all") assignment at IoU 0.5, used to take the
    # tracks matched to a gt box of another class out of each class's overlap set.
    all_data = _preprocess(frames, None, None, exhaustive)
    assignment = _global_assignment(all_data)
    cls_fp = {c: np.zeros(len(CLS_ALPHAS)) for c in classes}
    out: dict[int, TetaCounts] = {}
    for c in classes:
        out[c] = _eval_class(_preprocess(frames, c, assignment, exhaustive), c, classes, cls_fp, exhaustive)
    for c in classes:
        out[c].cls_fp += cls_fp[c]  # eval.py eval_sequence: "Cls_FP += cls_fp[thr][cls]"
    return out


def combine_teta(per_sequence: Iterable[Mapping[int, TetaCounts]]) -> dict[int, TetaCounts]:
    """Sum the counts of several sequences per class (TETA.combine_sequences: counts summed, AssocA
    TP-weighted). Track ids of different sequences are different tracks."""
    out: dict[int, TetaCounts] = {}
    for seq in per_sequence:
        for c, counts in seq.items():
            out.setdefault(c, TetaCounts())
            out[c] += counts
    return dict(sorted(out.items()))


def _final_fields(c: TetaCounts) -> dict[str, Any]:
    """TETA._compute_final_fields of one class: per-alpha arrays (LocA, AssocA, ...) and ClsA scalars."""
    loc_a = c.loc_tp / np.maximum(1, c.loc_tp + c.loc_fn + c.loc_fp)
    assoc_a = c.assoc_sum / np.maximum(1, c.loc_tp)
    cls_a = c.cls_tp / np.maximum(1, c.cls_tp + c.cls_fn + c.cls_fp)
    return {
        "LocA": loc_a,
        "LocRe": c.loc_tp / np.maximum(1, c.loc_tp + c.loc_fn),
        "LocPr": c.loc_tp / np.maximum(1, c.loc_tp + c.loc_fp),
        "AssocA": assoc_a,
        "AssocRe": c.assoc_re_sum / np.maximum(1, c.loc_tp),
        "AssocPr": c.assoc_pr_sum / np.maximum(1, c.loc_tp),
        "ClsA": cls_a,  # per ClsA alpha; the authors' ClsA is its mean
        "ClsRe": c.cls_tp / np.maximum(1, c.cls_tp + c.cls_fn),
        "ClsPr": c.cls_tp / np.maximum(1, c.cls_tp + c.cls_fp),
    }


_SUMMARY_KEYS = ("LocA", "LocRe", "LocPr", "AssocA", "AssocRe", "AssocPr", "ClsA", "ClsRe", "ClsPr")


def teta_summary(per_class: Mapping[int, TetaCounts]) -> dict[str, Any]:
    """Final TETA values: the mean over the non-empty classes (TETA.combine_classes_class_averaged
    with ``ignore_empty=True``) of each class's values, each the mean over its alphas.

    Keys: ``TETA, LocA, AssocA, ClsA, LocRe, LocPr, AssocRe, AssocPr, ClsRe, ClsPr`` (floats, NaN
    when no class has a gt box), the class-averaged curves ``LocA_alpha, AssocA_alpha`` (over
    :data:`LOC_ALPHAS`) and ``ClsA_alpha`` (over :data:`CLS_ALPHAS`), the summed counts
    ``Loc_TP, Loc_FN, Loc_FP, Cls_TP, Cls_FN, Cls_FP`` (int arrays), ``classes`` (the classes
    averaged) and ``per_class`` (``{class: {"TETA", "LocA", "AssocA", "ClsA"}}``).
    """
    used = {c: counts for c, counts in per_class.items() if not counts.is_empty}
    finals = {c: _final_fields(counts) for c, counts in used.items()}
    out: dict[str, Any] = {}
    for key in _SUMMARY_KEYS:
        n = len(CLS_ALPHAS) if key.startswith("Cls") else len(LOC_ALPHAS)
        curve = np.mean([f[key] for f in finals.values()], axis=0) if finals else np.full(n, np.nan)
        out[key] = float(np.mean(curve))
        if key in ("LocA", "AssocA", "ClsA"):
            out[f"{key}_alpha"] = curve
    out["TETA"] = (out["LocA"] + out["AssocA"] + out["ClsA"]) / 3.0
    total = TetaCounts()
    for counts in used.values():
        total += counts
    for key, values in (("Loc_TP", total.loc_tp), ("Loc_FN", total.loc_fn), ("Loc_FP", total.loc_fp),
                        ("Cls_TP", total.cls_tp), ("Cls_FN", total.cls_fn), ("Cls_FP", total.cls_fp)):  # fmt: skip
        out[key] = np.rint(values).astype(np.int64)
    out["classes"] = sorted(used)
    out["per_class"] = {}
    for c, f in finals.items():
        loc, assoc, cls = float(np.mean(f["LocA"])), float(np.mean(f["AssocA"])), float(np.mean(f["ClsA"]))
        out["per_class"][c] = {"TETA": (loc + assoc + cls) / 3.0, "LocA": loc, "AssocA": assoc, "ClsA": cls}
    return out


def compute_teta(
    gt: Sequence[Any],
    pred: Sequence[Any],
    *,
    class_aware: bool = False,
    mode: str = "tao",
    similarity: Sequence[np.ndarray] | None = None,
) -> dict[str, Any]:
    """TETA of one sequence (see :func:`teta_summary` for the keys).

    ``gt[t]`` and ``pred[t]`` hold time step ``t``'s boxes as :class:`~masa.eval.common.FrameBoxes`
    ``(ids int[N], boxes float[N, 4] xywh, classes int[N])``. ``class_aware=False`` (default) gives
    every box the same class; ``mode`` is ``"tao"`` or ``"exhaustive"``.
    """
    if not class_aware:
        gt = [FrameBoxes(*_frame_arrays(f, f"gt frame {t}")[:2]) for t, f in enumerate(gt)]
        pred = [FrameBoxes(*_frame_arrays(f, f"pred frame {t}")[:2]) for t, f in enumerate(pred)]
    return teta_summary(teta_sequence(gt, pred, mode=mode, similarity=similarity))
