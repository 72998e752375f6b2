"""Checks of the trackers' inputs: the arguments of one ``update()`` call and the config fields.

Everything here raises a ``ValueError`` (``TypeError`` for a wrong container type) with a message
that names the offending value; nothing here changes tracker state, so a failed call leaves the
tracker as it was.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

from masa.structures import Detections

__all__ = ["check_frame_input", "check_tracker_config", "check_finite", "check_int"]


def check_frame_input(
    detections: Detections,
    frame_index: int,
    *,
    last_frame_index: int | None,
    embedding_dim: int | None,
) -> tuple[int, Tensor | None]:
    """Validate one ``update()`` call; return ``(frame_index as int, embeddings or None)``.

    Args:
        detections: the frame's ``N`` detections (boxes ``float32[N, 4]`` xyxy pixels).
        frame_index: the 0-based frame index given by the caller.
        last_frame_index: the frame index of the previous call in this video, ``None`` after a reset.
        embedding_dim: the embedding dimension ``D`` seen earlier in this video, ``None`` if none yet.

    ``embeddings`` is ``float32[N, D]`` on the device of ``detections.boxes``; it is ``None`` only
    for an empty frame given without embeddings (allowed: nothing is embedded when nothing is
    detected). Raises ``ValueError`` when ``frame_index`` is not a non-negative integer or goes
    backwards, when embeddings are missing or not finite, or when ``D`` differs from
    ``embedding_dim``; ``TypeError`` when ``detections`` is not a ``Detections``.
    """
    if not isinstance(detections, Detections):
        raise TypeError(f"update() expects masa.structures.Detections, got {type(detections).__name__}")
    if isinstance(frame_index, bool):
        raise ValueError(f"frame_index must be an integer, got {frame_index!r}")
    try:
        frame = operator.index(frame_index)
    except TypeError:
        raise ValueError(f"frame_index must be an integer, got {frame_index!r}") from None
    if frame < 0:
        raise ValueError(f"frame_index must be >= 0 (0-based), got {frame}")
    if last_frame_index is not None and frame < last_frame_index:
        raise ValueError(
            f"frame_index went backwards: got {frame} after {last_frame_index}; "
            "call reset() before starting a new video"
        )
    embeddings = detections.embeddings
    if embeddings is None:
        if len(detections) == 0:
            return frame, None
        raise ValueError(
            f"detections have no embeddings: the tracker matches by appearance and needs "
            f"Detections.embeddings as float32[N={len(detections)}, D]"
        )
    if embedding_dim is not None and embeddings.shape[1] != embedding_dim:
        raise ValueError(
            f"embedding dimension changed mid-video: got D={embeddings.shape[1]}, the tracker holds D={embedding_dim}; "
            "call reset() before switching embedding models"
        )
    if not bool(torch.isfinite(embeddings).all()):
        bad = int((~torch.isfinite(embeddings)).any(dim=1).nonzero()[0])
        raise ValueError(f"detections.embeddings: row {bad} is not finite")
    return frame, embeddings.to(detections.boxes.device)


def check_tracker_config(config: Any, extra_thresholds: Iterable[str] = ()) -> None:
    """The checks every tracker config needs, for the fields both configs have.

    ``init_score_thresh``, ``obj_score_thresh``, ``match_score_thresh`` and the fields named in
    ``extra_thresholds`` must be finite numbers; ``match_score_thresh`` must be ``>= 0``;
    ``memory_frames`` an integer ``>= 1``; ``momentum`` (weight of the new embedding) in ``(0, 1]``.
    """
    for name in ("init_score_thresh", "obj_score_thresh", "match_score_thresh", *extra_thresholds):
        check_finite(name, getattr(config, name))
    if config.match_score_thresh < 0:
        # A track taken by a detection has its score zeroed for the others: with a negative
        # threshold that zero would still match and hand the same id out twice.
        raise ValueError(f"match_score_thresh must be >= 0, got {config.match_score_thresh}")
    check_int("memory_frames", config.memory_frames, 1)
    check_finite("momentum", config.momentum)
    if not 0 < config.momentum <= 1:
        raise ValueError(f"momentum (weight of the new embedding) must be in (0, 1], got {config.momentum}")


def check_finite(name: str, value: float) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite real number (``bool`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


def check_int(name: str, value: int, minimum: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an integer ``>= minimum`` (``bool`` is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
