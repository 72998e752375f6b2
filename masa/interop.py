"""Optional conversion to and from ``supervision.Detections`` (``pip install masa-tracker[supervision]``).

Kept out of the containers so that ``masa.structures`` has no optional dependency.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from masa.structures import Detections, Tracks

__all__ = ["to_supervision", "from_supervision"]


def _supervision() -> Any:
    try:
        import supervision
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "supervision is not installed: pip install 'masa-tracker[supervision]' (or pip install supervision)"
        ) from exc
    return supervision


def to_supervision(instances: Detections | Tracks) -> Any:
    """A ``supervision.Detections`` with ``xyxy``, ``confidence``, ``class_id``, ``mask``, ``data``.

    For :class:`Tracks`, ``tracker_id`` holds the track ids and ``data["det_index"]`` the input rows.
    Embeddings go to ``data["embedding"]``.
    """
    sv = _supervision()
    data = {k: (v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)) for k, v in instances.data.items()}
    if instances.embeddings is not None:
        data["embedding"] = instances.embeddings.cpu().numpy()
    tracker_id = None
    if isinstance(instances, Tracks):
        tracker_id = instances.ids.cpu().numpy()
        data["det_index"] = instances.det_index.cpu().numpy()
    return sv.Detections(
        xyxy=instances.boxes.cpu().numpy().astype(np.float32),
        mask=None if instances.masks is None else instances.masks.cpu().numpy(),
        confidence=instances.scores.cpu().numpy(),
        class_id=instances.labels.cpu().numpy(),
        tracker_id=tracker_id,
        data=data,
    )


def from_supervision(detections: Any) -> Detections:
    """:class:`Detections` from a ``supervision.Detections`` (missing confidence -> 1, class -> 0).

    ``data["embedding"]`` (if present) becomes ``embeddings``; other data columns pass through.
    """
    n = len(detections.xyxy)
    data = dict(detections.data or {})
    embeddings = data.pop("embedding", None)
    return Detections(
        boxes=np.asarray(detections.xyxy, dtype=np.float32).reshape(n, 4),
        scores=np.ones(n, np.float32) if detections.confidence is None else detections.confidence,
        labels=np.zeros(n, np.int64) if detections.class_id is None else detections.class_id,
        masks=detections.mask,
        embeddings=embeddings,
        data={k: np.asarray(v) for k, v in data.items()},
    )
