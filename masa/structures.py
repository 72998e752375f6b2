"""Typed containers for per-frame detections and tracks.

Conventions (the same everywhere outside ``masa.modeling``):

* ``boxes``: ``float32[N, 4]``, ``(x1, y1, x2, y2)`` in absolute pixels of the original frame,
  with ``x2 >= x1`` and ``y2 >= y1``.
* ``scores``: ``float32[N]``; any finite value (the tracker's thresholds are compared with it).
* ``labels``: ``int64[N]`` category ids (``0`` when class-agnostic).
* ``masks``: optional ``bool[N, H, W]`` at frame resolution.
* ``embeddings``: optional ``float32[N, D]`` appearance embeddings.
* ``data``: optional pass-through columns, ``name -> sequence of length N`` (numpy array, tensor
  or list). They follow every indexing and concatenation, so results can carry anything a user
  attached to an input row.

``Tracks`` adds ``ids`` (``int64[N]``, ``>= 0``) and ``det_index`` (``int64[N]``): the row of the
input ``Detections`` each track row came from, so output always maps back to the input.

Containers are immutable dataclasses: indexing and ``cat`` build new objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

import numpy as np
import torch
from torch import Tensor

from masa.ops.boxes import box_centers, clip_boxes, xyxy_to_xywh

__all__ = ["Detections", "Tracks"]

_T = TypeVar("_T", bound="_Instances")
_Index = Tensor | np.ndarray | Sequence[int] | Sequence[bool] | slice | int


def _as_tensor(value: Any, dtype: torch.dtype, name: str) -> Tensor:
    """Convert ``value`` (tensor, array or nested list) to a tensor of ``dtype``."""
    if isinstance(value, Tensor):
        return value.to(dtype)
    try:
        array = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many types here
        raise TypeError(f"{name}: cannot convert {type(value).__name__} to an array: {exc}") from exc
    if array.dtype == object:
        raise TypeError(f"{name}: expected a numeric array, got ragged or non-numeric values")
    return torch.as_tensor(array).to(dtype)


def _index_column(value: Any, index: Tensor) -> Any:
    """Select rows ``index`` (int64 tensor) of a pass-through column, keeping its type."""
    if isinstance(value, Tensor):
        return value[index.to(value.device)]
    if isinstance(value, np.ndarray):
        return value[index.cpu().numpy()]
    return [value[i] for i in index.tolist()]


def _cat_column(values: list[Any], name: str) -> Any:
    if all(isinstance(v, Tensor) for v in values):
        return torch.cat(values)
    if all(isinstance(v, np.ndarray) for v in values):
        return np.concatenate(values)
    if all(isinstance(v, list) for v in values):
        return [x for v in values for x in v]
    kinds = sorted({type(v).__name__ for v in values})
    raise TypeError(f"data[{name!r}]: cannot concatenate columns of different types {kinds}")


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class _Instances:
    """Shared fields and behaviour of :class:`Detections` and :class:`Tracks`."""

    boxes: Tensor
    scores: Tensor | None = None
    labels: Tensor | None = None
    masks: Tensor | None = None
    embeddings: Tensor | None = None
    data: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------

    def __post_init__(self) -> None:
        name = type(self).__name__
        boxes = _as_tensor(self.boxes, torch.float32, f"{name}.boxes")
        if boxes.ndim == 1 and boxes.numel() == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{name}.boxes: expected shape [N, 4] (x1, y1, x2, y2), got {list(boxes.shape)}")
        n = boxes.shape[0]
        if not torch.isfinite(boxes).all():
            bad = int((~torch.isfinite(boxes)).any(dim=1).nonzero()[0])
            raise ValueError(f"{name}.boxes: row {bad} is not finite: {boxes[bad].tolist()}")
        inverted = (boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1])
        if inverted.any():
            bad = int(inverted.nonzero()[0])
            raise ValueError(
                f"{name}.boxes: row {bad} has x2 < x1 or y2 < y1: {boxes[bad].tolist()} (expected xyxy)"
            )
        device = boxes.device
        scores = torch.ones(n, device=device) if self.scores is None else self.scores
        scores = _as_tensor(scores, torch.float32, f"{name}.scores").to(device)
        labels = torch.zeros(n, dtype=torch.int64, device=device) if self.labels is None else self.labels
        labels = _as_tensor(labels, torch.int64, f"{name}.labels").to(device)
        self._check_rows(scores, n, "scores", (n,))
        if not torch.isfinite(scores).all():
            bad = int((~torch.isfinite(scores)).nonzero()[0])
            raise ValueError(f"{name}.scores: row {bad} is not finite ({float(scores[bad])})")
        self._check_rows(labels, n, "labels", (n,))
        masks = self.masks
        if masks is not None:
            masks = _as_tensor(masks, torch.bool, f"{name}.masks")
            if masks.ndim != 3 or masks.shape[0] != n:
                raise ValueError(f"{name}.masks: expected shape [N={n}, H, W], got {list(masks.shape)}")
        embeddings = self.embeddings
        if embeddings is not None:
            embeddings = _as_tensor(embeddings, torch.float32, f"{name}.embeddings")
            if embeddings.ndim != 2 or embeddings.shape[0] != n:
                raise ValueError(f"{name}.embeddings: expected shape [N={n}, D], got {list(embeddings.shape)}")
        data = dict(self.data)
        for key, column in data.items():
            if isinstance(column, tuple):
                column = data[key] = list(column)
            if not isinstance(column, (Tensor, np.ndarray, list)):
                raise TypeError(
                    f"{name}.data[{key!r}]: expected a tensor, numpy array or list of length {n}, "
                    f"got {type(column).__name__}"
                )
            if len(column) != n:
                raise ValueError(f"{name}.data[{key!r}]: expected {n} rows, got {len(column)}")
        for attr, value in (
            ("boxes", boxes),
            ("scores", scores),
            ("labels", labels),
            ("masks", masks),
            ("embeddings", embeddings),
            ("data", data),
        ):
            object.__setattr__(self, attr, value)

    def _check_rows(self, value: Tensor, n: int, attr: str, shape: tuple[int, ...]) -> None:
        if tuple(value.shape) != shape:
            raise ValueError(f"{type(self).__name__}.{attr}: expected shape {list(shape)}, got {list(value.shape)}")

    @classmethod
    def empty(cls: type[_T], *, embedding_dim: int | None = None, mask_size: tuple[int, int] | None = None) -> _T:
        """A container with zero rows (optionally with empty embeddings ``[0, D]`` / masks ``[0, H, W]``)."""
        extra: dict[str, Any] = {}
        if embedding_dim is not None:
            extra["embeddings"] = torch.zeros(0, embedding_dim)
        if mask_size is not None:
            extra["masks"] = torch.zeros(0, *mask_size, dtype=torch.bool)
        return cls(boxes=torch.zeros(0, 4), **cls._empty_extra(), **extra)

    @classmethod
    def _empty_extra(cls) -> dict[str, Any]:
        return {}

    # -- container protocol --------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    def is_empty(self) -> bool:
        return len(self) == 0

    def _row_fields(self) -> list[str]:
        """Names of the tensor fields with one row per instance (optional ones included)."""
        return [f.name for f in fields(self) if f.name != "data"]

    def _normalise_index(self, index: _Index) -> Tensor:
        n = len(self)
        if isinstance(index, int):
            if not -n <= index < n:
                raise IndexError(f"{type(self).__name__}: index {index} out of range for {n} rows")
            return torch.tensor([index % n], dtype=torch.int64)
        if isinstance(index, slice):
            return torch.arange(n, dtype=torch.int64)[index]
        idx = index if isinstance(index, Tensor) else torch.as_tensor(np.asarray(index))
        idx = idx.cpu()
        if idx.dtype == torch.bool:
            if idx.shape != (n,):
                raise IndexError(f"{type(self).__name__}: boolean mask of shape {list(idx.shape)} for {n} rows")
            return idx.nonzero().flatten()
        if idx.numel() == 0:
            return torch.zeros(0, dtype=torch.int64)
        if idx.dtype.is_floating_point or idx.ndim != 1:
            raise IndexError(f"{type(self).__name__}: expected 1-D integer indices or a boolean mask")
        idx = idx.to(torch.int64)
        if (idx >= n).any() or (idx < -n).any():
            raise IndexError(f"{type(self).__name__}: index out of range for {n} rows")
        return idx % max(n, 1)

    def __getitem__(self: _T, index: _Index) -> _T:
        """Rows selected by an int, slice, integer indices or a boolean mask; always a container."""
        idx = self._normalise_index(index)
        values: dict[str, Any] = {}
        for name in self._row_fields():
            value = getattr(self, name)
            values[name] = None if value is None else value[idx.to(value.device)]
        values["data"] = {k: _index_column(v, idx) for k, v in self.data.items()}
        return type(self)(**values)

    @classmethod
    def cat(cls: type[_T], items: Sequence[_T]) -> _T:
        """Concatenate containers row-wise. Optional fields must be present in all or none."""
        items = list(items)
        if not items:
            return cls.empty()
        for item in items:
            if not isinstance(item, cls):
                raise TypeError(f"{cls.__name__}.cat: expected {cls.__name__}, got {type(item).__name__}")
        values: dict[str, Any] = {}
        for name in items[0]._row_fields():
            parts = [getattr(item, name) for item in items]
            present = [p is not None for p in parts]
            if all(present):
                if name == "masks" and len({tuple(p.shape[1:]) for p in parts}) > 1:
                    raise ValueError(f"{cls.__name__}.cat: masks have different sizes")
                if name == "embeddings" and len({p.shape[1] for p in parts}) > 1:
                    raise ValueError(f"{cls.__name__}.cat: embeddings have different dimensions")
                values[name] = torch.cat(parts)
            elif any(present):
                raise ValueError(f"{cls.__name__}.cat: field {name!r} is set on some items and not on others")
            else:
                values[name] = None
        keys = set(items[0].data)
        for item in items[1:]:
            if set(item.data) != keys:
                raise ValueError(f"{cls.__name__}.cat: data columns differ: {sorted(keys)} vs {sorted(item.data)}")
        values["data"] = {k: _cat_column([item.data[k] for item in items], k) for k in items[0].data}
        return cls(**values)

    def replace(self: _T, **changes: Any) -> _T:
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)

    def to(self: _T, device: torch.device | str) -> _T:
        """Move every tensor field (and tensor data columns) to ``device``."""
        values = {
            name: None if getattr(self, name) is None else getattr(self, name).to(device)
            for name in self._row_fields()
        }
        values["data"] = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in self.data.items()}
        return type(self)(**values)

    # -- conversions ---------------------------------------------------------------------------

    @property
    def xywh(self) -> Tensor:
        """Boxes as ``float32[N, 4]`` ``(x, y, w, h)``: top-left corner and size, in pixels."""
        return xyxy_to_xywh(self.boxes)

    @property
    def centers(self) -> Tensor:
        """Box centres ``float32[N, 2]`` ``(cx, cy)`` in pixels."""
        return box_centers(self.boxes)

    def clip(self: _T, height: int, width: int, *, drop_empty: bool = True) -> _T:
        """Boxes clipped to the image ``[0, width] x [0, height]``.

        ``drop_empty``: drop rows whose box has no area left (entirely outside the image); every
        other field and ``data`` column follows the kept rows (so ``data["line"]`` survives).
        """
        if len(self) == 0:
            return self
        boxes = clip_boxes(self.boxes, height, width)
        if not drop_empty:
            return self.replace(boxes=boxes)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        return self[keep].replace(boxes=boxes[keep])

    def __repr__(self) -> str:
        extras = [name for name in ("masks", "embeddings") if getattr(self, name) is not None]
        extras += [f"data[{k!r}]" for k in self.data]
        more = f", with {', '.join(extras)}" if extras else ""
        return f"{type(self).__name__}(n={len(self)}{more})"


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class Detections(_Instances):
    """Detections of one frame. See the module docstring for field shapes and conventions.

    Example::

        dets = Detections(boxes=[[10, 20, 50, 80]], scores=[0.9])
        dets[dets.scores > 0.5]
    """


@dataclass(frozen=True, eq=False, kw_only=True, repr=False)
class Tracks(_Instances):
    """Tracked instances of one frame: :class:`Detections` fields plus ``ids`` and ``det_index``.

    ``ids``: ``int64[N]`` track identities (``>= 0``); a tracker's output for one frame has unique
    ids, a concatenation over frames may repeat them.
    ``det_index``: ``int64[N]`` row of the tracker's input ``Detections`` for each output row
    (``-1`` when a row does not come from an input detection).
    """

    ids: Tensor
    det_index: Tensor | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        n = len(self)
        ids = _as_tensor(self.ids, torch.int64, "Tracks.ids").to(self.boxes.device)
        self._check_rows(ids, n, "ids", (n,))
        if (ids < 0).any():
            raise ValueError(f"Tracks.ids: expected ids >= 0, got {ids[ids < 0][:5].tolist()}")
        det_index = torch.full((n,), -1, dtype=torch.int64) if self.det_index is None else self.det_index
        det_index = _as_tensor(det_index, torch.int64, "Tracks.det_index").to(self.boxes.device)
        self._check_rows(det_index, n, "det_index", (n,))
        object.__setattr__(self, "ids", ids)
        object.__setattr__(self, "det_index", det_index)

    @classmethod
    def _empty_extra(cls) -> dict[str, Any]:
        return {"ids": torch.zeros(0, dtype=torch.int64)}

    @classmethod
    def from_detections(cls, detections: Detections, ids: Tensor, det_index: Tensor | None = None) -> Tracks:
        """Wrap ``detections`` (all rows) with track ``ids``; ``det_index`` defaults to ``arange(N)``."""
        if det_index is None:
            det_index = torch.arange(len(detections))
        values = {name: getattr(detections, name) for name in detections._row_fields()}
        return cls(**values, data=dict(detections.data), ids=ids, det_index=det_index)

    @classmethod
    def from_detection_rows(cls, detections: Detections, det_index: Tensor, ids: Tensor) -> Tracks:
        """The rows ``det_index`` (``int64[K]``) of ``detections`` with track ``ids`` (``int64[K]``).

        The trackers' output path: the rows come from an already validated ``Detections``, so
        only ``ids`` is checked (one row each, ``>= 0``) and the rows are not validated again
        (``from_detections(detections[det_index], ...)`` would validate them twice, which is most
        of a tracker's update time at ten boxes).
        """
        det_index = detections._normalise_index(det_index)
        device = detections.boxes.device
        ids = _as_tensor(ids, torch.int64, "Tracks.ids").to(device)
        if tuple(ids.shape) != tuple(det_index.shape):
            raise ValueError(f"Tracks.ids: expected shape {list(det_index.shape)}, got {list(ids.shape)}")
        if (ids < 0).any():
            raise ValueError(f"Tracks.ids: expected ids >= 0, got {ids[ids < 0][:5].tolist()}")
        out = object.__new__(cls)
        for name in detections._row_fields():
            value = getattr(detections, name)
            object.__setattr__(out, name, None if value is None else value[det_index.to(value.device)])
        object.__setattr__(out, "data", {k: _index_column(v, det_index) for k, v in detections.data.items()})
        object.__setattr__(out, "ids", ids)
        object.__setattr__(out, "det_index", det_index.to(device))
        return out

