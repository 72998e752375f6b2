"""Reporting of :class:`masa.eval.common.EvalResult`: aligned text tables and JSON.

Tables show fractions as percentages with one decimal (``0.5264 -> 52.6``) and counts as
integers. JSON keeps the raw fractions (``0.5264``), never percentages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from masa.eval.common import COMBINED, METRIC_FAMILIES, EvalResult, is_count_key

__all__ = ["TABLE_COLUMNS", "JSON_UNITS", "format_table", "to_json"]

#: Columns shown by :func:`format_table` for each metric family.
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "HOTA": ("HOTA", "DetA", "AssA", "LocA"),
    "CLEAR": ("MOTA", "MOTP", "IDSW", "FP", "FN", "Frag", "MT", "ML"),
    "Identity": ("IDF1", "IDP", "IDR"),
    "TETA": ("TETA", "LocA_teta", "AssocA", "ClsA"),
}

JSON_UNITS = "ratios are fractions in [0, 1] (MOTA can be negative), not percentages; counts are integers"


def _columns(result: EvalResult, metrics: Iterable[str] | str | None) -> list[str]:
    if metrics is None:
        metrics = result.metrics
    elif isinstance(metrics, str):
        metrics = [metrics]
    families = {m.lower(): m for m in METRIC_FAMILIES}
    cols: list[str] = []
    for m in metrics:
        fam = families.get(str(m).lower())
        for c in TABLE_COLUMNS[fam] if fam else (str(m),):
            if c not in cols:
                cols.append(c)
    return cols


def _cell(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if is_count_key(key):
        return str(int(value))
    v = float(value)
    if not math.isfinite(v):
        return "-"
    return f"{100.0 * v:.1f}"


def format_table(result: EvalResult, metrics: Iterable[str] | str | None = None) -> str:
    """An aligned text table: one row per sequence plus ``COMBINED``.

    ``metrics`` lists metric families (``"HOTA", "CLEAR", "Identity", "TETA"``; default: the
    evaluated ones) and/or individual summary keys (e.g. ``"IDTP"``). Columns that were not
    computed show ``-``. Fractions are printed as percentages with one decimal, counts as ints.
    """
    cols = _columns(result, metrics)
    rows: list[list[str]] = [["Sequence", *cols]]
    for name, summary in [*result.sequences.items(), (COMBINED, result.combined)]:
        rows.append([name, *(_cell(c, summary.get(c)) for c in cols)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(r[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _clean(summary: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in summary.items():
        if is_count_key(k):
            out[k] = int(v)
        else:
            f = float(v)
            out[k] = f if math.isfinite(f) else None
    return out


def to_json(result: EvalResult, *, include_curves: bool = False) -> dict[str, Any]:
    """A JSON-serialisable dict::

        {"benchmark": "MOT15", "metrics": ["HOTA", ...], "teta": {"mode": "tao", "class_aware": false},
         "units": "...", "sequences": {name: {key: value}}, "combined": {key: value}}

    Values are fractions (not percent) or ints; NaN/inf become ``None``. With
    ``include_curves`` the per-alpha curves are added under ``"per_alpha"``.
    """
    out: dict[str, Any] = {
        "benchmark": result.benchmark,
        "metrics": list(result.metrics),
        "teta": {"mode": result.teta_mode, "class_aware": result.class_aware},
        "units": JSON_UNITS,
        "sequences": {name: _clean(s) for name, s in result.sequences.items()},
        "combined": _clean(result.combined),
    }
    if include_curves:
        out["per_alpha"] = {
            name: {k: [float(x) for x in v] for k, v in curves.items()} for name, curves in result.per_alpha.items()
        }
    return out
