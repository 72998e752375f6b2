"""MOTChallenge text files: ``seqinfo.ini``, ``det.txt``, ``gt.txt`` and tracker results.

Row format (comma-separated; whitespace-separated rows are accepted too)::

    frame, id, x, y, w, h, score/conf, [class, visibility | x3d, y3d, z3d]

* ``frame`` is **1-based** in files and **0-based** in the dicts returned by
  :func:`read_mot_detections` / :func:`read_mot_tracks` (``index = frame - 1``);
  :class:`MotResultWriter` writes ``frame = index + 1``.
* Boxes are ``x, y, w, h`` (top-left corner and size, pixels) in files and ``xyxy`` ``float32``
  in :class:`~masa.structures.Detections` / :class:`~masa.structures.Tracks`.
* Track ids: MOTChallenge ids are ``>= 1`` and ours are ``>= 0``, so :class:`MotResultWriter` writes
  ``id + 1`` and :func:`read_mot_tracks` returns ``file id - 1`` (the JSON writer writes
  ``track_id = id + 1`` too, and draw labels show ``id + 1``: one id per object everywhere a user looks).

Parsing rules
-------------
One parser, :func:`read_mot_rows`, reads every MOTChallenge text file (``masa track``'s detections,
``masa eval``'s ground truth and results); errors are :class:`~masa.io.errors.InputError` (a
``ValueError``) formatted ``<file>:<line>: <what is wrong>; expected <what>``:

* UTF-8 text (a BOM is accepted); blank lines and lines starting with ``#`` are skipped;
* fields are separated by commas and/or whitespace, a trailing comma is ignored;
* a row needs at least the required columns (``frame,id,x,y,w,h``; detections also ``score``);
  rows shorter than the longest row of the file are padded with ``-1`` (MOTChallenge's "unknown");
* every field must be a finite number (``nan`` / ``inf`` are errors);
* ``frame`` must be an integer >= 1 and ``id`` an integer (detection files use ``-1``);
* a box with ``w <= 0`` or ``h <= 0`` is *valid syntax*. Readers that feed the tracker
  (:func:`read_mot_detections`, :func:`read_mot_tracks`) skip such rows with one warning per file
  (a box without area cannot be tracked); evaluation keeps them as boxes that overlap nothing
  (IoU 0), as TrackEval does, so such a gt row is a miss.

:func:`check_unique_ids` adds the rule for files with track ids (gt, results): an id appears at most
once per frame. Every row returned by the readers keeps its file line number (``data["line"]``).
"""

from __future__ import annotations

import configparser
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
import torch

from masa.io.errors import InputError, InputNotFoundError, require_file, short_number, short_repr
from masa.ops.boxes import xywh_to_xyxy
from masa.structures import Detections, Tracks

__all__ = [
    "MOT_COLUMNS",
    "MotResultWriter",
    "MotRows",
    "SeqInfo",
    "check_mot_rows",
    "check_unique_ids",
    "detection_frames",
    "read_mot_detections",
    "read_mot_rows",
    "read_mot_tracks",
    "read_seqinfo",
]

#: Names of the MOTChallenge columns (gt / results layout), used in error messages.
MOT_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility")
_TRACK_COLUMNS = MOT_COLUMNS[:6]
_DET_COLUMNS = (*MOT_COLUMNS[:6], "score")
_SPLIT = re.compile(r"\s*,\s*|\s+")


# ---------------------------------------------------------------------------------------------
# seqinfo.ini
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SeqInfo:
    """The ``[Sequence]`` section of a MOTChallenge ``seqinfo.ini``.

    ``name`` defaults to the sequence folder's name, ``im_dir`` to ``"img1"`` and ``im_ext`` to
    ``".jpg"`` (always with a leading dot); the numbers are ``None`` when the key is absent.
    """

    name: str
    im_dir: str = "img1"
    im_ext: str = ".jpg"
    frame_rate: float | None = None
    seq_length: int | None = None
    im_width: int | None = None
    im_height: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields under their ``seqinfo.ini`` names (``frameRate``, ``seqLength``, ...), ``None`` left out."""
        names = {"name": "name", "im_dir": "imDir", "im_ext": "imExt", "frame_rate": "frameRate",
                 "seq_length": "seqLength", "im_width": "imWidth", "im_height": "imHeight"}  # fmt: skip
        return {key: getattr(self, field) for field, key in names.items() if getattr(self, field) is not None}


# lower-case key -> (SeqInfo field, type, the key's MOTChallenge spelling)
_SEQINFO_NUMBERS = {"framerate": ("frame_rate", float, "frameRate"), "seqlength": ("seq_length", int, "seqLength"),
                    "imwidth": ("im_width", int, "imWidth"), "imheight": ("im_height", int, "imHeight")}  # fmt: skip
_SEQINFO_TEXT = {"name": "name", "imdir": "im_dir", "imext": "im_ext"}


def read_seqinfo(path: str | Path) -> SeqInfo:
    """Parse a MOTChallenge ``seqinfo.ini`` (the file, or the sequence folder holding it).

    Keys are matched case-insensitively (``frameRate``, ``seqLength``, ``imWidth``, ``imHeight``,
    ``name``, ``imDir``, ``imExt``); other keys are ignored. Raises
    :class:`~masa.io.errors.InputNotFoundError` when the file is missing and
    :class:`~masa.io.errors.InputError` naming the file, line and key for a malformed file or a value
    that is not a positive number (``frameRate``) / positive integer (the other three numbers), e.g.
    ``seqinfo.ini:3: frameRate is 'fast'; expected a positive number``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "seqinfo.ini"
    if not path.is_file():
        raise InputNotFoundError(f"{path}: seqinfo.ini not found")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError.at(path, None, "cannot decode as UTF-8", "a text file") from None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text, source=str(path))
    except configparser.Error as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError.at(path, getattr(exc, "lineno", None), f"not an INI file ({first})", "a MOTChallenge seqinfo.ini") from None
    section = next((s for s in parser.sections() if s.lower() == "sequence"), None)
    if section is None:
        raise InputError.at(path, None, f"no [Sequence] section (found {parser.sections() or 'none'})", "a MOTChallenge seqinfo.ini")
    lines = text.splitlines()
    fields: dict[str, Any] = {}
    for key, raw in parser.items(section):
        value = raw.strip()
        lowered = key.lower()
        if lowered in _SEQINFO_TEXT:
            fields[_SEQINFO_TEXT[lowered]] = value
        elif lowered in _SEQINFO_NUMBERS:
            field, kind, spelling = _SEQINFO_NUMBERS[lowered]
            try:
                number = float(value)
            except ValueError:
                number = float("nan")
            if not np.isfinite(number) or number <= 0 or (kind is int and not number.is_integer()):
                line = next((i + 1 for i, t in enumerate(lines) if re.match(rf"\s*{re.escape(key)}\s*[=:]", t, re.I)), None)
                expected = "a positive integer" if kind is int else "a positive number"
                raise InputError.at(path, line, f"{spelling} is {short_repr(value)}", expected)
            fields[field] = kind(number)
    if not fields.get("name"):
        fields["name"] = path.resolve().parent.name
    if not fields.get("im_dir"):
        fields.pop("im_dir", None)
    ext = fields.get("im_ext")
    if ext is not None:
        if ext:
            fields["im_ext"] = ext if ext.startswith(".") else "." + ext
        else:
            fields.pop("im_ext")
    return SeqInfo(**fields)


# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------


class MotRows(NamedTuple):
    """Parsed MOTChallenge rows: ``rows float64[K, C]`` (columns as in the file, ``frame`` 1-based,
    boxes ``x, y, w, h``), ``lines int64[K]`` (1-based file lines; for arrays, 1-based row numbers)
    and ``source`` (the file path, or a label such as ``<gt array 'seq'>``), for error messages."""

    rows: np.ndarray
    lines: np.ndarray
    source: str


def _expected_columns(columns: Sequence[str]) -> str:
    return f"at least {len(columns)} numbers ({','.join(columns)})"


def _column_name(columns: Sequence[str], col: int) -> str:
    name = columns[col] if col < len(columns) else (MOT_COLUMNS[col] if col < len(MOT_COLUMNS) else "")
    return f"{name} (column {col + 1})" if name else f"column {col + 1}"


def check_mot_rows(
    rows: np.ndarray, *, source: str, lines: np.ndarray | None = None, columns: Sequence[str] = _TRACK_COLUMNS
) -> MotRows:
    """Apply the value rules of the module docstring to an array of MOTChallenge rows.

    ``rows``: ``[K, C]`` with ``C >= len(columns)`` (an empty array is fine). ``lines``: the 1-based
    line of each row (default: the row numbers ``1..K``). Every value must be finite, ``frame`` an
    integer >= 1, ``id`` an integer. Returns :class:`MotRows` (``float64`` rows, ``int64`` lines);
    raises :class:`~masa.io.errors.InputError` ``<source>:<line>: ...`` for the first bad row.
    """
    array = np.asarray(rows, dtype=np.float64)
    if array.size == 0:
        width = array.shape[1] if array.ndim == 2 else len(columns)
        return MotRows(np.zeros((0, max(width, len(columns)))), np.zeros(0, np.int64), source)
    if array.ndim != 2 or array.shape[1] < len(columns):
        expected = f"MOTChallenge rows [N, >={len(columns)}] ({','.join(columns)})"
        raise InputError.at(source, None, f"an array of shape {array.shape}", expected)
    line_array = np.arange(1, len(array) + 1, dtype=np.int64) if lines is None else np.asarray(lines, dtype=np.int64)
    finite = np.isfinite(array)
    if not finite.all():
        i, col = (int(v) for v in np.argwhere(~finite)[0])
        raise InputError.at(source, line_array[i], f"{_column_name(columns, col)} is {short_number(array[i, col])}", "a finite number")
    frames, ids = array[:, 0], array[:, 1]
    bad = np.flatnonzero((frames < 1) | (frames != np.round(frames)))
    if bad.size:
        i = int(bad[0])
        expected = "an integer >= 1 (MOTChallenge frames are 1-based)"
        raise InputError.at(source, line_array[i], f"frame is {short_number(frames[i])}", expected)
    bad = np.flatnonzero(ids != np.round(ids))
    if bad.size:
        i = int(bad[0])
        raise InputError.at(source, line_array[i], f"id is {short_number(ids[i])}", "an integer")
    return MotRows(array, line_array, source)


def check_unique_ids(parsed: MotRows) -> None:
    """Raise :class:`~masa.io.errors.InputError` when an id appears twice in one frame (gt / results rule)."""
    rows, lines = parsed.rows, parsed.lines
    if len(rows) < 2:
        return
    order = np.lexsort((rows[:, 1], rows[:, 0]))
    key = rows[order, :2]
    dup = np.flatnonzero(np.all(key[1:] == key[:-1], axis=1))
    if dup.size:
        j = int(dup[0])
        first, second = sorted((int(lines[order[j]]), int(lines[order[j + 1]])))
        hint = " (every id is -1: a detection file has no track ids)" if np.all(rows[:, 1] == -1) else ""
        raise InputError.at(
            parsed.source,
            second,
            f"id {short_number(key[j, 1])} appears twice in frame {short_number(key[j, 0])} (also on line {first}){hint}",
            "each track id at most once per frame",
        )


def read_mot_rows(path: str | Path, *, columns: Sequence[str] = _TRACK_COLUMNS) -> MotRows:
    """Parse a MOTChallenge text file into rows and their 1-based line numbers.

    The one parser of every MOTChallenge text file; see the module docstring for the rules.
    ``columns`` names the required leading columns (default ``frame,id,x,y,w,h``; detection files
    add ``score``). Returns :class:`MotRows` with ``rows float64[K, C]``, ``C`` the longest row
    (>= ``len(columns)``; shorter rows padded with ``-1``) and ``lines int64[K]``.
    Raises :class:`~masa.io.errors.InputNotFoundError` for a missing file and
    :class:`~masa.io.errors.InputError` (``<file>:<line>: <what is wrong>; expected <what>``).
    """
    path = require_file(path, "MOTChallenge file")
    source = str(path)
    values: list[list[float]] = []
    numbers: list[int] = []
    try:
        with open(path, encoding="utf-8-sig") as f:
            for number, raw in enumerate(f, start=1):
                text = raw.strip()
                if not text or text.startswith("#"):
                    continue
                fields = [x for x in _SPLIT.split(text) if x != ""]
                if len(fields) < len(columns):
                    what = f"{len(fields)} field{'s' if len(fields) != 1 else ''} ({short_repr(text)})"
                    raise InputError.at(source, number, what, _expected_columns(columns))
                row = []
                for col, field in enumerate(fields):
                    try:
                        row.append(float(field))
                    except ValueError:
                        raise InputError.at(source, number, f"{_column_name(columns, col)} is {short_repr(field)}", "a number") from None
                values.append(row)
                numbers.append(number)
    except UnicodeDecodeError:
        raise InputError.at(source, None, "cannot decode as UTF-8", "a MOTChallenge text file") from None
    width = max([len(columns), *map(len, values)])
    table = np.full((len(values), width), -1.0)
    for i, row in enumerate(values):
        table[i, : len(row)] = row
    return check_mot_rows(table, source=source, lines=np.asarray(numbers, dtype=np.int64), columns=columns)


def _skip_without_area(parsed: MotRows) -> MotRows:
    """Drop rows with ``w <= 0`` or ``h <= 0``, with one warning naming their lines."""
    valid = (parsed.rows[:, 4] > 0) & (parsed.rows[:, 5] > 0)
    if not valid.all():
        bad = parsed.lines[~valid].tolist()
        shown = ", ".join(map(str, bad[:5])) + (", ..." if len(bad) > 5 else "")
        warnings.warn(
            f"{parsed.source}: skipped {len(bad)} row(s) with width or height <= 0 (line {shown})",
            RuntimeWarning,
            stacklevel=3,
        )
    return MotRows(parsed.rows[valid], parsed.lines[valid], parsed.source)


def _by_frame(frames: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(0-based frame index, row indices in file order)`` per frame present, sorted by frame."""
    order = np.argsort(frames, kind="stable")
    uniq, starts = np.unique(frames[order], return_index=True)
    return [(int(f), rows) for f, rows in zip(uniq, np.split(order, starts[1:]))]


def _xywh_to_xyxy(xywh: np.ndarray) -> np.ndarray:
    """File boxes ``(x, y, w, h)`` -> ``float32[N, 4]`` xyxy (summed in float64, then rounded once)."""
    return xywh_to_xyxy(torch.from_numpy(np.asarray(xywh, dtype=np.float64).reshape(-1, 4))).float().numpy()


# ---------------------------------------------------------------------------------------------
# detections
# ---------------------------------------------------------------------------------------------


def read_mot_detections(path: str | Path, *, min_score: float | None = None) -> dict[int, Detections]:
    """Read a MOTChallenge detection file (``det.txt``: ``frame,id,x,y,w,h,score[,...]``).

    Returns ``{0-based frame index: Detections}`` (sorted by frame; frames without rows are absent,
    use :func:`detection_frames`), with ``xyxy`` ``float32`` boxes, ``scores``, labels ``0`` and
    ``data["line"]`` (1-based file line numbers). The id column and columns after ``score`` are
    ignored. ``min_score``: drop rows with ``score < min_score``. Parsing follows the module
    docstring; rows with ``w <= 0`` or ``h <= 0`` are skipped with a warning.
    """
    parsed = _skip_without_area(read_mot_rows(path, columns=_DET_COLUMNS))
    table, lines = parsed.rows, parsed.lines
    if min_score is not None:
        keep = table[:, 6] >= min_score
        table, lines = table[keep], lines[keep]
    result: dict[int, Detections] = {}
    for index, sel in _by_frame(table[:, 0].astype(np.int64) - 1):
        result[index] = Detections(
            boxes=torch.from_numpy(_xywh_to_xyxy(table[sel, 2:6])),
            scores=torch.from_numpy(table[sel, 6].astype(np.float32)),
            labels=torch.zeros(len(sel), dtype=torch.int64),
            data={"line": lines[sel]},
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
    boxes are clipped to the image by :meth:`Detections.clip <masa.structures.Detections.clip>` (boxes entirely outside are dropped).
    """
    dets = dets_by_frame.get(frame_index)
    if dets is None:
        template = next(iter(dets_by_frame.values()), None)
        dets = Detections.empty() if template is None else template[[]]
    if height is not None and width is not None:
        dets = dets.clip(height, width)
    return dets


# ---------------------------------------------------------------------------------------------
# gt / results
# ---------------------------------------------------------------------------------------------


def read_mot_tracks(path: str | Path) -> dict[int, Tracks]:
    """Read a MOTChallenge gt or results file as ``{0-based frame index: Tracks}``.

    ``ids`` are the file ids minus one (file ids must be integers >= 1, see the module docstring),
    ``scores`` the conf column (``1`` when absent), labels ``0``, ``data["line"]`` the file line
    numbers. An id may appear once per frame; rows with ``w <= 0`` or ``h <= 0`` are skipped with a
    warning.
    """
    parsed = read_mot_rows(path)
    bad = np.flatnonzero(parsed.rows[:, 1] < 1)
    if bad.size:
        i = int(bad[0])
        what = f"id is {short_number(parsed.rows[i, 1])}"
        raise InputError.at(parsed.source, parsed.lines[i], what, "an integer >= 1 (MOTChallenge track ids)")
    check_unique_ids(parsed)
    parsed = _skip_without_area(parsed)
    table, lines = parsed.rows, parsed.lines
    scores = table[:, 6] if table.shape[1] > 6 else np.ones(len(table))
    result: dict[int, Tracks] = {}
    for index, sel in _by_frame(table[:, 0].astype(np.int64) - 1):
        result[index] = Tracks(
            boxes=torch.from_numpy(_xywh_to_xyxy(table[sel, 2:6])),
            scores=torch.from_numpy(scores[sel].astype(np.float32)),
            ids=torch.from_numpy(table[sel, 1].astype(np.int64) - 1),
            data={"line": lines[sel]},
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
