"""JSON detections input and streamed JSON tracking results (COCO-results / TAO style).

Detections input (:func:`read_json_detections`) is a list of records, or an object holding it
under ``"detections"`` (or ``"annotations"``)::

    [{"image_id": 1, "bbox": [x, y, w, h], "score": 0.9, "category_id": 3, "anything": ...}, ...]

* ``"frame"`` or ``"image_id"``: the **1-based** frame number (``"frame"`` wins when both are
  present; the other one is then kept as a pass-through column). Returned dicts are keyed by the
  0-based frame index ``frame - 1``.
* ``"bbox"``: ``[x, y, w, h]`` in pixels (top-left corner and size), returned as ``xyxy``.
  Records with ``w <= 0`` or ``h <= 0`` are skipped with one warning per file.
* ``"score"``: optional, default ``1``. ``"category_id"``: optional integer label, default ``0``.
* Every other key becomes a ``data`` pass-through column (a list; ``None`` for records without
  that key), and ``data["record"]`` holds each row's 0-based record position in the file, so
  output maps back to the input. ``"record"`` is therefore reserved.
* Errors (:class:`~masa.io.errors.InputError`) name the file and the 0-based record position
  (``detections.json record 12: bbox must be 4 numbers, got [1, 2]``) or, for JSON syntax
  errors, the line and column.

Results (:class:`JsonResultWriter`) are a JSON list of
``{"video_id", "image_id": frame index + 1, "track_id": id + 1, "bbox": [x, y, w, h], "score",
"category_id": label}`` records (plus ``"video_name"`` and the tracks' ``data`` columns when
present), streamed to disk frame by frame: ``[`` on open, one record per line, ``]`` on close.
The ``with`` block closes the list also when an exception escapes, so the file is valid JSON; a
file cut short by a killed process (no closing ``]``) is still read by :func:`read_json_records`.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import torch

from masa.io.errors import InputError, require_file, short_repr
from masa.structures import Detections, Tracks

__all__ = ["JsonResultWriter", "read_json_detections", "read_json_records", "write_json_detections"]

_STANDARD_KEYS = ("frame", "image_id", "bbox", "score", "category_id")
_RESULT_KEYS = ("video_id", "video_name", "image_id", "track_id", "bbox", "score", "category_id")
_BOOKKEEPING = ("line", "record")


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------


def read_json_records(path: str | Path) -> list[Any]:
    """The list of records of a JSON detections / results file (see the module docstring).

    Accepts a list, or an object with a ``"detections"`` or ``"annotations"`` list. A list whose
    closing ``]`` is missing (a writer killed mid-run) is read up to its last complete record,
    with a warning.
    """
    path = require_file(path, "JSON file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file (cannot decode as UTF-8)") from None
    try:
        content = json.loads(text)
    except json.JSONDecodeError as exc:
        content = _repair_truncated_list(text)
        if content is None:
            raise InputError(f"{path} line {exc.lineno} column {exc.colno}: invalid JSON: {exc.msg}") from None
        warnings.warn(
            f"{path}: the JSON list is not closed (the writer was interrupted?); read {len(content)} complete records",
            RuntimeWarning,
            stacklevel=2,
        )
    if isinstance(content, dict):
        for key in ("detections", "annotations"):
            if isinstance(content.get(key), list):
                return content[key]
        raise InputError(
            f"{path}: expected a list of records or an object with a \"detections\" list, "
            f"got an object with keys {sorted(content)[:10]}"
        )
    if not isinstance(content, list):
        raise InputError(f"{path}: expected a list of records, got {type(content).__name__}")
    return content


def _repair_truncated_list(text: str) -> list[Any] | None:
    body = text.rstrip()
    if not body.lstrip().startswith("[") or body.endswith("]"):
        return None
    body = body.rstrip(",")
    try:
        content = json.loads(body + "]")
    except json.JSONDecodeError:
        return None
    return content if isinstance(content, list) else None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_json_detections(path: str | Path) -> dict[int, Detections]:
    """Read JSON detections as ``{0-based frame index: Detections}`` (sorted by frame).

    See the module docstring for the record format, pass-through columns and errors.
    """
    path = Path(path)
    records = read_json_records(path)
    parsed: list[tuple[int, list[float], float, int, int]] = []
    extras: list[dict[str, Any]] = []
    extra_keys: dict[str, None] = {}
    bad_size: list[int] = []
    for number, record in enumerate(records):
        where = f"{path} record {number}"
        if not isinstance(record, dict):
            raise InputError(f"{where}: expected an object with \"image_id\" and \"bbox\", got {short_repr(record)}")
        frame_key = "frame" if "frame" in record else "image_id" if "image_id" in record else None
        if frame_key is None:
            raise InputError(f"{where}: missing \"image_id\" or \"frame\" (the 1-based frame number)")
        frame = record[frame_key]
        if not _is_number(frame) or not float(frame).is_integer() or frame < 1:
            raise InputError(f"{where}: {frame_key} must be an integer >= 1 (1-based frame number), got {short_repr(frame)}")
        if "bbox" not in record:
            raise InputError(f"{where}: missing \"bbox\" ([x, y, w, h] in pixels)")
        bbox = record["bbox"]
        if (
            not isinstance(bbox, (list, tuple))
            or len(bbox) != 4
            or not all(_is_number(v) and math.isfinite(v) for v in bbox)
        ):
            raise InputError(f"{where}: bbox must be 4 numbers [x, y, w, h], got {short_repr(bbox)}")
        score = record.get("score", 1.0)
        if not _is_number(score) or not math.isfinite(score):
            raise InputError(f"{where}: score must be a finite number, got {short_repr(score)}")
        label = record.get("category_id", 0)
        if not _is_number(label) or not float(label).is_integer():
            raise InputError(f"{where}: category_id must be an integer, got {short_repr(label)}")
        if bbox[2] <= 0 or bbox[3] <= 0:
            bad_size.append(number)
            continue
        extra = {k: v for k, v in record.items() if k not in _STANDARD_KEYS}
        if frame_key == "frame" and "image_id" in record:
            extra["image_id"] = record["image_id"]
        extra_keys.update(dict.fromkeys(extra))
        extras.append(extra)
        parsed.append((int(frame) - 1, [float(v) for v in bbox], float(score), int(label), number))
    if bad_size:
        shown = ", ".join(map(str, bad_size[:5])) + (", ..." if len(bad_size) > 5 else "")
        warnings.warn(
            f"{path}: skipped {len(bad_size)} record(s) with width or height <= 0 (record {shown})",
            RuntimeWarning,
            stacklevel=2,
        )
    extra_keys.pop("record", None)
    by_frame: dict[int, list[int]] = {}
    for row, item in enumerate(parsed):
        by_frame.setdefault(item[0], []).append(row)
    result: dict[int, Detections] = {}
    for index in sorted(by_frame):
        rows = by_frame[index]
        xywh = np.asarray([parsed[r][1] for r in rows], dtype=np.float64)
        xywh[:, 2:] += xywh[:, :2]
        data: dict[str, Any] = {key: [extras[r].get(key) for r in rows] for key in extra_keys}
        data["record"] = np.asarray([parsed[r][4] for r in rows], dtype=np.int64)
        result[index] = Detections(
            boxes=torch.from_numpy(xywh.astype(np.float32)),
            scores=torch.tensor([parsed[r][2] for r in rows], dtype=torch.float32),
            labels=torch.tensor([parsed[r][3] for r in rows], dtype=torch.int64),
            data=data,
        )
    return result


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
