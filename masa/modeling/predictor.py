"""The one per-frame predictor: :class:`MasaPredictor`, the stateless model's stateful wrapper.

Like segment-anything's ``SamPredictor``: :meth:`MasaPredictor.set_image` preprocesses a frame and
runs the frozen backbone and the adapter's fusion once; :meth:`MasaPredictor.predict` then gives
embeddings for any boxes of that frame (and, when the adapter has a trained detection head, its
own boxes) from those cached features. Everything about frames lives here once: the
preprocessing, boxes in frame pixels <-> network pixels and their clipping, the device, fp16
autocast, BatchNorm folding and channels-last memory. The baseline and every adapter go through it.

Conventions: frames are ``uint8[H, W, 3]`` RGB; boxes are ``float32[N, 4]`` ``(x1, y1, x2, y2)``
in original-frame pixels; outputs are CPU ``float32``.
"""

from __future__ import annotations

import contextlib
import copy
from typing import Protocol

import numpy as np
import torch
from torch import Tensor

from masa.modeling.adapter import MasaModel
from masa.modeling.config import MasaConfig
from masa.modeling.preprocess import Preprocessed, preprocess_image
from masa.ops.roi import frame_boxes_to_rois
from masa.structures import Detections

__all__ = ["MasaPredictor", "Segmenter"]


class Segmenter(Protocol):
    """The mask slot of :class:`MasaPredictor`: ``segment(image uint8[H, W, 3], boxes float32[N, 4] xyxy)``
    -> ``bool[N, H, W]`` instance masks in frame pixels (e.g. SAM prompted with the boxes)."""

    def segment(self, image: np.ndarray, boxes: Tensor) -> Tensor: ...


class MasaPredictor:
    """Per-frame inference with a :class:`MasaModel`.

    Args:
        model: backbone + adapter (or :class:`~masa.modeling.baseline.RawRoIFeatures`); moved to
            ``device`` and put in eval mode. A frozen backbone with foldable BatchNorm runs as a
            folded copy (about 1.6x faster on CPU); the caller's modules are left as they are.
        config: the model's :class:`MasaConfig` (preprocessing and detection settings).
        device: where the network runs.
        fp16: CUDA autocast (float16) for backbone, fusion and heads; ignored on other devices
            (RoI coordinates and pooling stay float32).
        channels_last: NHWC memory format for the backbone (2-3x faster depthwise convs on CPU,
            same numbers up to 1e-6).
        segmenter: optional mask model; when set, :meth:`predict` fills ``masks``.
        max_boxes_per_pass: boxes embedded per RoI-Align + head pass; more boxes run in chunks of
            this size, so memory stays bounded for crowds (results do not depend on it).

    Example::

        predictor = MasaPredictor(build_masa(get_config("lite")), get_config("lite"))
        predictor.set_image(frame)
        dets = predictor.predict(detections=Detections(boxes=boxes, scores=scores))
        dets.embeddings  # float32[N, predictor.embedding_dim]
    """

    def __init__(
        self,
        model: MasaModel,
        config: MasaConfig,
        *,
        device: torch.device | str = "cpu",
        fp16: bool = False,
        channels_last: bool = True,
        segmenter: Segmenter | None = None,
        max_boxes_per_pass: int = 512,
    ) -> None:
        if max_boxes_per_pass < 1:
            raise ValueError(f"MasaPredictor: max_boxes_per_pass must be >= 1, got {max_boxes_per_pass}")
        self.max_boxes_per_pass = int(max_boxes_per_pass)
        self.device = torch.device(device)
        self.config = config
        backbone = model.backbone
        if getattr(backbone, "frozen", False) and hasattr(backbone, "fold_batchnorm"):
            model = MasaModel(copy.deepcopy(backbone).fold_batchnorm(), model.adapter)
        self.model = model.to(self.device).eval()
        self.fp16 = bool(fp16) and self.device.type == "cuda"
        self.channels_last = channels_last
        if channels_last:
            self.model.backbone.to(memory_format=torch.channels_last)
        self.segmenter = segmenter
        self.embedding_dim = int(model.adapter.embedding_dim)
        # Padding takes the backbone's mean colour, so it normalises to 0 (as SAM/mmdet pad).
        self._pad_value = getattr(model.backbone, "pixel_mean", torch.zeros(3)).flatten()
        self.reset_image()

    # -- frame state -------------------------------------------------------------------------

    @property
    def has_detector(self) -> bool:
        """Whether the model has its own (class-agnostic) detection head."""
        return bool(getattr(self.model.adapter, "has_detection_heads", False))

    @property
    def is_image_set(self) -> bool:
        return self._features is not None

    def reset_image(self) -> None:
        """Forget the current frame's features."""
        self._features: list[Tensor] | None = None
        self._pre: Preprocessed | None = None
        self._image: np.ndarray | None = None
        self._frame_size: tuple[int, int] = (0, 0)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=torch.float16) if self.fp16 else contextlib.nullcontext()

    def set_image(self, image: np.ndarray) -> None:
        """Preprocess ``image`` (``uint8[H, W, 3]`` RGB) and run backbone + fusion once for it."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"MasaPredictor: expected an RGB image uint8[H, W, 3], got {getattr(image, 'shape', type(image))}")
        if not image.flags.writeable:  # e.g. np.asarray(PIL image): torch.from_numpy warns on read-only arrays
            image = image.copy()
        self.reset_image()  # free the previous frame's maps before allocating this frame's
        with torch.inference_mode(), self._autocast():
            pre = preprocess_image(image, self.config.preprocess, self.device, pad_value=self._pad_value)
            images = pre.images.contiguous(memory_format=torch.channels_last) if self.channels_last else pre.images
            self._features = self.model.forward_features(images)
        self._pre = pre
        self._image = image
        self._frame_size = (int(image.shape[0]), int(image.shape[1]))

    def _require_image(self) -> tuple[list[Tensor], Preprocessed]:
        if self._features is None or self._pre is None:
            raise RuntimeError("MasaPredictor: call set_image(frame) (or predict(image, ...)) first")
        return self._features, self._pre

    # -- outputs -----------------------------------------------------------------------------

    def embed_boxes(self, boxes: Tensor | np.ndarray) -> Tensor:
        """Embeddings ``float32[N, D]`` (CPU) of ``boxes [N, 4]`` xyxy frame px on the current frame.

        Boxes are clipped to the frame and given at least one network pixel of width and height
        (:func:`masa.ops.roi.frame_boxes_to_rois`), so boxes partly or wholly outside still embed.
        """
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        if boxes.numel() == 0:
            return torch.zeros(0, self.embedding_dim)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"MasaPredictor: expected boxes [N, 4] xyxy, got {list(boxes.shape)}")
        features, pre = self._require_image()
        height, width = self._frame_size
        out = torch.empty(len(boxes), self.embedding_dim)
        with torch.inference_mode(), self._autocast():
            rois = frame_boxes_to_rois(boxes.to(self.device), height, width, pre.scale)  # (N, 5) network px
            for start in range(0, len(rois), self.max_boxes_per_pass):  # chunks bound memory for crowds
                chunk = rois[start : start + self.max_boxes_per_pass]
                out[start : start + len(chunk)] = self.model.adapter.embed(features, chunk).float().cpu()
        return out

    def detect(self) -> Detections:
        """The adapter's own class-agnostic detections on the current frame (boxes in frame px, clipped).

        Settings come from ``config.adapter.detection`` (RPN ``proposals["testing"]``,
        ``score_thresh``, ``nms_iou``, ``max_per_img``).
        """
        if not self.has_detector:
            raise ValueError(
                f"the {self.config.name or 'loaded'} model has no detection head: give detections (--detections) to embed"
            )
        features, pre = self._require_image()
        det = self.config.adapter.detection  # type: ignore[union-attr]  # has_detector implies both
        proposals = det.proposals["testing"]
        with torch.inference_mode(), self._autocast():
            ((boxes, scores),) = self.model.adapter.detect(
                features,
                [pre.input_size],
                rpn_nms_pre=proposals.nms_pre,
                rpn_max_per_img=proposals.max_per_img,
                rpn_nms_iou=proposals.nms_iou,
                score_thresh=det.score_thresh,
                nms_iou=det.nms_iou,
                max_per_img=det.max_per_img,
            )
        height, width = self._frame_size
        boxes = boxes.float().cpu() / pre.scale  # back to frame px
        return Detections(boxes=boxes, scores=scores.float().cpu()).clip(height, width, drop_empty=False)

    def predict(self, image: np.ndarray | None = None, detections: Detections | Tensor | np.ndarray | None = None) -> Detections:
        """Detections of one frame with ``embeddings`` (and ``masks`` when a segmenter is set).

        ``image``: the frame (``set_image`` is called); ``None`` reuses the current one.
        ``detections``: given boxes (a :class:`Detections`, whose other fields are kept, or
        ``[N, 4]`` xyxy boxes, scored 1); ``None`` uses the model's own detection head.
        """
        given = detections is not None and len(detections) > 0
        if image is not None and (detections is None or given or self.segmenter is not None):
            self.set_image(image)
        elif image is not None:  # no boxes to embed: skip the backbone for this frame
            self.reset_image()
            self._image = image
        if detections is None:
            dets = self.detect()
        elif isinstance(detections, Detections):
            dets = detections
        else:
            boxes = torch.as_tensor(detections, dtype=torch.float32).reshape(-1, 4)
            dets = Detections(boxes=boxes, scores=torch.ones(len(boxes)))
        dets = dets.replace(embeddings=self.embed_boxes(dets.boxes))
        if self.segmenter is not None and self._image is not None and len(dets):
            dets = dets.replace(masks=self.segmenter.segment(self._image, dets.boxes))
        return dets

    def embed(self, image: np.ndarray, boxes: Tensor | np.ndarray) -> Tensor:
        """``set_image(image)`` then :meth:`embed_boxes` (the masa 0.1 ``Embedder.embed`` call)."""
        boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
        if len(boxes) == 0:
            return torch.zeros(0, self.embedding_dim)
        self.set_image(image)
        return self.embed_boxes(boxes)
