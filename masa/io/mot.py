"""MOTChallenge text files: ``seqinfo.ini``, ``det.txt``, ``gt.txt`` and tracker results.

Row format (comma-separated; whitespace-separated rows are accepted too)::

    frame, id, x, y, w, h, score/conf, [class, visibility | x3d, y3d, z3d]

* ``frame`` is **1-based** in files and **0-based** in the returned dicts (``index = frame - 1``);
  ``MotResultWriter`` writes ``frame = index + 1``.
* Boxes are ``x, y, w, h`` (top-left corner and size, pixels) in files and ``xyxy`` ``float32``
  in :class:`~masa.structures.Detections` / :class:`~masa.structures.Tracks`.
* Track ids: MOTChallenge ids are ``>= 1`` and ours are ``>= 0``, so ``MotResultWriter`` writes
  ``id + 1`` and :func:`read_mot_tracks` returns ``file id - 1`` (the JSON writer writes
  ``track_id = id + 1`` too, and draw labels show ``id + 1``: one id per object everywhere a user looks).

Validation (errors name the file and its 1-based line number, e.g.
``det.txt line 17: expected at least 7 comma-separated numbers (frame,id,x,y,w,h,score), got 'abc'``):

* blank lines and lines starting with ``#`` are ignored; a UTF-8 BOM is accepted;
* too few columns, a non-numeric, NaN or infinite value, or a frame that is not an integer >= 1
  -> :class:`~masa.io.errors.InputError`;
* rows with ``w <= 0`` or ``h <= 0`` are **skipped** with one warning per file (public detection
  files really contain such rows), not errors.

Every returned row keeps its file line number in ``data["line"]`` (``int64``), so any output row
maps back to its input line.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from masa.io.errors import InputError, require_file, short_repr
from masa.io.frames import read_seqinfo_file
from masa.structures import Detections, Tracks

__all__ = [
    "MotResultWriter",
    "clip_detections",
    "detection_frames",
    "load_mot_array",
    "read_mot_detections",
    "read_mot_tracks",
    "read_seqinfo",
]

_SPLIT = re.compile(r"\s*,\s*|\s+")
_DET_COLUMNS = ("frame", "id", "x", "y", "w", "h", "score")
_TRACK_COLUMNS = ("frame", "id", "x", "y", "w", "h")


def read_seqinfo(path: str | Path) -> dict[str, Any]:
    """Parse a MOTChallenge ``seqinfo.ini`` (the file or its sequence folder).

    Returns ``name`` (str), ``imDir`` (str), ``frameRate`` (float), ``seqLength``, ``imWidth``,
    ``imHeight`` (int) and ``imExt`` (str with a leading dot) when present, other keys as strings.
    """
    return read_seqinfo_file(path)


# ---------------------------------------------------------------------------------------------
# row parsing
# ---------------------------------------------------------------------------------------------


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """``(line number, stripped text)`` of the data lines (blank and ``#`` lines skipped)."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                text = line.strip()
                if text and not text.startswith("#"):
                    yield number, text
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (cannot decode as UTF-8)") from None


def _parse_row(path: Path, number: int, text: str, columns: tuple[str, ...], all_columns: bool) -> list[float]:
    """Parse one row; the first ``len(columns)`` values (all values when ``all_columns``) must be finite numbers."""
    fields = [f for f in _SPLIT.split(text) if f != ""]
    if len(fields) < len(columns):
        raise InputError(
            f"{path} line {number}: expected at least {len(columns)} comma-separated numbers "
            f"({','.join(columns)}), got {short_repr(text)}"
        )
    used = fields if all_columns else fields[: len(columns)]
    values: list[float] = []
    for col, field in enumerate(used):
        name = columns[col] if col < len(columns) else f"column {col + 1}"
        try:
            value = float(field)
        except ValueError:
            raise InputError(
                f"{path} line {number}: {name} (column {col + 1}) must be a number, got {short_repr(field)}"
            ) from None
        if not math.isfinite(value):
            raise InputError(
                f"{path} line {number}: {name} (column {col + 1}) must be a finite number, got {short_repr(field)}"
            )
        values.append(value)
    frame = values[0]
    if frame < 1 or not frame.is_integer():
        raise InputError(f"{path} line {number}: frame must be an integer >= 1 (1-based), got {short_repr(fields[0])}")
    return values


def _warn_bad_size(path: Path, lines: list[int]) -> None:
    if lines:
        shown = ", ".join(str(n) for n in lines[:5]) + (", ..." if len(lines) > 5 else "")
        warnings.warn(
            f"{path}: skipped {len(lines)} row(s) with width or height <= 0 (line {shown})",
            RuntimeWarning,
            stacklevel=3,
        )


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    boxes = np.asarray(xywh, dtype=np.float64).reshape(-1, 4).copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# detections
# ---------------------------------------------------------------------------------------------


def read_mot_detections(path: str | Path, *, min_score: float | None = None) -> dict[int, Detections]:
    """Read a MOTChallenge detection file (``det.txt``: ``frame,id,x,y,w,h,score[,...]``).

    Returns ``{0-based frame index: Detections}`` (sorted by frame; frames without rows are absent,
    use :func:`detection_frames`), with ``xyxy`` ``float32`` boxes, ``scores``, labels ``0`` and
    ``data["line"]`` (1-based file line numbers). The id column and columns after ``score`` are
    ignored. ``min_score``: drop rows with ``score < min_score``. See the module docstring for the
    validation rules (zero / negative sizes are skipped with a warning, malformed rows are errors).
    """
    path = require_file(path, "detection file")
    rows: dict[int, list[tuple[float, float, float, float, float, int]]] = {}
    bad_size: list[int] = []
    for number, text in _lines(path):
        frame, _, x, y, w, h, score = _parse_row(path, number, text, _DET_COLUMNS, all_columns=False)
        if w <= 0 or h <= 0:
            bad_size.append(number)
            continue
        if min_score is not None and score < min_score:
            continue
        rows.setdefault(int(frame) - 1, []).append((x, y, w, h, score, number))
    _warn_bad_size(path, bad_size)
    result: dict[int, Detections] = {}
    for index in sorted(rows):
        table = np.asarray(rows[index], dtype=np.float64)
        result[index] = Detections(
            boxes=torch.from_numpy(_xywh_to_xyxy(table[:, :4])),
            scores=torch.from_numpy(table[:, 4].astype(np.float32)),
            labels=torch.zeros(len(table), dtype=torch.int64),
            data={"line": table[:, 5].astype(np.int64)},
        )
    return result


def detection_frames(
    dets_by_frame: Mapping[int, Detections],
    frame_index: int,
    height: int | None = None,
    width: int | None = None,
) -> Detections:
    """The detections of one 0-based ``frame_index`` of a ``{index: Detections}`` dict.

    Frames without rows give an empty :class:`Detections` with the same ``data`` columns as the
    other frames (so results of all frames can be concatenated). With ``height`` and ``width``, the
    boxes are clipped to the image by :func:`clip_detections` (boxes entirely outside are dropped).
    """
    dets = dets_by_frame.get(frame_index)
    if dets is None:
        template = next(iter(dets_by_frame.values()), None)
        dets = Detections.empty() if template is None else template[[]]
    if height is not None and width is not None:
        dets = clip_detections(dets, height, width)
    return dets


def clip_detections(dets: Detections, height: int, width: int) -> Detections:
    """Clip boxes to the image ``[0, width] x [0, height]`` and drop boxes with zero area after clipping.

    Every other field and ``data`` column follows the kept rows (so ``data["line"]`` survives).
    Works for :class:`Tracks` too.
    """
    if len(dets) == 0:
        return dets
    boxes = dets.boxes.clone()
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, float(width))
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, float(height))
    keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    kept = dets[keep]
    return kept.replace(boxes=boxes[keep])


# ---------------------------------------------------------------------------------------------
# gt / results
# ---------------------------------------------------------------------------------------------


def load_mot_array(
    path: str | Path, *, min_columns: int = 6, return_lines: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Load a MOTChallenge gt / results / det file as ``float64[K, C]`` (``C >= min_columns``).

    Columns as in the file (``frame`` is 1-based, boxes ``x, y, w, h``); rows with fewer columns
    than the longest row are padded with ``-1``. Every value must be a finite number (errors name
    the file and line). No size check: rows are returned as they are. ``return_lines``: also
    return the ``int64[K]`` 1-based line numbers.
    """
    path = require_file(path, "MOTChallenge file")
    columns = _TRACK_COLUMNS[:min_columns] + tuple(f"column {i + 1}" for i in range(len(_TRACK_COLUMNS), min_columns))
    rows: list[list[float]] = []
    lines: list[int] = []
    for number, text in _lines(path):
        rows.append(_parse_row(path, number, text, columns, all_columns=True))
        lines.append(number)
    width = max([min_columns, *map(len, rows)])
    table = np.full((len(rows), width), -1.0, dtype=np.float64)
    for i, row in enumerate(rows):
        table[i, : len(row)] = row
    line_array = np.asarray(lines, dtype=np.int64)
    return (table, line_array) if return_lines else table


def read_mot_tracks(path: str | Path) -> dict[int, Tracks]:
    """Read a MOTChallenge gt or results file as ``{0-based frame index: Tracks}``.

    ``ids`` are the file ids minus one (file ids must be integers >= 1, see the module docstring),
    ``scores`` the conf column (``1`` when absent), labels ``0``, ``data["line"]`` the file line
    numbers. Rows with ``w <= 0`` or ``h <= 0`` are skipped with a warning.
    """
    path = Path(path)
    table, lines = load_mot_array(path, min_columns=6, return_lines=True)
    ids = table[:, 1]
    bad = np.flatnonzero((ids < 1) | (ids != np.round(ids)))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{path} line {lines[i]}: id must be an integer >= 1, got {table[i, 1]:g}")
    valid = (table[:, 4] > 0) & (table[:, 5] > 0)
    _warn_bad_size(path, lines[~valid].tolist())
    table, lines = table[valid], lines[valid]
    scores = table[:, 6] if table.shape[1] > 6 else np.ones(len(table))
    frames = table[:, 0].astype(np.int64) - 1
    result: dict[int, Tracks] = {}
    for index in np.unique(frames).tolist():
        rows = np.flatnonzero(frames == index)
        result[int(index)] = Tracks(
            boxes=torch.from_numpy(_xywh_to_xyxy(table[rows, 2:6])),
            scores=torch.from_numpy(scores[rows].astype(np.float32)),
            ids=torch.from_numpy(table[rows, 1].astype(np.int64) - 1),
            data={"line": lines[rows]},
        )
    return result


class MotResultWriter:
    """Write tracker output as a MOTChallenge results file, one frame at a time.

    Rows: ``frame+1, id+1, x, y, w, h, score, -1, -1, -1`` (boxes with 2 decimals, score with 4).
    The file is flushed after every :meth:`write`, so the rows of finished frames survive a crash.
    Parent folders are created. Use as a context manager (or call :meth:`close`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder, expected a results file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = open(self.path, "w", encoding="utf-8", newline="\n")
        self.rows_written = 0

    def write(self, frame_index: int, tracks: Tracks) -> None:
        """Append the ``tracks`` of 0-based ``frame_index``."""
        if self._file is None:
            raise ValueError(f"MotResultWriter: {self.path} is closed")
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
            raise ValueError(f"MotResultWriter: frame_index must be an integer >= 0 (0-based), got {frame_index!r}")
        if not isinstance(tracks, Tracks):
            raise TypeError(f"MotResultWriter.write: expected Tracks, got {type(tracks).__name__}")
        if len(tracks):
            xywh = tracks.xywh.detach().cpu().double().numpy()
            scores = tracks.scores.detach().cpu().double().numpy()
            ids = tracks.ids.detach().cpu().numpy()
            frame = int(frame_index) + 1
            self._file.write(
                "".join(
                    f"{frame},{int(i) + 1},{b[0]:.2f},{b[1]:.2f},{b[2]:.2f},{b[3]:.2f},{s:.4f},-1,-1,-1\n"
                    for i, b, s in zip(ids, xywh, scores)
                )
            )
            self.rows_written += len(tracks)
        self._file.flush()

    def close(self) -> None:
        """Close the file. Idempotent."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> MotResultWriter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
