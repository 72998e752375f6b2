"""Types shared by the evaluation modules (no metric code here, so nothing imports in a cycle).

:mod:`masa.eval.teta` and :mod:`masa.eval.report` import this module only;
:mod:`masa.eval.mot_metrics` imports it and :mod:`masa.eval.teta`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

__all__ = ["COMBINED", "COUNT_KEYS", "METRIC_FAMILIES", "EvalResult", "FrameBoxes", "is_count_key"]

METRIC_FAMILIES = ("HOTA", "CLEAR", "Identity", "TETA")
#: The key of the all-sequences summary in an :class:`EvalResult`.
COMBINED = "COMBINED"

#: Summary keys holding integer counts (every other key is a fraction, MOTA may be negative).
COUNT_KEYS = frozenset(
    ["TP", "CLR_TP", "FP", "FN", "IDSW", "Frag", "MT", "PT", "ML", "IDTP", "IDFP", "IDFN"]
    + ["num_frames", "num_gt_dets", "num_pred_dets", "num_gt_ids", "num_pred_ids"]
)


def is_count_key(key: str) -> bool:
    """True when ``key`` of a summary is an integer count (not a fraction)."""
    return key in COUNT_KEYS


class FrameBoxes(NamedTuple):
    """The boxes of one frame: ``ids int[N]``, ``boxes float[N, 4]`` as ``(x, y, w, h)`` in pixels
    (top-left corner and size), ``classes int[N]`` (``None``: every box is class 0)."""

    ids: Any
    boxes: Any
    classes: Any = None


@dataclass
class EvalResult:
    """Evaluation output of :func:`masa.eval.evaluate_mot`.

    ``sequences[name]`` and ``combined`` are flat ``{key: float | int}`` summaries (fractions in
    ``[0, 1]``, counts as ``int``); ``result[name]`` indexes a sequence and ``result["COMBINED"]``
    the combination over all sequences. ``per_alpha[name]`` holds the per-threshold curves (HOTA
    family over alpha = 0.05..0.95, TETA LocA/AssocA over 0.00..0.95, TETA ClsA over 0.50..0.95).
    ``teta_mode`` / ``class_aware`` record how TETA was computed (see ``docs/eval.md``).
    """

    benchmark: str
    metrics: tuple[str, ...]
    teta_mode: str = "tao"
    class_aware: bool = False
    sequences: dict[str, dict[str, float | int]] = field(default_factory=dict)
    combined: dict[str, float | int] = field(default_factory=dict)
    per_alpha: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def __getitem__(self, name: str) -> dict[str, float | int]:
        if name == COMBINED:
            return self.combined
        return self.sequences[name]

    @property
    def names(self) -> list[str]:
        """The sequence names, in evaluation order (without ``"COMBINED"``)."""
        return list(self.sequences)
