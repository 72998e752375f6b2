"""JSON detections input and streamed JSON tracking results (COCO-results / TAO style).

Both readers, :func:`read_json_detections` (``masa track --detections``) and
:func:`read_json_tracks` (``masa eval``), read a file the same way: a JSON list of records, or an
object holding it under ``"detections"`` (or ``"annotations"``)::

    [{"image_id": 1, "bbox": [x, y, w, h], "score": 0.9, "category_id": 3, "anything": ...}, ...]

Fields every record is checked for (one validation for both readers):

* ``"frame"`` or ``"image_id"``: the **1-based** frame number, an integer >= 1 (``"frame"`` wins
  when both are present). :func:`read_json_detections` returns dicts keyed by the **0-based**
  frame index ``frame - 1``.
* ``"bbox"``: ``[x, y, w, h]`` in pixels (top-left corner and size), 4 finite numbers. Files hold
  ``xywh``; :class:`~masa.structures.Detections` hold ``xyxy``.
* ``"score"``: optional finite number, default ``1``. ``"category_id"``: optional integer label
  (default ``0`` for detections, ``-1``, MOTChallenge's "unknown", for tracks).
* ``"track_id"``: an integer, required by :func:`read_json_tracks` only.

A list cut short by a killed writer (no closing ``]``, see :class:`JsonResultWriter`) is read up
to its last complete record, with one ``RuntimeWarning``. Errors are
:class:`~masa.io.errors.InputError` (a ``ValueError``) in the format of every text reader of
:mod:`masa.io`, naming the file and the 1-based line where the faulty record starts::

    detections.json:3: bbox is [1, 2]; expected 4 finite numbers [x, y, w, h] (pixels)
    detections.json:3: invalid JSON: Expecting ',' delimiter (column 22); expected a JSON list of records ...

Detections (:func:`read_json_detections`): records with ``w <= 0`` or ``h <= 0`` are skipped
with one warning naming their lines (as :func:`masa.io.mot.read_mot_detections` does). Every
other key becomes a ``data`` pass-through column (a list; ``None`` for records without that key;
the ``"image_id"`` of a record that also has ``"frame"`` is kept there too), and
``data["record"]`` holds each row's **0-based** record position in the file, so output maps back
to the input. ``"record"`` is therefore reserved.

Results (:class:`JsonResultWriter`) are a JSON list of
``{"video_id", "image_id": frame index + 1, "track_id": id + 1, "bbox": [x, y, w, h], "score",
"category_id": label}`` records (plus ``"video_name"`` and the tracks' ``data`` columns when
present), streamed to disk frame by frame: ``[`` on open, one record per line, ``]`` on close.
The ``with`` block closes the list also when an exception escapes, so the file is valid JSON; a
file cut short by a killed process is still read by :func:`read_json_records`,
:func:`read_json_detections` and :func:`read_json_tracks` (which reads such results back for
``masa eval``).
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple, TextIO

import numpy as np
import torch

from masa.io.errors import InputError, require_file, short_repr
from masa.io.mot import MotRows
from masa.structures import Detections, Tracks

__all__ = ["JsonResultWriter", "read_json_detections", "read_json_records", "read_json_tracks", "write_json_detections"]

_STANDARD_KEYS = ("frame", "image_id", "bbox", "score", "category_id")
_RESULT_KEYS = ("video_id", "video_name", "image_id", "track_id", "bbox", "score", "category_id")
_BOOKKEEPING = ("line", "record")
_LIST_KEYS = ("detections", "annotations")  # the record list of an object, in order of preference
_DETECTION_FORMAT = '{"image_id", "bbox", ...}'
_TRACK_FORMAT = '{"image_id", "track_id", "bbox", ...}'


# ---------------------------------------------------------------------------------------------
# reading: one JSON parser (records + the line each starts on) ...
# ---------------------------------------------------------------------------------------------


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _scan_list(text: str, i: int) -> tuple[list[Any], list[int], int, bool]:
    """Decode the JSON list starting at ``text[i] == "["`` record by record.

    Returns ``(records, start offsets, end offset, closed)``; ``closed`` is False when the list stops
    early (a syntax error, or a file cut short: then ``end`` is just after the last complete record).
    """
    decoder = json.JSONDecoder()
    records: list[Any] = []
    starts: list[int] = []
    i = _skip_ws(text, i + 1)
    end = i
    if text[i : i + 1] == "]":
        return records, starts, i + 1, True
    while True:
        try:
            record, j = decoder.raw_decode(text, i)
        except json.JSONDecodeError:
            return records, starts, end, False
        records.append(record)
        starts.append(i)
        end = j
        i = _skip_ws(text, j)
        if text[i : i + 1] == "]":
            return records, starts, i + 1, True
        if text[i : i + 1] != ",":
            return records, starts, end, False
        i = _skip_ws(text, i + 1)


def _scan_object_list(text: str, i: int, key: str) -> tuple[list[Any], list[int]]:
    """The records and offsets of the list under ``key`` of the (valid) JSON object at ``text[i] == "{"``.

    A key given twice counts with its last value, as in :func:`json.loads`.
    """
    decoder = json.JSONDecoder()
    found: tuple[list[Any], list[int]] = ([], [])
    i = _skip_ws(text, i + 1)
    while text[i : i + 1] == '"':
        name, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, _skip_ws(text, i) + 1)  # past ':'
        if name == key and text[i : i + 1] == "[":
            records, starts, i, _ = _scan_list(text, i)
            found = (records, starts)
        else:
            _, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, i)
        if text[i : i + 1] == ",":
            i = _skip_ws(text, i + 1)
    return found


def _line_numbers(text: str, offsets: list[int]) -> np.ndarray:
    """1-based line of each of the increasing character ``offsets`` of ``text``."""
    lines = np.zeros(len(offsets), dtype=np.int64)
    line, previous = 1, 0
    for k, offset in enumerate(offsets):  # offsets increase: count each newline once
        line += text.count("\n", previous, offset)
        lines[k], previous = line, offset
    return lines


def _json_kind(value: Any) -> str:
    """``value`` for an error message, with its JSON type: ``a number (3)``, ``an object with keys [...]``."""
    if isinstance(value, dict):
        return f"an object with keys {short_repr(sorted(map(str, value))[:10])}"
    kind = ("a list" if isinstance(value, list) else "a string" if isinstance(value, str)
            else "a boolean" if isinstance(value, bool) else "null" if value is None else "a number")  # fmt: skip
    return kind if value is None else f"{kind} ({short_repr(value)})"


def _read_record_list(path: str | Path, what: str, record_format: str) -> tuple[list[Any], np.ndarray]:
    """Read a JSON detections / results file into ``(records, 1-based start line of each record)``.

    ``what`` names the file in a not-found error and ``record_format`` the records in the other
    errors (``{"image_id", "bbox", ...}``). Accepts a list, or an object with a ``"detections"`` or
    ``"annotations"`` list (``"detections"`` wins when both are lists). A list whose closing ``]``
    is missing, followed by nothing but white space and commas (a writer killed mid-run), is read
    up to its last complete record with one ``RuntimeWarning``; any other syntax error is an
    :class:`~masa.io.errors.InputError` ``<file>:<line>: invalid JSON: ...; expected ...``.
    Records are returned as decoded, not validated (see :func:`_check_record`).
    """
    path = require_file(path, what)
    expected = f'a JSON list of records {record_format}, or an object with a "detections" or "annotations" list'
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError.at(path, None, "cannot decode as UTF-8", expected) from None
    top = _skip_ws(text, 0)
    if text[top : top + 1] == "[":  # the writers' format: scan it once, record by record
        records, starts, end, closed = _scan_list(text, top)
        rest = text[end:].strip(" \t\r\n")
        if closed and not rest:
            return records, _line_numbers(text, starts)
        if not closed and not rest.strip(" \t\r\n,"):
            warnings.warn(
                f"{path}: the JSON list is not closed (the writer was interrupted?); read {len(records)} complete records",
                RuntimeWarning,
                stacklevel=3,
            )
            return records, _line_numbers(text, starts)
    try:  # an object holding the list, or a syntax error to report
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError.at(path, exc.lineno, f"invalid JSON: {exc.msg} (column {exc.colno})", expected) from None
    top_line = 1 + text.count("\n", 0, top)
    if isinstance(content, list):  # not reached: a valid list was returned above
        records, starts = _scan_list(text, top)[:2]
    elif isinstance(content, dict) and any(isinstance(content.get(key), list) for key in _LIST_KEYS):
        key = next(key for key in _LIST_KEYS if isinstance(content.get(key), list))
        records, starts = _scan_object_list(text, top, key)
    else:
        raise InputError.at(path, top_line, f"the file holds {_json_kind(content)}", expected)
    return records, _line_numbers(text, starts)


def read_json_records(path: str | Path) -> list[Any]:
    """The list of records of a JSON detections / results file, as decoded (see the module docstring).

    Accepts a list, or an object with a ``"detections"`` or ``"annotations"`` list. A list whose
    closing ``]`` is missing (a writer killed mid-run) is read up to its last complete record,
    with a warning. The records are not validated: :func:`read_json_detections` and
    :func:`read_json_tracks` read the same files and check them.
    """
    return _read_record_list(path, "JSON file", _DETECTION_FORMAT)[0]


# ---------------------------------------------------------------------------------------------
# ... one validation of the fields every record has ...
# ---------------------------------------------------------------------------------------------


class _Record(NamedTuple):
    """The checked standard fields of one record."""

    frame: int  # 1-based, as in the file
    track_id: int | None  # as in the file (None when not asked for)
    bbox: list[float]  # [x, y, w, h] in pixels, as in the file
    score: float
    label: int
    frame_key: str  # "frame" or "image_id": the key the frame number was read from


_FLOAT_MAX = sys.float_info.max
_INT_LIMIT = 2**63  # integers go to int64 tensors / float64 rows


def _is_finite(value: Any) -> bool:
    """A finite JSON number (``int`` convertible to ``float``, or ``float``); not a bool."""
    kind = type(value)
    return (kind is float and math.isfinite(value)) or (kind is int and -_FLOAT_MAX <= value <= _FLOAT_MAX)


def _is_integer(value: Any) -> bool:
    """A JSON integer (``3`` or ``3.0``) that fits in int64; not a bool."""
    kind = type(value)
    return (kind is int or (kind is float and value.is_integer())) and -_INT_LIMIT < value < _INT_LIMIT


def _check_record(path: Path, line: int, record: Any, *, track_id: bool, default_label: int) -> _Record:
    """Check one record's standard fields (see the module docstring) and return them.

    ``track_id``: the record must have an integer ``"track_id"`` (results) or its track id is not
    read (detections). Raises :class:`~masa.io.errors.InputError` ``<path>:<line>: <key> is <value>;
    expected <what>`` naming the first bad field (a missing key reads as ``None``).
    """
    if not isinstance(record, dict):
        keys = '"image_id", "track_id" and "bbox"' if track_id else '"image_id" and "bbox"'
        raise InputError.at(path, line, f"record is {short_repr(record)}", f"an object with {keys}")
    frame_key = "frame" if "frame" in record else "image_id"
    frame = record.get(frame_key)
    if not _is_integer(frame) or frame < 1:
        hint = ' (the record has neither "image_id" nor "frame")' if frame_key not in record else ""
        raise InputError.at(path, line, f"{frame_key} is {short_repr(frame)}{hint}", "an integer >= 1 (the 1-based frame number)")
    track = None
    if track_id:
        track = record.get("track_id")
        if not _is_integer(track):
            hint = " (a detections file has no track ids)" if track is None else ""
            raise InputError.at(path, line, f"track_id is {short_repr(track)}{hint}", "an integer track id")
        track = int(track)
    bbox = record.get("bbox")
    if type(bbox) is not list or len(bbox) != 4 or not all(map(_is_finite, bbox)):
        hint = ' (the record has no "bbox")' if "bbox" not in record else ""
        raise InputError.at(path, line, f"bbox is {short_repr(bbox)}{hint}", "4 finite numbers [x, y, w, h] (pixels)")
    score = record.get("score", 1.0)
    if not _is_finite(score):
        raise InputError.at(path, line, f"score is {short_repr(score)}", "a finite number")
    label = record.get("category_id", default_label)
    if not _is_integer(label):
        raise InputError.at(path, line, f"category_id is {short_repr(label)}", "an integer")
    return _Record(int(frame), track, [float(v) for v in bbox], float(score), int(label), frame_key)


# ---------------------------------------------------------------------------------------------
# ... and the two readers
# ---------------------------------------------------------------------------------------------


def read_json_detections(path: str | Path) -> dict[int, Detections]:
    """Read JSON detections as ``{0-based frame index: Detections}`` (sorted by frame).

    Records: ``{"image_id" (or "frame"): 1-based frame, "bbox": [x, y, w, h] (pixels), "score",
    "category_id", ...}`` (see the module docstring); boxes are returned as ``xyxy`` ``float32``,
    other keys as ``data`` pass-through columns, and ``data["record"]`` (``int64``) holds each row's
    0-based record position. Records with ``w <= 0`` or ``h <= 0`` are skipped with one
    ``RuntimeWarning`` naming their lines. Errors are :class:`~masa.io.errors.InputError`
    ``<file>:<line>: <what is wrong>; expected <what>``.
    """
    path = Path(path)
    records, lines = _read_record_list(path, "JSON detections file", _DETECTION_FORMAT)
    parsed: list[tuple[_Record, int]] = []
    extras: list[dict[str, Any]] = []
    extra_keys: dict[str, None] = {}
    no_area: list[int] = []
    for number, (record, line) in enumerate(zip(records, lines.tolist())):
        checked = _check_record(path, line, record, track_id=False, default_label=0)
        if checked.bbox[2] <= 0 or checked.bbox[3] <= 0:
            no_area.append(line)
            continue
        extra = {k: v for k, v in record.items() if k not in _STANDARD_KEYS}
        if checked.frame_key == "frame" and "image_id" in record:
            extra["image_id"] = record["image_id"]
        extra_keys.update(dict.fromkeys(extra))
        extras.append(extra)
        parsed.append((checked, number))
    if no_area:
        shown = ", ".join(map(str, no_area[:5])) + (", ..." if len(no_area) > 5 else "")
        warnings.warn(
            f"{path}: skipped {len(no_area)} record(s) with width or height <= 0 (line {shown})",
            RuntimeWarning,
            stacklevel=2,
        )
    extra_keys.pop("record", None)
    by_frame: dict[int, list[int]] = {}
    for row, (checked, _) in enumerate(parsed):
        by_frame.setdefault(checked.frame - 1, []).append(row)
    result: dict[int, Detections] = {}
    for index in sorted(by_frame):
        rows = by_frame[index]
        boxes = np.asarray([parsed[r][0].bbox for r in rows], dtype=np.float64)
        boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
        data: dict[str, Any] = {key: [extras[r].get(key) for r in rows] for key in extra_keys}
        data["record"] = np.asarray([parsed[r][1] for r in rows], dtype=np.int64)
        result[index] = Detections(
            boxes=torch.from_numpy(boxes.astype(np.float32)),
            scores=torch.tensor([parsed[r][0].score for r in rows], dtype=torch.float32),
            labels=torch.tensor([parsed[r][0].label for r in rows], dtype=torch.int64),
            data=data,
        )
    return result


def read_json_tracks(path: str | Path) -> MotRows:
    """Read tracking results in the JSON format :class:`JsonResultWriter` writes, as MOTChallenge rows.

    Input: a list of records (or an object with a ``"detections"`` / ``"annotations"`` list)
    ``{"image_id" (or "frame"): 1-based frame, "track_id": int, "bbox": [x, y, w, h], "score",
    "category_id", ...}`` of **one** sequence (records naming more than one ``video_id`` /
    ``video_name`` are an error). A list cut short by a killed writer is read up to its last complete
    record, with a warning.

    Returns :class:`~masa.io.mot.MotRows` with ``rows float64[K, 9]`` = ``frame (1-based), track_id,
    x, y, w, h, score (default 1), category_id (default -1), -1`` (the MOTChallenge results layout,
    class in column 8; ids as in the file) and ``lines`` = the 1-based line where each record starts.
    Boxes with ``w <= 0`` or ``h <= 0`` are kept (the caller decides, see :mod:`masa.io.mot`). Errors
    are :class:`~masa.io.errors.InputError` ``<file>:<line>: <what is wrong>; expected <what>``.
    """
    path = Path(path)
    records, lines = _read_record_list(path, "JSON results file", _TRACK_FORMAT)
    rows = np.full((len(records), 9), -1.0)
    videos: dict[str, set[Any]] = {"video_id": set(), "video_name": set()}
    for k, (record, line) in enumerate(zip(records, lines.tolist())):
        checked = _check_record(path, line, record, track_id=True, default_label=-1)
        for key, seen in videos.items():
            if key in record:
                seen.add(record[key])
                if len(seen) > 1:
                    raise InputError.at(path, line, f"a second {key} {short_repr(record[key])}", "the records of one sequence per file")
        rows[k, :8] = [checked.frame, checked.track_id, *checked.bbox, checked.score, checked.label]
    return MotRows(rows, lines, str(path))


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, torch.Tensor)):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _column_values(column: Any) -> list[Any]:
    if isinstance(column, torch.Tensor):
        return column.detach().cpu().tolist()
    if isinstance(column, np.ndarray):
        return column.tolist()
    return list(column)


class _JsonListWriter:
    """Stream a JSON list to disk: ``[`` on open, records separated by commas, ``]`` on close."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"{self.path}: is a folder, expected a JSON file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: TextIO | None = open(self.path, "w", encoding="utf-8", newline="\n")
        self._file.write("[")
        self._file.flush()
        self.records_written = 0

    def _write_records(self, records: Iterable[dict[str, Any]]) -> None:
        if self._file is None:
            raise ValueError(f"{type(self).__name__}: {self.path} is closed")
        parts = []
        for record in records:
            sep = "\n" if self.records_written == 0 else ",\n"
            parts.append(sep + json.dumps(record, default=_json_default))
            self.records_written += 1
        self._file.write("".join(parts))
        self._file.flush()

    def close(self) -> None:
        """Write the closing ``]`` and close the file. Idempotent."""
        if self._file is not None:
            try:
                self._file.write("\n]\n")
            finally:
                self._file.close()
                self._file = None

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _rows(instances: Detections, reserved: tuple[str, ...], include_data: bool, exclude: tuple[str, ...]):
    """``(bbox, score, label, extras)`` per row, with python types."""
    xywh = instances.xywh.detach().cpu().double().numpy()
    scores = instances.scores.detach().cpu().tolist()
    labels = instances.labels.detach().cpu().tolist()
    columns = {}
    if include_data:
        columns = {
            k: _column_values(v) for k, v in instances.data.items() if k not in reserved and k not in exclude
        }
    for i in range(len(instances)):
        bbox = [round(float(v), 2) for v in xywh[i]]
        yield i, bbox, round(float(scores[i]), 6), int(labels[i]), {k: col[i] for k, col in columns.items()}


class JsonResultWriter(_JsonListWriter):
    """Stream tracking results as a TAO / COCO-VID style JSON list (see the module docstring).

    ``write(frame_index, tracks)`` appends one record per track with ``image_id = frame_index + 1``
    and ``track_id = id + 1`` (like :class:`~masa.io.mot.MotResultWriter`), and flushes.
    ``include_data``: also write the tracks' ``data`` columns as extra keys (a column named like
    a standard key is left out).
    """

    def __init__(
        self, path: str | Path, video_id: int = 1, video_name: str | None = None, *, include_data: bool = True
    ) -> None:
        super().__init__(path)
        self.video_id = int(video_id)
        self.video_name = video_name
        self.include_data = include_data

    def write(self, frame_index: int, tracks: Tracks) -> None:
        """Append the ``tracks`` of 0-based ``frame_index``."""
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or frame_index < 0:
            raise ValueError(f"JsonResultWriter: frame_index must be an integer >= 0 (0-based), got {frame_index!r}")
        if not isinstance(tracks, Tracks):
            raise TypeError(f"JsonResultWriter.write: expected Tracks, got {type(tracks).__name__}")
        ids = tracks.ids.detach().cpu().tolist()
        records = []
        for i, bbox, score, label, extra in _rows(tracks, _RESULT_KEYS, self.include_data, ()):
            record: dict[str, Any] = {"video_id": self.video_id}
            if self.video_name is not None:
                record["video_name"] = self.video_name
            record.update(
                image_id=int(frame_index) + 1, track_id=int(ids[i]) + 1, bbox=bbox, score=score, category_id=label
            )
            record.update(extra)
            records.append(record)
        self._write_records(records)

    def __enter__(self) -> JsonResultWriter:
        return self


def write_json_detections(
    path: str | Path,
    dets_by_frame: Mapping[int, Detections],
    *,
    exclude: Iterable[str] = _BOOKKEEPING,
) -> int:
    """Write ``{0-based frame index: Detections}`` in the format :func:`read_json_detections` reads.

    Records ``{"image_id": index + 1, "bbox": [x, y, w, h], "score", "category_id", **data}`` in
    frame order; ``data`` columns are written as extra keys except ``exclude`` (by default the
    ``"line"`` / ``"record"`` bookkeeping columns of the readers). Returns the number of records.
    """
    exclude = tuple(exclude)
    with _JsonListWriter(path) as writer:
        for index in sorted(dets_by_frame):
            dets = dets_by_frame[index]
            records = []
            for _, bbox, score, label, extra in _rows(dets, _STANDARD_KEYS, True, exclude):
                record = {"image_id": int(index) + 1, "bbox": bbox, "score": score, "category_id": label}
                record.update(extra)
                records.append(record)
            writer._write_records(records)
        return writer.records_written
