"""MOTChallenge evaluation: HOTA, CLEAR (MOTA, ...), Identity (IDF1, ...) and TETA.

The HOTA / CLEAR / Identity numbers come from TrackEval's own metric classes
(``trackeval.metrics.HOTA``, ``CLEAR``, ``Identity``; PyPI ``trackeval`` 1.3.0); this module only
loads MOTChallenge text files, applies the standard MOTChallenge preprocessing and builds the
per-sequence data dict those classes consume (what ``MotChallenge2DBox.get_preprocessed_seq_data``
produces). TETA comes from :mod:`masa.eval.teta`.

Units
-----
Every ratio in a summary (``HOTA, DetA, AssA, LocA, MOTA, MOTP, IDF1, IDP, IDR, TETA, LocA_teta,
AssocA, ClsA, ...``) is a **fraction** (``1.0`` = perfect; MOTA can be negative), never a
percentage; :func:`masa.eval.report.format_table` prints them as percentages. Counts
(``TP, FP, FN, IDSW, Frag, MT, PT, ML, IDTP, IDFP, IDFN, ...``) are Python ``int``.
The HOTA family (``HOTA, DetA, AssA, LocA, DetRe, DetPr, AssRe, AssPr, OWTA``) is the mean over
TrackEval's 19 thresholds alpha = 0.05..0.95, like TrackEval's summary tables.

Preprocessing (identical to TrackEval's ``MotChallenge2DBox``)
--------------------------------------------------------------
* ``MOT15``: every ground-truth row counts except rows whose ``conf`` column (the "consider"
  flag) is 0. The MOT15 columns 8-10 are world coordinates, not classes, and are ignored.
  Nothing is removed from the predictions.
* ``MOT16`` / ``MOT17`` / ``MOT20``: per frame, predictions are matched to *all* gt boxes
  (Hungarian on IoU, pairs with IoU < 0.5 not allowed); predictions matched to a distractor
  gt box (classes 2 person_on_vehicle, 7 static_person, 8 distractor, 12 reflection, and for
  MOT20 also 6 non_mot_vehicle) are removed. Then only gt rows of class 1 (pedestrian) with a
  non-zero ``conf`` flag are kept.
* The ``conf`` flag is truncated to an integer before the zero test (as TrackEval does).
* Ids are relabelled to contiguous ``0..n-1`` after preprocessing; similarity is box IoU on
  ``(x, y, w, h)`` boxes (zero-area boxes give 0).
* The number of frames is the largest frame index in gt and predictions (or the given
  ``num_frames``, e.g. ``seqLength`` from ``seqinfo.ini``, if larger). Frames are 1-based.
* The class column of predictions is ignored (MOTChallenge trackers write ``-1``).

Matching the py-motmetrics reference
------------------------------------
The reference values in ``shared/data/metric-reference`` were produced by ``motmetrics`` 1.4.0
(IoU distance, ``max_iou=0.5``). With the MOT15 preprocessing above (no gt row of the two TUD
files has ``conf == 0``, and MOT15 removes nothing from predictions) TrackEval's CLEAR/Identity
give exactly the same counts, with no adjustment: TUD-Campus MOTA 0.526462, IDF1 0.557659, FP 13,
FN 150, IDSW 7, MOTP 0.722799 (= 1 - motmetrics' distance-MOTP 0.277201); TUD-Stadtmitte MOTA
0.564014, IDF1 0.644619. The two tools use the same rules: a match needs IoU >= 0.5; a gt
object's match from the previous frame is kept while still valid (motmetrics keeps it
explicitly, TrackEval via a +1000 score bonus), the rest is Hungarian matching on IoU; an ID
switch is counted when a gt object is matched to a different track than at its last match.
(The only theoretical difference is tie-breaking: motmetrics minimises the summed distance
``1 - IoU`` of a maximum matching, TrackEval maximises summed IoU; it does not occur here.)
``tests/eval/test_eval_reference.py`` pins these figures.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from masa.eval.teta import (
    FrameBoxes,
    TetaAccumulator,
    accumulate_teta,
    combine_teta,
    teta_summary,
)

__all__ = [
    "BENCHMARKS",
    "METRIC_FAMILIES",
    "COMBINED",
    "MOTFormatError",
    "SequenceData",
    "EvalResult",
    "load_mot_file",
    "resolve_gt_path",
    "read_seq_length",
    "box_iou_xywh",
    "preprocess_sequence",
    "to_trackeval_data",
    "evaluate_mot",
]

BENCHMARKS = ("MOT15", "MOT16", "MOT17", "MOT20")
METRIC_FAMILIES = ("HOTA", "CLEAR", "Identity", "TETA")
COMBINED = "COMBINED"

# MOTChallenge gt class numbers (MOT16/17/20).
PEDESTRIAN = 1
DISTRACTOR_CLASSES = (2, 7, 8, 12)  # person_on_vehicle, static_person, distractor, reflection
MOT20_EXTRA_DISTRACTORS = (6,)  # non_mot_vehicle
VALID_GT_CLASSES = tuple(range(1, 14))

_EPS = float(np.finfo(float).eps)

# Column layout of the arrays returned by load_mot_file.
COL_FRAME, COL_ID, COL_X, COL_Y, COL_W, COL_H, COL_CONF, COL_CLASS, COL_VIS = range(9)
_NUM_COLS = 9
#: Largest accepted frame index (guards against a typo allocating millions of empty frames).
MAX_FRAME = 1_000_000
_DEFAULTS = {COL_CONF: 1.0, COL_CLASS: -1.0, COL_VIS: -1.0}

Source = str | os.PathLike | np.ndarray | None


class MOTFormatError(ValueError):
    """A MOTChallenge text file (or array) is malformed; the message names the file and line."""

    def __init__(self, source: str, line: int | None, message: str):
        self.source = source
        self.line = line
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {message}")


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def resolve_gt_path(path: str | os.PathLike) -> Path:
    """A gt file path, or a MOTChallenge sequence folder (resolved to ``<folder>/gt/gt.txt``)."""
    p = Path(path)
    if p.is_dir():
        candidate = p / "gt" / "gt.txt"
        if not candidate.is_file():
            raise FileNotFoundError(f"{p} is a folder without gt/gt.txt")
        return candidate
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    return p


def read_seq_length(seq_dir: str | os.PathLike) -> int | None:
    """``seqLength`` from ``<seq_dir>/seqinfo.ini`` (``None`` when absent or unreadable)."""
    import configparser

    ini = Path(seq_dir) / "seqinfo.ini"
    if not ini.is_file():
        return None
    parser = configparser.ConfigParser()
    try:
        parser.read(ini)
        return int(parser["Sequence"]["seqLength"])
    except (KeyError, ValueError, configparser.Error):
        return None


def _check_rows(rows: np.ndarray, source: str, line_numbers: Sequence[int]) -> None:
    """Validate the standard 9-column array (frame, id, box finite; integer frame >= 1 / id)."""
    if rows.shape[0] == 0:
        return
    core = rows[:, :6]
    bad = ~np.isfinite(core).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise MOTFormatError(source, line_numbers[i], "non-finite value in frame/id/box columns")
    frames = rows[:, COL_FRAME]
    bad = (frames != np.round(frames)) | (frames < 1)
    if bad.any():
        i = int(np.argmax(bad))
        msg = f"frame must be an integer >= 1 (MOTChallenge frames are 1-based), got {frames[i]:g}"
        raise MOTFormatError(source, line_numbers[i], msg)
    bad = frames > MAX_FRAME
    if bad.any():
        i = int(np.argmax(bad))
        raise MOTFormatError(source, line_numbers[i], f"frame {frames[i]:g} is implausibly large (> {MAX_FRAME})")
    ids = rows[:, COL_ID]
    bad = ids != np.round(ids)
    if bad.any():
        i = int(np.argmax(bad))
        raise MOTFormatError(source, line_numbers[i], f"id must be an integer, got {ids[i]:g}")
    bad = (rows[:, COL_W] < 0) | (rows[:, COL_H] < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise MOTFormatError(
            source, line_numbers[i], f"negative box size w={rows[i, COL_W]:g} h={rows[i, COL_H]:g}"
        )
    # An id may appear only once per frame.
    key = np.stack([frames, ids], axis=1)
    order = np.lexsort((key[:, 1], key[:, 0]))
    sk = key[order]
    dup = np.all(sk[1:] == sk[:-1], axis=1)
    if dup.any():
        j = int(np.argmax(dup))
        a, b = sorted((line_numbers[order[j]], line_numbers[order[j + 1]]))
        raise MOTFormatError(
            source, b, f"id {int(sk[j, 1])} appears twice in frame {int(sk[j, 0])} (also on line {a})"
        )


def _pad(values: list[float]) -> list[float]:
    out = values[:_NUM_COLS]
    for c in range(len(out), _NUM_COLS):
        out.append(_DEFAULTS[c])
    return out


def load_mot_file(source: Source, *, name: str | None = None) -> np.ndarray:
    """Load a MOTChallenge text file (or validate an array) into ``float64[N, 9]``.

    Columns: ``frame, id, x, y, w, h, conf, class, visibility`` (frames 1-based, boxes
    top-left ``x, y`` and size ``w, h`` in pixels). Missing trailing columns get defaults
    (``conf=1``, ``class=-1``, ``visibility=-1``); columns after the 9th are ignored. Fields may
    be separated by commas or whitespace; blank lines are skipped.

    ``source`` may be a path, an array with >= 6 columns, or ``None`` (no rows). Raises
    :class:`MOTFormatError` (a ``ValueError``) naming the file and 1-based line of the first bad
    row (too few columns, non-numeric field, non-integer or < 1 frame, non-integer id, negative
    size, non-finite box, an id twice in one frame), ``FileNotFoundError`` for a missing file.
    """
    if source is None:
        return np.zeros((0, _NUM_COLS))
    if isinstance(source, np.ndarray) or (
        not isinstance(source, (str, os.PathLike)) and hasattr(source, "__array__")
    ):
        label = f"<array {name}>" if name else "<array>"
        arr = np.asarray(source, dtype=float)
        if arr.size == 0:
            return np.zeros((0, _NUM_COLS))
        if arr.ndim != 2 or arr.shape[1] < 6:
            raise MOTFormatError(label, None, f"expected an array of shape [N, >=6], got {arr.shape}")
        out = np.empty((arr.shape[0], _NUM_COLS))
        n = min(arr.shape[1], _NUM_COLS)
        out[:, :n] = arr[:, :n]
        for c in range(n, _NUM_COLS):
            out[:, c] = _DEFAULTS[c]
        _check_rows(out, label, list(range(1, arr.shape[0] + 1)))
        return out

    path = Path(source)
    if path.is_dir():
        raise MOTFormatError(str(path), None, "is a folder, expected a MOTChallenge .txt file")
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    label = str(path)
    rows: list[list[float]] = []
    line_numbers: list[int] = []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise MOTFormatError(label, None, f"not a text file ({exc.reason})") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        fields = [f.strip() for f in (line.split(",") if "," in line else line.split())]
        if fields and fields[-1] == "":  # tolerate a trailing comma
            fields = fields[:-1]
        if len(fields) < 6:
            msg = f"expected at least 6 fields (frame,id,x,y,w,h,...), got {len(fields)}: {line[:80]!r}"
            raise MOTFormatError(label, lineno, msg)
        values: list[float] = []
        for col, f in enumerate(fields[:_NUM_COLS]):
            try:
                values.append(float(f))
            except ValueError:
                raise MOTFormatError(label, lineno, f"field {col + 1} is not a number: {f!r}") from None
        rows.append(_pad(values))
        line_numbers.append(lineno)
    arr = np.asarray(rows, dtype=float).reshape(-1, _NUM_COLS)
    _check_rows(arr, label, line_numbers)
    return arr


# --------------------------------------------------------------------------------------------
# Similarity and preprocessing
# --------------------------------------------------------------------------------------------


def box_iou_xywh(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Pairwise IoU ``float[N, M]`` of ``(x, y, w, h)`` boxes; zero-area boxes give 0."""
    a = np.asarray(boxes_a, dtype=float).reshape(-1, 4)
    b = np.asarray(boxes_b, dtype=float).reshape(-1, 4)
    if a.shape[0] == 0 or b.shape[0] == 0:
        return np.zeros((a.shape[0], b.shape[0]))
    ax1, ay1 = a[:, 0], a[:, 1]
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx1, by1 = b[:, 0], b[:, 1]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    iw = np.minimum(ax2[:, None], bx2[None, :]) - np.maximum(ax1[:, None], bx1[None, :])
    ih = np.minimum(ay2[:, None], by2[None, :]) - np.maximum(ay1[:, None], by1[None, :])
    inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
    area_a = (ax2 - ax1) * (ay2 - ay1)
    area_b = (bx2 - bx1) * (by2 - by1)
    union = area_a[:, None] + area_b[None, :] - inter
    inter[area_a <= _EPS, :] = 0
    inter[:, area_b <= _EPS] = 0
    valid = union > _EPS
    inter[~valid] = 0
    return inter / np.where(valid, union, 1.0)


@dataclass
class SequenceData:
    """One preprocessed sequence: per-frame (index ``t`` = frame ``t + 1``) arrays.

    Ids are the original MOTChallenge ids (not yet relabelled); ``similarity[t]`` is the
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


def _split_by_frame(rows: np.ndarray, num_frames: int) -> list[np.ndarray]:
    frames = rows[:, COL_FRAME].astype(np.int64) - 1
    order = np.argsort(frames, kind="stable")
    rows, frames = rows[order], frames[order]
    bounds = np.searchsorted(frames, np.arange(num_frames + 1))
    return [rows[bounds[t] : bounds[t + 1]] for t in range(num_frames)]


def preprocess_sequence(
    gt_rows: np.ndarray,
    pred_rows: np.ndarray,
    *,
    benchmark: str = "MOT15",
    num_frames: int | None = None,
    name: str = "seq",
    gt_source: str | None = None,
) -> SequenceData:
    """Apply the MOTChallenge preprocessing (see the module docstring) to loaded rows."""
    benchmark = _normalise_benchmark(benchmark)
    gt_rows = np.asarray(gt_rows, dtype=float).reshape(-1, _NUM_COLS)
    pred_rows = np.asarray(pred_rows, dtype=float).reshape(-1, _NUM_COLS)
    t_max = 0
    for rows in (gt_rows, pred_rows):
        if rows.shape[0]:
            t_max = max(t_max, int(rows[:, COL_FRAME].max()))
    if num_frames is not None:
        t_max = max(t_max, int(num_frames))

    mot15 = benchmark == "MOT15"
    if not mot15 and gt_rows.shape[0]:
        classes = gt_rows[:, COL_CLASS]
        invalid = ~np.isin(classes, VALID_GT_CLASSES)
        if invalid.any():
            i = int(np.argmax(invalid))
            raise MOTFormatError(
                gt_source or f"<gt {name}>",
                None,
                f"{benchmark} gt needs a class column with values 1..13; row {i + 1} "
                f"(frame {int(gt_rows[i, COL_FRAME])}, id {int(gt_rows[i, COL_ID])}) has class {classes[i]:g}",
            )
    distractors = DISTRACTOR_CLASSES + (MOT20_EXTRA_DISTRACTORS if benchmark == "MOT20" else ())

    gt_by_t = _split_by_frame(gt_rows, t_max)
    pred_by_t = _split_by_frame(pred_rows, t_max)
    out = SequenceData(name, t_max, [], [], [], [], [], [], [])
    from scipy.optimize import linear_sum_assignment

    for g, p in zip(gt_by_t, pred_by_t):
        sim = box_iou_xywh(g[:, COL_X : COL_H + 1], p[:, COL_X : COL_H + 1])
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
        if mot15:
            keep_gt = ~zero_marked
        else:
            keep_gt = ~zero_marked & (g[:, COL_CLASS].astype(int) == PEDESTRIAN)
        out.removed_pred += int((~keep_pred).sum())
        out.ignored_gt += int((~keep_gt).sum())
        g = g[keep_gt]
        p = p[keep_pred]
        out.gt_ids.append(g[:, COL_ID].astype(np.int64))
        out.gt_boxes.append(g[:, COL_X : COL_H + 1].copy())
        # MOT15 has no classes (its columns 8-10 are world coordinates): everything is class 1.
        gt_cls = np.ones(len(g), np.int64) if mot15 else g[:, COL_CLASS].astype(np.int64)
        out.gt_classes.append(gt_cls)
        out.pred_ids.append(p[:, COL_ID].astype(np.int64))
        out.pred_boxes.append(p[:, COL_X : COL_H + 1].copy())
        out.pred_classes.append(np.ones(len(p), np.int64))
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
_HOTA_KEYS = [
    ("HOTA", "HOTA"),
    ("DetA", "DetA"),
    ("AssA", "AssA"),
    ("LocA", "LocA"),
    ("DetRe", "DetRe"),
    ("DetPr", "DetPr"),
    ("AssRe", "AssRe"),
    ("AssPr", "AssPr"),
    ("OWTA", "OWTA"),
]
_HOTA_SCALARS = [("HOTA(0)", "HOTA(0)"), ("LocA(0)", "LocA(0)")]
_CLEAR_FLOATS = [
    ("MOTA", "MOTA"),
    ("MOTP", "MOTP"),
    ("MODA", "MODA"),
    ("sMOTA", "sMOTA"),
    ("Recall", "CLR_Re"),
    ("Precision", "CLR_Pr"),
    ("MTR", "MTR"),
    ("PTR", "PTR"),
    ("MLR", "MLR"),
]
_CLEAR_INTS = [
    ("TP", "CLR_TP"),
    ("CLR_TP", "CLR_TP"),
    ("FP", "CLR_FP"),
    ("FN", "CLR_FN"),
    ("IDSW", "IDSW"),
    ("Frag", "Frag"),
    ("MT", "MT"),
    ("PT", "PT"),
    ("ML", "ML"),
]
_ID_FLOATS = [("IDF1", "IDF1"), ("IDP", "IDP"), ("IDR", "IDR")]
_ID_INTS = [("IDTP", "IDTP"), ("IDFP", "IDFP"), ("IDFN", "IDFN")]

#: Keys holding integer counts (everything else in a summary is a fraction).
COUNT_KEYS = frozenset(
    [k for k, _ in _CLEAR_INTS]
    + [k for k, _ in _ID_INTS]
    + ["num_frames", "num_gt_dets", "num_pred_dets", "num_gt_ids", "num_pred_ids"]
)


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


def _fl(x: Any) -> float:
    """Mean over alpha of a per-alpha array (or a scalar) as a float."""
    return float(np.mean(x))


def _summarise(family: str, res: Mapping[str, Any], summary: dict[str, float | int]) -> None:
    if family == "HOTA":
        for key, f in _HOTA_KEYS:
            summary[key] = _fl(res[f])
        for key, f in _HOTA_SCALARS:
            summary[key] = float(res[f])
    elif family == "CLEAR":
        for key, f in _CLEAR_FLOATS:
            summary[key] = float(res[f])
        for key, f in _CLEAR_INTS:
            summary[key] = int(round(float(res[f])))
    elif family == "Identity":
        for key, f in _ID_FLOATS:
            summary[key] = float(res[f])
        for key, f in _ID_INTS:
            summary[key] = int(round(float(res[f])))


@dataclass
class EvalResult:
    """Evaluation output.

    ``sequences[name]`` and ``combined`` are flat ``{key: float | int}`` summaries (fractions in
    ``[0, 1]``, counts as ``int``; see the module docstring). ``result[name]`` indexes a
    sequence and ``result["COMBINED"]`` the combination over all sequences (counts summed,
    HOTA/TETA association terms weighted by TP, as in TrackEval).
    ``per_alpha[name]`` holds the per-threshold curves (HOTA family over 0.05..0.95,
    TETA LocA/AssocA over 0.00..0.95, TETA ClsA over 0.50..0.95) and ``raw[name]`` the untouched
    trackeval result dicts per family.
    """

    benchmark: str
    metrics: tuple[str, ...]
    sequences: dict[str, dict[str, float | int]] = field(default_factory=dict)
    combined: dict[str, float | int] = field(default_factory=dict)
    per_alpha: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    raw: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, float | int]:
        if name == COMBINED:
            return self.combined
        return self.sequences[name]

    @property
    def names(self) -> list[str]:
        return list(self.sequences)


def _per_alpha(family: str, res: Mapping[str, Any]) -> dict[str, list[float]]:
    if family == "HOTA":
        return {k: [float(v) for v in np.asarray(res[f]).ravel()] for k, f in _HOTA_KEYS[:4]}
    return {}


def _as_source(src: Any) -> Source:
    if src is None or isinstance(src, np.ndarray):
        return src
    if isinstance(src, (str, os.PathLike)):
        return src
    return np.asarray(src, dtype=float)


def evaluate_mot(
    gt: Mapping[str, str | os.PathLike | np.ndarray],
    pred: Mapping[str, str | os.PathLike | np.ndarray | None],
    *,
    benchmark: str = "MOT15",
    metrics: Iterable[str] = METRIC_FAMILIES,
    num_frames: Mapping[str, int | None] | None = None,
) -> EvalResult:
    """Score tracker output against MOTChallenge ground truth.

    Args:
        gt: sequence name -> gt file (``gt.txt``), MOTChallenge sequence folder (its
            ``gt/gt.txt`` is used, and ``seqinfo.ini``'s ``seqLength`` when present), or an array
            ``[N, >=6]`` of rows ``frame, id, x, y, w, h, conf, class, visibility``.
        pred: sequence name -> result file or array (same row layout; conf/class ignored).
            ``None`` or an empty array scores the sequence as "no predictions". Every gt
            sequence needs an entry; entries for unknown sequences are an error.
        benchmark: ``"MOT15"`` (default; every gt row with a non-zero conf flag counts) or
            ``"MOT16"/"MOT17"/"MOT20"`` (pedestrian-only evaluation with distractor removal).
        metrics: any of ``"HOTA", "CLEAR", "Identity", "TETA"`` (case-insensitive).
        num_frames: optional sequence name -> number of frames (defaults to the largest frame
            seen in gt/pred, or seqinfo.ini for sequence folders).

    Returns:
        :class:`EvalResult` with per-sequence and ``"COMBINED"`` summaries.

    Raises:
        MOTFormatError (a ValueError) for malformed files, ValueError for bad arguments,
        FileNotFoundError for missing files.
    """
    benchmark = _normalise_benchmark(benchmark)
    families = _normalise_metrics(metrics)
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

    result = EvalResult(benchmark=benchmark, metrics=families)
    per_family: dict[str, dict[str, Any]] = {f: {} for f in metric_objs}
    teta_acc: dict[str, TetaAccumulator] = {}

    for name, gt_src in gt.items():
        frames_hint = None if num_frames is None else num_frames.get(name)
        gt_source = _as_source(gt_src)
        gt_label = None
        if isinstance(gt_source, (str, os.PathLike)):
            p = Path(gt_source)
            if p.is_dir():
                if frames_hint is None:
                    frames_hint = read_seq_length(p)
                gt_source = resolve_gt_path(p)
            gt_label = str(gt_source)
        gt_rows = load_mot_file(gt_source, name=f"gt {name}")
        pred_rows = load_mot_file(_as_source(pred[name]), name=f"pred {name}")
        seq = preprocess_sequence(
            gt_rows, pred_rows, benchmark=benchmark, num_frames=frames_hint, name=name, gt_source=gt_label
        )
        data = to_trackeval_data(seq)
        summary: dict[str, float | int] = {
            "num_frames": seq.num_frames,
            "num_gt_dets": seq.num_gt_dets,
            "num_pred_dets": seq.num_pred_dets,
            "num_gt_ids": data["num_gt_ids"],
            "num_pred_ids": data["num_tracker_ids"],
        }
        curves: dict[str, list[float]] = {}
        raw: dict[str, Any] = {}
        for fam, obj in metric_objs.items():
            res = obj.eval_sequence(data)
            per_family[fam][name] = res
            raw[fam] = res
            _summarise(fam, res, summary)
            curves.update(_per_alpha(fam, res))
        if "TETA" in families:
            acc = accumulate_teta(
                seq.gt_frames(), seq.pred_frames(), class_agnostic=True, similarity=seq.similarity
            )
            teta_acc[name] = acc
            ts = teta_summary(acc)
            _teta_into(summary, curves, ts)
            raw["TETA"] = ts
        result.sequences[name] = summary
        result.per_alpha[name] = curves
        result.raw[name] = raw

    combined: dict[str, float | int] = {
        k: int(sum(int(s[k]) for s in result.sequences.values()))
        for k in ("num_frames", "num_gt_dets", "num_pred_dets", "num_gt_ids", "num_pred_ids")
    }
    curves = {}
    raw_c: dict[str, Any] = {}
    for fam, obj in metric_objs.items():
        res = obj.combine_sequences(per_family[fam])
        raw_c[fam] = res
        _summarise(fam, res, combined)
        curves.update(_per_alpha(fam, res))
    if "TETA" in families:
        ts = teta_summary(combine_teta(list(teta_acc.values())))
        _teta_into(combined, curves, ts)
        raw_c["TETA"] = ts
    result.combined = combined
    result.per_alpha[COMBINED] = curves
    result.raw[COMBINED] = raw_c
    return result


def _teta_into(summary: dict[str, float | int], curves: dict[str, list[float]], ts: Mapping[str, Any]) -> None:
    summary["TETA"] = float(ts["TETA"])
    summary["LocA_teta"] = float(ts["LocA"])
    summary["AssocA"] = float(ts["AssocA"])
    summary["ClsA"] = float(ts["ClsA"])
    curves["TETA_LocA"] = [float(v) for v in ts["LocA_alpha"]]
    curves["TETA_AssocA"] = [float(v) for v in ts["AssocA_alpha"]]
    curves["TETA_ClsA"] = [float(v) for v in ts["ClsA_alpha"]]


def is_count_key(key: str) -> bool:
    """True when ``key`` of a summary is an integer count (not a fraction)."""
    return key in COUNT_KEYS
