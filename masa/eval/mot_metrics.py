"""MOTChallenge evaluation: HOTA, CLEAR (MOTA, ...), Identity (IDF1, ...) and TETA.

HOTA / CLEAR / Identity come from TrackEval's own metric classes (``trackeval.metrics.HOTA``,
``CLEAR``, ``Identity``; PyPI ``trackeval`` 1.3.0): this module reads the files through
:mod:`masa.io` (the parser ``masa track`` uses), applies TrackEval's MOTChallenge preprocessing
(``MotChallenge2DBox.get_preprocessed_seq_data``) and builds the per-sequence dict those classes
consume. TETA comes from :mod:`masa.eval.teta`. ``docs/eval.md`` describes every metric, the
preprocessing and the reference values the tests pin.

Inputs: MOTChallenge text files (``gt.txt``, results such as ``tracks.txt``), the JSON results
:class:`masa.io.JsonResultWriter` writes (``tracks.json``), or arrays ``[K, >=6]`` of rows
``frame, id, x, y, w, h, conf, class, visibility`` (frames 1-based, boxes ``x, y, w, h``).
Ratios in a summary are **fractions** (MOTA may be negative); counts are ``int``.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from masa.eval.common import COMBINED, METRIC_FAMILIES, EvalResult, FrameBoxes
from masa.eval.teta import TETA_MODES, combine_teta, teta_sequence, teta_summary
from masa.io.errors import InputError, short_number
from masa.io.json_io import read_json_tracks
from masa.io.mot import MotRows, check_mot_rows, check_unique_ids, read_mot_rows, read_seqinfo
from masa.ops.boxes import box_iou_xywh_np

__all__ = [
    "BENCHMARKS",
    "MAX_FRAME",
    "SequenceData",
    "evaluate_mot",
    "load_mot_file",
    "preprocess_sequence",
    "to_trackeval_data",
]

BENCHMARKS = ("MOT15", "MOT16", "MOT17", "MOT20")

# MOTChallenge gt class numbers (MOT16/17/20).
PEDESTRIAN = 1
DISTRACTOR_CLASSES = (2, 7, 8, 12)  # person_on_vehicle, static_person, distractor, reflection
MOT20_EXTRA_DISTRACTORS = (6,)  # non_mot_vehicle
VALID_GT_CLASSES = tuple(range(1, 14))

_EPS = float(np.finfo(float).eps)

# Column layout of the rows load_mot_file returns.
COL_FRAME, COL_ID, COL_X, COL_Y, COL_W, COL_H, COL_CONF, COL_CLASS, COL_VIS = range(9)
_NUM_COLS = 9
_DEFAULTS = {COL_CONF: 1.0, COL_CLASS: -1.0, COL_VIS: -1.0}
#: Largest accepted frame number: evaluation keeps per-frame lists, so a typo such as frame
#: 99999999 would allocate millions of empty frames.
MAX_FRAME = 1_000_000

Source = str | os.PathLike | np.ndarray | None


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _to_nine_columns(parsed: MotRows) -> MotRows:
    rows = parsed.rows
    out = np.empty((rows.shape[0], _NUM_COLS))
    n = min(rows.shape[1], _NUM_COLS)
    out[:, :n] = rows[:, :n]
    for c in range(n, _NUM_COLS):
        out[:, c] = _DEFAULTS[c]
    return MotRows(out, parsed.lines, parsed.source)


def load_mot_file(source: Source, *, name: str | None = None) -> MotRows:
    """Load ground truth or tracker output as :class:`~masa.io.mot.MotRows` with ``rows float64[K, 9]``.

    ``source``: a MOTChallenge text file (parsed by :func:`masa.io.mot.read_mot_rows`), a ``.json``
    results file (:func:`masa.io.json_io.read_json_tracks`: ``category_id`` becomes the class
    column), an array ``[K, >=6]``, or ``None`` (no rows). Columns: ``frame, id, x, y, w, h, conf,
    class, visibility``; missing trailing columns get ``conf=1, class=-1, visibility=-1``.
    ``name`` labels an array in error messages (``<array name>:<row>: ...``).

    Rules beyond the parser's: an id at most once per frame, frame <= :data:`MAX_FRAME`. Rows with
    ``w <= 0`` or ``h <= 0`` are kept (IoU 0 with everything, as in TrackEval) with a warning.
    Raises :class:`~masa.io.errors.InputError` (a ``ValueError``) ``<file>:<line>: ...`` and
    ``FileNotFoundError`` for a missing file.
    """
    if source is None:
        return MotRows(np.zeros((0, _NUM_COLS)), np.zeros(0, np.int64), f"<{name or 'empty'}>")
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            raise InputError.at(path, None, "is a folder", "a MOTChallenge .txt or a JSON results file")
        parsed = read_json_tracks(path) if path.suffix.lower() == ".json" else read_mot_rows(path)
    else:
        parsed = check_mot_rows(np.asarray(source, dtype=float), source=f"<array {name}>" if name else "<array>")
    parsed = _to_nine_columns(parsed)
    check_unique_ids(parsed)
    frames = parsed.rows[:, COL_FRAME]
    too_late = np.flatnonzero(frames > MAX_FRAME)
    if too_late.size:
        i = int(too_late[0])
        raise InputError.at(parsed.source, parsed.lines[i], f"frame is {short_number(frames[i])}", f"a frame number <= {MAX_FRAME:,}")
    no_area = (parsed.rows[:, COL_W] <= 0) | (parsed.rows[:, COL_H] <= 0)
    if no_area.any():
        shown = ", ".join(map(str, parsed.lines[no_area][:5].tolist())) + (", ..." if no_area.sum() > 5 else "")
        warnings.warn(
            f"{parsed.source}: {int(no_area.sum())} row(s) with width or height <= 0 (line {shown}) overlap nothing (IoU 0)",
            RuntimeWarning,
            stacklevel=2,
        )
    return parsed


def _class_column(parsed: MotRows, what: str) -> np.ndarray:
    """Column 8 as integer class ids (``--class-aware``), or an error naming the first non-integer row."""
    classes = parsed.rows[:, COL_CLASS]
    bad = np.flatnonzero(classes != np.round(classes))
    if bad.size:
        i = int(bad[0])
        raise InputError.at(
            parsed.source,
            parsed.lines[i],
            f"class (column 8) is {short_number(classes[i])}",
            f"an integer {what} class id for class-aware TETA (MOT15 gt keeps world coordinates there)",
        )
    return classes.astype(np.int64)


# --------------------------------------------------------------------------------------------
# Preprocessing
# --------------------------------------------------------------------------------------------


@dataclass
class SequenceData:
    """One preprocessed sequence: per-frame (index ``t`` = frame ``t + 1``) arrays.

    Ids are the original ids (not yet relabelled); boxes ``float[N, 4]`` are ``x, y, w, h``;
    classes are ``int64`` (all 0 unless class-aware); ``similarity[t]`` is the
    ``[num_gt_t, num_pred_t]`` IoU matrix.
    """

    name: str
    num_frames: int
    gt_ids: list[np.ndarray]
    gt_boxes: list[np.ndarray]
    gt_classes: list[np.ndarray]
    pred_ids: list[np.ndarray]
    pred_boxes: list[np.ndarray]
    pred_classes: list[np.ndarray]
    similarity: list[np.ndarray]
    removed_pred: int = 0  # predictions removed as matches to distractor gt boxes
    ignored_gt: int = 0  # gt rows not evaluated (zero-marked / non-pedestrian)

    @property
    def num_gt_dets(self) -> int:
        return int(sum(len(x) for x in self.gt_ids))

    @property
    def num_pred_dets(self) -> int:
        return int(sum(len(x) for x in self.pred_ids))

    def gt_frames(self) -> list[FrameBoxes]:
        return [FrameBoxes(i, b, c) for i, b, c in zip(self.gt_ids, self.gt_boxes, self.gt_classes)]

    def pred_frames(self) -> list[FrameBoxes]:
        return [FrameBoxes(i, b, c) for i, b, c in zip(self.pred_ids, self.pred_boxes, self.pred_classes)]


def _normalise_benchmark(benchmark: str) -> str:
    b = str(benchmark).upper()
    if b not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; expected one of {', '.join(BENCHMARKS)}")
    return b


def _split_by_frame(values: np.ndarray, frames: np.ndarray, num_frames: int) -> list[np.ndarray]:
    order = np.argsort(frames, kind="stable")
    values, frames = values[order], frames[order]
    bounds = np.searchsorted(frames, np.arange(num_frames + 1))
    return [values[bounds[t] : bounds[t + 1]] for t in range(num_frames)]


def _as_rows(rows: MotRows | np.ndarray, label: str) -> MotRows:
    if isinstance(rows, MotRows):
        return _to_nine_columns(rows)
    return _to_nine_columns(check_mot_rows(np.asarray(rows, dtype=float), source=label))


def preprocess_sequence(
    gt_rows: MotRows | np.ndarray,
    pred_rows: MotRows | np.ndarray,
    *,
    benchmark: str = "MOT15",
    num_frames: int | None = None,
    name: str = "seq",
    class_aware: bool = False,
) -> SequenceData:
    """Apply TrackEval's MOTChallenge preprocessing to loaded rows (see ``docs/eval.md``).

    * ``MOT15``: every gt row counts except rows whose ``conf`` flag (truncated to an integer) is
      0; nothing is removed from the predictions.
    * ``MOT16/17/20``: per frame, predictions matched (Hungarian on IoU, IoU >= 0.5) to a distractor
      gt box (classes 2, 7, 8, 12; MOT20 also 6) are removed; then only gt rows of class 1
      (pedestrian) with a non-zero ``conf`` flag are kept.

    ``num_frames``: at least this many frames (e.g. ``seqLength``). ``class_aware``: gt and
    prediction classes are column 8 (integers; else every class is 0).
    """
    benchmark = _normalise_benchmark(benchmark)
    gt = _as_rows(gt_rows, f"<gt array {name}>")
    pred = _as_rows(pred_rows, f"<pred array {name}>")
    t_max = int(max([0, num_frames or 0] + [int(r.rows[:, COL_FRAME].max()) for r in (gt, pred) if len(r.rows)]))

    mot15 = benchmark == "MOT15"
    if not mot15 and len(gt.rows):
        invalid = np.flatnonzero(~np.isin(gt.rows[:, COL_CLASS], VALID_GT_CLASSES))
        if invalid.size:
            i = int(invalid[0])
            raise InputError.at(
                gt.source, gt.lines[i], f"class (column 8) is {short_number(gt.rows[i, COL_CLASS])}", f"a {benchmark} gt class 1..13"
            )
    distractors = DISTRACTOR_CLASSES + (MOT20_EXTRA_DISTRACTORS if benchmark == "MOT20" else ())
    gt_cls_all = _class_column(gt, "gt") if class_aware else np.zeros(len(gt.rows), np.int64)
    pred_cls_all = _class_column(pred, "predicted") if class_aware else np.zeros(len(pred.rows), np.int64)

    gt_frames = gt.rows[:, COL_FRAME].astype(np.int64) - 1
    pred_frames = pred.rows[:, COL_FRAME].astype(np.int64) - 1
    gt_by_t = _split_by_frame(np.column_stack([gt.rows, gt_cls_all]), gt_frames, t_max)
    pred_by_t = _split_by_frame(np.column_stack([pred.rows, pred_cls_all]), pred_frames, t_max)
    out = SequenceData(name, t_max, [], [], [], [], [], [], [])
    for g, p in zip(gt_by_t, pred_by_t):
        sim = box_iou_xywh_np(g[:, COL_X : COL_H + 1], p[:, COL_X : COL_H + 1])
        keep_pred = np.ones(len(p), dtype=bool)
        if not mot15 and len(g) and len(p):
            scores = sim.copy()
            scores[scores < 0.5 - _EPS] = 0
            rows_i, cols_i = linear_sum_assignment(-scores)
            ok = scores[rows_i, cols_i] > _EPS
            rows_i, cols_i = rows_i[ok], cols_i[ok]
            is_distractor = np.isin(g[rows_i, COL_CLASS].astype(int), distractors)
            keep_pred[cols_i[is_distractor]] = False
        zero_marked = np.trunc(g[:, COL_CONF]) == 0
        keep_gt = ~zero_marked if mot15 else ~zero_marked & (g[:, COL_CLASS].astype(int) == PEDESTRIAN)
        out.removed_pred += int((~keep_pred).sum())
        out.ignored_gt += int((~keep_gt).sum())
        g, p = g[keep_gt], p[keep_pred]
        out.gt_ids.append(g[:, COL_ID].astype(np.int64))
        out.gt_boxes.append(g[:, COL_X : COL_H + 1].copy())
        out.gt_classes.append(g[:, _NUM_COLS].astype(np.int64))
        out.pred_ids.append(p[:, COL_ID].astype(np.int64))
        out.pred_boxes.append(p[:, COL_X : COL_H + 1].copy())
        out.pred_classes.append(p[:, _NUM_COLS].astype(np.int64))
        out.similarity.append(sim[keep_gt][:, keep_pred])
    return out


def _relabel(ids_per_t: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    non_empty = [x for x in ids_per_t if len(x)]
    if not non_empty:
        return [np.zeros(0, np.int64) for _ in ids_per_t], 0
    uniq = np.unique(np.concatenate(non_empty))
    return [np.searchsorted(uniq, x).astype(np.int64) for x in ids_per_t], int(len(uniq))


def to_trackeval_data(seq: SequenceData) -> dict[str, Any]:
    """The dict ``trackeval.metrics.*.eval_sequence`` expects (ids relabelled to ``0..n-1``)."""
    gt_ids, n_gt = _relabel(seq.gt_ids)
    tr_ids, n_tr = _relabel(seq.pred_ids)
    return {
        "num_timesteps": seq.num_frames,
        "num_gt_ids": n_gt,
        "num_tracker_ids": n_tr,
        "num_gt_dets": seq.num_gt_dets,
        "num_tracker_dets": seq.num_pred_dets,
        "gt_ids": gt_ids,
        "tracker_ids": tr_ids,
        "gt_dets": seq.gt_boxes,
        "tracker_dets": seq.pred_boxes,
        "tracker_confidences": [np.ones(len(x)) for x in seq.pred_ids],
        "similarity_scores": seq.similarity,
        "seq": seq.name,
    }


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------

# Summary keys per family: (our key, trackeval field).
_HOTA_KEYS = [("HOTA", "HOTA"), ("DetA", "DetA"), ("AssA", "AssA"), ("LocA", "LocA"), ("DetRe", "DetRe"),
              ("DetPr", "DetPr"), ("AssRe", "AssRe"), ("AssPr", "AssPr"), ("OWTA", "OWTA")]  # fmt: skip
_HOTA_SCALARS = [("HOTA(0)", "HOTA(0)"), ("LocA(0)", "LocA(0)")]
_CLEAR_FLOATS = [("MOTA", "MOTA"), ("MOTP", "MOTP"), ("MODA", "MODA"), ("sMOTA", "sMOTA"), ("Recall", "CLR_Re"),
                 ("Precision", "CLR_Pr"), ("MTR", "MTR"), ("PTR", "PTR"), ("MLR", "MLR")]  # fmt: skip
_CLEAR_INTS = [("TP", "CLR_TP"), ("CLR_TP", "CLR_TP"), ("FP", "CLR_FP"), ("FN", "CLR_FN"), ("IDSW", "IDSW"),
               ("Frag", "Frag"), ("MT", "MT"), ("PT", "PT"), ("ML", "ML")]  # fmt: skip
_ID_FLOATS = [("IDF1", "IDF1"), ("IDP", "IDP"), ("IDR", "IDR")]
_ID_INTS = [("IDTP", "IDTP"), ("IDFP", "IDFP"), ("IDFN", "IDFN")]
# TETA summary keys: (our key, teta_summary key); LocA is "LocA_teta" (HOTA has a LocA too).
_TETA_KEYS = [("TETA", "TETA"), ("LocA_teta", "LocA"), ("AssocA", "AssocA"), ("ClsA", "ClsA"), ("LocRe", "LocRe"),
              ("LocPr", "LocPr"), ("AssocRe", "AssocRe"), ("AssocPr", "AssocPr"), ("ClsRe", "ClsRe"), ("ClsPr", "ClsPr")]  # fmt: skip


def _normalise_metrics(metrics: Iterable[str] | str) -> tuple[str, ...]:
    if isinstance(metrics, str):
        metrics = [metrics]
    lookup = {m.lower(): m for m in METRIC_FAMILIES}
    out: list[str] = []
    for m in metrics:
        key = str(m).lower()
        if key not in lookup:
            raise ValueError(f"unknown metric {m!r}; expected any of {', '.join(METRIC_FAMILIES)}")
        if lookup[key] not in out:
            out.append(lookup[key])
    if not out:
        raise ValueError("no metrics requested")
    return tuple(m for m in METRIC_FAMILIES if m in out)


def _summarise(family: str, res: Mapping[str, Any], summary: dict[str, float | int], curves: dict[str, list[float]]) -> None:
    if family == "HOTA":
        for key, f in _HOTA_KEYS:
            summary[key] = float(np.mean(res[f]))  # mean over TrackEval's 19 alphas
        for key, f in _HOTA_SCALARS:
            summary[key] = float(res[f])
        curves.update({k: [float(v) for v in np.asarray(res[f]).ravel()] for k, f in _HOTA_KEYS[:4]})
    elif family == "CLEAR":
        summary.update({key: float(res[f]) for key, f in _CLEAR_FLOATS})
        summary.update({key: int(round(float(res[f]))) for key, f in _CLEAR_INTS})
    elif family == "Identity":
        summary.update({key: float(res[f]) for key, f in _ID_FLOATS})
        summary.update({key: int(round(float(res[f]))) for key, f in _ID_INTS})


def _teta_into(summary: dict[str, float | int], curves: dict[str, list[float]], ts: Mapping[str, Any]) -> None:
    summary.update({key: float(ts[f]) for key, f in _TETA_KEYS})
    for key in ("LocA", "AssocA", "ClsA"):
        curves[f"TETA_{key}"] = [float(v) for v in ts[f"{key}_alpha"]]


def _as_source(src: Any) -> Source:
    if src is None or isinstance(src, (np.ndarray, str, os.PathLike)):
        return src
    return np.asarray(src, dtype=float)


@dataclass
class _Length:
    """The number of frames of a sequence and where it comes from (for error messages)."""

    frames: int | None
    origin: str  # e.g. "from seqLength in data/TUD-Campus/seqinfo.ini", "from num_frames['s']"


def _seqinfo_folder(src: Source) -> Path | None:
    """The sequence folder of a gt source: the folder itself, or ``<seq>`` for ``<seq>/gt/gt.txt``
    next to ``<seq>/seqinfo.ini``; ``None`` for other files and arrays."""
    if not isinstance(src, (str, os.PathLike)):
        return None
    path = Path(src)
    if path.is_dir():
        return path
    if path.name == "gt.txt" and path.parent.name == "gt" and (path.parent.parent / "seqinfo.ini").is_file():
        return path.parent.parent
    return None


def _gt_file(src: Source, frames_hint: int | None, name: str) -> tuple[Source, _Length]:
    """A sequence folder -> its ``gt/gt.txt``; and the sequence length (the rule is in ``docs/eval.md``).

    ``num_frames`` given -> that; else ``seqLength`` of ``seqinfo.ini`` for a sequence folder or a
    ``<seq>/gt/gt.txt`` beside one; else ``None`` (the last gt frame, set by :func:`_check_frames`).
    """
    folder = _seqinfo_folder(src)
    gt = src
    if folder is not None and Path(src).is_dir():
        gt = folder / "gt" / "gt.txt"
        if not gt.is_file():
            raise FileNotFoundError(f"{folder} is a folder without gt/gt.txt")
    if frames_hint is not None:
        if isinstance(frames_hint, bool) or not isinstance(frames_hint, (int, np.integer)) or frames_hint < 1:
            raise ValueError(f"num_frames[{name!r}] is {frames_hint!r}; expected a positive integer")
        return gt, _Length(int(frames_hint), f"from num_frames[{name!r}]")
    if folder is not None and (folder / "seqinfo.ini").is_file():
        length = read_seqinfo(folder).seq_length
        if length is not None:
            return gt, _Length(int(length), f"from seqLength in {folder / 'seqinfo.ini'}")
    return gt, _Length(None, "")


def _first(parsed: MotRows, mask: np.ndarray) -> int:
    """The index of the row with the smallest line number among ``mask``."""
    rows = np.flatnonzero(mask)
    return int(rows[np.argmin(parsed.lines[rows])])


def _check_frames(gt: MotRows, pred: MotRows, length: _Length, *, allow_extra_frames: bool) -> tuple[MotRows, int]:
    """Refuse inputs that do not describe the same sequence; returns the predictions to score and
    the sequence length.

    * gt without rows: nothing to score;
    * gt rows beyond a given length (``seqLength`` / ``num_frames``);
    * prediction rows beyond the length (the last gt frame when none is given): an error, or, with
      ``allow_extra_frames``, dropped with a warning.
    """
    if not len(gt.rows):
        raise InputError.at(
            gt.source, None, "no ground-truth rows: nothing to score", "at least one row frame,id,x,y,w,h,conf,class,visibility"
        )
    gt_frames = gt.rows[:, COL_FRAME]
    if length.frames is None:
        length = _Length(int(gt_frames.max()), f"from the last frame of {gt.source}")
    else:
        late = gt_frames > length.frames
        if late.any():
            i = _first(gt, late)
            raise InputError.at(
                gt.source,
                int(gt.lines[i]),
                f"frame {short_number(gt_frames[i])} is past the end of the sequence ({length.frames} frames, "
                f"{length.origin}; {int(late.sum())} gt row(s) are past it)",
                f"gt frames 1..{length.frames}",
            )
    n = length.frames
    late = pred.rows[:, COL_FRAME] > n
    if late.any():
        i, count = _first(pred, late), int(late.sum())
        line, frame = int(pred.lines[i]), short_number(pred.rows[i, COL_FRAME])
        if not allow_extra_frames:
            raise InputError.at(
                pred.source,
                line,
                f"frame {frame} is past the end of the sequence ({n} frames, {length.origin}; {count} prediction row(s) are past it)",
                f"frames 1..{n} (--allow-extra-frames / allow_extra_frames=True drops such rows)",
            )
        warnings.warn(
            f"{pred.source}: dropped {count} prediction row(s) past the end of the sequence "
            f"({n} frames, {length.origin}), the first on line {line}",
            RuntimeWarning,
            stacklevel=3,
        )
        keep = ~late
        pred = MotRows(pred.rows[keep], pred.lines[keep], pred.source)
    return pred, n


def evaluate_mot(
    gt: Mapping[str, str | os.PathLike | np.ndarray],
    pred: Mapping[str, str | os.PathLike | np.ndarray | None],
    *,
    benchmark: str = "MOT15",
    metrics: Iterable[str] = METRIC_FAMILIES,
    num_frames: Mapping[str, int | None] | None = None,
    teta_mode: str = "tao",
    class_aware: bool = False,
    allow_extra_frames: bool = False,
) -> EvalResult:
    """Score tracker output against MOTChallenge ground truth.

    Args:
        gt: sequence name -> gt file (``gt.txt``), MOTChallenge sequence folder (its
            ``gt/gt.txt`` is used, and ``seqinfo.ini``'s ``seqLength`` when present), or an array
            ``[N, >=6]`` of rows ``frame, id, x, y, w, h, conf, class, visibility`` (1-based frames).
            A gt without rows is an error (nothing to score).
        pred: sequence name -> results file (MOTChallenge ``.txt`` or ``masa track``'s ``.json``) or
            array (same row layout; conf ignored). ``None`` or an empty array scores the sequence as
            "no predictions". Every gt sequence needs an entry; entries for unknown sequences are an error.
        benchmark: ``"MOT15"`` (default; every gt row with a non-zero conf flag counts) or
            ``"MOT16"/"MOT17"/"MOT20"`` (pedestrian-only evaluation with distractor removal).
        metrics: any of ``"HOTA", "CLEAR", "Identity", "TETA"`` (case-insensitive).
        num_frames: optional sequence name -> number of frames. Otherwise the length is
            ``seqLength`` of ``seqinfo.ini`` for a sequence folder (or a ``<seq>/gt/gt.txt`` beside
            ``<seq>/seqinfo.ini``), else the last gt frame. gt rows past a given length are an error.
        teta_mode: ``"tao"`` (default; the authors' TAO evaluation) or ``"exhaustive"`` (their
            COCO / BDD100K evaluation: unmatched predictions of a class count against ClsA).
        class_aware: TETA per class, with classes from column 8 of gt and results (``category_id``
            of JSON results); default: one class (class-agnostic).
        allow_extra_frames: drop prediction rows on frames past the sequence length, with a
            ``RuntimeWarning`` naming how many and the first line (default: an error).

    Returns:
        :class:`~masa.eval.common.EvalResult` with per-sequence and ``"COMBINED"`` summaries.

    Raises:
        :class:`~masa.io.errors.InputError` (a ValueError) ``<file>:<line>: ...`` for malformed
        files, an empty gt, gt or predictions past the sequence length; ValueError for bad arguments, FileNotFoundError for missing files.
    """
    benchmark = _normalise_benchmark(benchmark)
    families = _normalise_metrics(metrics)
    if teta_mode not in TETA_MODES:
        raise ValueError(f"unknown TETA mode {teta_mode!r}; expected one of {', '.join(TETA_MODES)}")
    if not gt:
        raise ValueError("no ground-truth sequences given")
    missing = [s for s in gt if s not in pred]
    if missing:
        raise ValueError(f"no predictions given for sequence(s): {', '.join(missing)}")
    extra = [s for s in pred if s not in gt]
    if extra:
        raise ValueError(f"predictions for unknown sequence(s) (not in gt): {', '.join(extra)}")
    if COMBINED in gt:
        raise ValueError(f"{COMBINED!r} is reserved and cannot be a sequence name")

    from trackeval.metrics import CLEAR, HOTA, Identity

    with contextlib.redirect_stdout(io.StringIO()):
        metric_objs: dict[str, Any] = {}
        if "HOTA" in families:
            metric_objs["HOTA"] = HOTA()
        if "CLEAR" in families:
            metric_objs["CLEAR"] = CLEAR({"THRESHOLD": 0.5, "PRINT_CONFIG": False})
        if "Identity" in families:
            metric_objs["Identity"] = Identity({"THRESHOLD": 0.5, "PRINT_CONFIG": False})

    result = EvalResult(benchmark=benchmark, metrics=families, teta_mode=teta_mode, class_aware=class_aware)
    per_family: dict[str, dict[str, Any]] = {f: {} for f in metric_objs}
    sequences: dict[str, SequenceData] = {}
    for name, gt_src in gt.items():
        gt_path, length = _gt_file(_as_source(gt_src), None if num_frames is None else num_frames.get(name), name)
        gt_rows = load_mot_file(gt_path, name=f"gt {name}")
        pred_rows = load_mot_file(_as_source(pred[name]), name=f"pred {name}")
        pred_rows, frames = _check_frames(gt_rows, pred_rows, length, allow_extra_frames=allow_extra_frames)
        seq = preprocess_sequence(
            gt_rows,
            pred_rows,
            benchmark=benchmark,
            num_frames=frames,
            name=name,
            class_aware=class_aware,
        )
        sequences[name] = seq
        data = to_trackeval_data(seq)
        summary: dict[str, float | int] = {
            "num_frames": seq.num_frames,
            "num_gt_dets": seq.num_gt_dets,
            "num_pred_dets": seq.num_pred_dets,
            "num_gt_ids": data["num_gt_ids"],
            "num_pred_ids": data["num_tracker_ids"],
        }
        curves: dict[str, list[float]] = {}
        for fam, obj in metric_objs.items():
            res = obj.eval_sequence(data)
            per_family[fam][name] = res
            _summarise(fam, res, summary, curves)
        result.sequences[name] = summary
        result.per_alpha[name] = curves

    combined: dict[str, float | int] = {
        k: int(sum(int(s[k]) for s in result.sequences.values()))
        for k in ("num_frames", "num_gt_dets", "num_pred_dets", "num_gt_ids", "num_pred_ids")
    }
    curves = {}
    for fam, obj in metric_objs.items():
        _summarise(fam, obj.combine_sequences(per_family[fam]), combined, curves)

    if "TETA" in families:
        # The authors evaluate the classes that have gt in any sequence (datasets/tao.py valid_classes).
        classes = sorted({int(c) for seq in sequences.values() for cs in seq.gt_classes for c in cs.tolist()})
        counts = {
            name: teta_sequence(seq.gt_frames(), seq.pred_frames(), classes=classes, mode=teta_mode, similarity=seq.similarity)
            for name, seq in sequences.items()
        }
        for name, per_class in counts.items():
            _teta_into(result.sequences[name], result.per_alpha[name], teta_summary(per_class))
        _teta_into(combined, curves, teta_summary(combine_teta(counts.values())))
    result.combined = combined
    result.per_alpha[COMBINED] = curves
    return result
