"""Evaluation: HOTA / CLEAR / Identity (through TrackEval's metric classes) and TETA.

All ratios are fractions in ``[0, 1]`` (MOTA may be negative); counts are ints.
:func:`masa.eval.report.format_table` renders fractions as percentages. ``docs/eval.md`` describes
the metrics and the reference values the tests pin.
"""

from masa.eval.common import COMBINED, METRIC_FAMILIES, EvalResult, FrameBoxes
from masa.eval.mot_metrics import BENCHMARKS, evaluate_mot, load_mot_file
from masa.eval.report import format_table, to_json
from masa.eval.teta import TETA_MODES, compute_teta

__all__ = [
    "BENCHMARKS",
    "COMBINED",
    "METRIC_FAMILIES",
    "TETA_MODES",
    "EvalResult",
    "FrameBoxes",
    "compute_teta",
    "evaluate_mot",
    "format_table",
    "load_mot_file",
    "to_json",
]
