"""The MASA adapter and the model around it (paper §3.2.2, Fig. 3).

Data flow::

    images (B, 3, H, W) RGB 0..255
      -> frozen Backbone                      list of maps (backbone strides)
      -> MasaAdapter.fuse: pyramid -> fusion  5 maps of 256 channels
      -> MasaAdapter.embed(fused, rois)       RoI-Align (7x7, finest_scale 56) -> TrackHead -> (K, 256)
      -> MasaAdapter.detect(fused, sizes)     RPN proposals -> RoI box head -> boxes, scores

* :class:`MasaAdapter`: pyramid + fusion + track head (+ optional RPN and RoI box heads), built
  by injection. Methods never change behaviour with ``self.training``; the detection heads
  have separate loss and inference methods.
* :class:`MasaModel`: a frozen :class:`~masa.modeling.backbones.base.Backbone` plus the adapter.
* :class:`MasaEmbedder`: the :class:`~masa.modeling.embedder.Embedder` for the tracking pipeline
  (one uint8 RGB frame + boxes in original pixels -> CPU float32 embeddings), with
  :meth:`MasaEmbedder.detect_frame` for the adapter's own class-agnostic detector.

In the authors' checkpoints the adapter's parts are ``masa_adapter.0`` (pyramid),
``masa_adapter.1`` (fusion), ``track_head.embed_head``, ``rpn_head`` and ``roi_head.bbox_head``
(see :mod:`masa.modeling.official`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from masa.modeling.det_head import RoIBoxHead, RPNHead
from masa.modeling.preprocess import PreprocessConfig, Preprocessed, preprocess_image
from masa.modeling.track_head import TrackHead
from masa.ops.roi import boxes_to_rois, multilevel_roi_align
from masa.structures import Detections

__all__ = ["MasaAdapter", "MasaModel", "MasaEmbedder"]

ImageSize = tuple[int, int]


class MasaAdapter(nn.Module):
    """Pyramid -> fusion -> heads.

    Args:
        pyramid: maps the backbone's list of maps to ``L`` maps of 256 channels
            (:class:`~masa.modeling.pyramid.SimpleFPN` or :class:`~masa.modeling.pyramid.FPN`).
        fusion: maps ``L`` maps to ``L`` maps of the same shapes
            (:class:`~masa.modeling.fusion.DeformFusion` or :class:`~masa.modeling.fusion.DyHead`).
        track_head: the embedding head.
        rpn_head, roi_head: the optional detection branch (needed by :meth:`detect` and
            :meth:`detection_losses`).
        roi_strides: strides of the first fused levels that RoIs are pooled from, e.g.
            ``(4, 8, 16, 32)`` (SAM, R50) or ``(8, 16, 32)`` (GDINO, Detic).
        roi_size, finest_scale: RoI-Align grid (7) and level-mapping scale (56).
    """

    def __init__(
        self,
        pyramid: nn.Module,
        fusion: nn.Module,
        track_head: TrackHead,
        rpn_head: RPNHead | None = None,
        roi_head: RoIBoxHead | None = None,
        roi_strides: Sequence[int] = (4, 8, 16, 32),
        roi_size: int = 7,
        finest_scale: float = 56.0,
    ) -> None:
        super().__init__()
        self.pyramid = pyramid
        self.fusion = fusion
        self.track_head = track_head
        self.rpn_head = rpn_head
        self.roi_head = roi_head
        self.roi_strides = tuple(int(s) for s in roi_strides)
        self.roi_size = int(roi_size)
        self.finest_scale = float(finest_scale)

    @property
    def embedding_dim(self) -> int:
        return self.track_head.embed_dim

    @property
    def has_detection_heads(self) -> bool:
        return self.rpn_head is not None and self.roi_head is not None

    def fuse(self, backbone_feats: Sequence[Tensor]) -> list[Tensor]:
        """Pyramid then fusion: backbone maps -> ``L`` fused maps ``(B, 256, H_l, W_l)``."""
        return list(self.fusion(self.pyramid(list(backbone_feats))))

    def embed(self, fused: Sequence[Tensor], rois: Tensor) -> Tensor:
        """Embeddings ``(K, D)`` of ``rois [K, 5]`` ``(batch_index, x1, y1, x2, y2)`` in network-input px."""
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"MasaAdapter.embed: expected rois [K, 5] (batch_index, x1, y1, x2, y2), got {list(rois.shape)}")
        feats = multilevel_roi_align(
            fused, rois.to(fused[0].device), self.roi_strides, self.roi_size, self.finest_scale
        )  # (K, 256, 7, 7)
        return self.track_head(feats)

    def _require_detection_heads(self, what: str) -> tuple[RPNHead, RoIBoxHead]:
        if self.rpn_head is None or self.roi_head is None:
            raise RuntimeError(f"MasaAdapter.{what}: this adapter was built without rpn_head/roi_head")
        return self.rpn_head, self.roi_head

    def detect(
        self,
        fused: Sequence[Tensor],
        image_sizes: Sequence[ImageSize],
        rpn_nms_pre: int = 1000,
        rpn_max_per_img: int = 1000,
        rpn_nms_iou: float = 0.7,
        score_thresh: float = 0.02,
        nms_iou: float = 0.5,
        max_per_img: int = 50,
    ) -> list[tuple[Tensor, Tensor]]:
        """Class-agnostic detections per image ``(boxes [K, 4] network-input px, scores [K])``.

        RPN proposals (mmdet test config: ``nms_pre 1000, max 1000, NMS 0.7``) refined by the RoI
        head (``score_thr 0.02``, class-agnostic NMS 0.5, at most 50). ``image_sizes``: ``(h, w)``
        of each resized image before padding (boxes are clipped to it).
        """
        rpn_head, roi_head = self._require_detection_heads("detect")
        proposals = rpn_head.predict_proposals(fused, image_sizes, rpn_nms_pre, rpn_max_per_img, rpn_nms_iou)
        return roi_head.predict(fused, proposals, image_sizes, score_thresh, nms_iou, max_per_img)

    def detection_losses(
        self,
        fused: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        image_sizes: Sequence[ImageSize],
        pad_sizes: Sequence[ImageSize] | None = None,
        proposal_nms_pre: int = 2000,
        proposal_max_per_img: int = 1000,
        proposal_nms_iou: float = 0.7,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """Object-prior distillation losses ``loss_rpn_cls, loss_rpn_bbox, loss_rcnn_cls, loss_rcnn_bbox``.

        The RPN is trained on ``gt_boxes`` (per image ``[G_i, 4]`` network-input px); its detached
        proposals (mmdet ``rpn_proposal``: ``nms_pre 2000, max 1000, NMS 0.7``, clipped to
        ``image_sizes``) train the RoI head. ``pad_sizes`` (mmdet ``pad_shape``) restricts the
        anchors used by the RPN loss; ``None`` uses all (what mmdet does for equal-size batches).
        """
        rpn_head, roi_head = self._require_detection_heads("detection_losses")
        outputs = rpn_head(fused)
        losses = rpn_head.loss_from_outputs(fused, outputs, gt_boxes, pad_sizes, generator)
        proposals = rpn_head.proposals_from_outputs(
            fused, outputs, image_sizes, proposal_nms_pre, proposal_max_per_img, proposal_nms_iou
        )
        losses.update(roi_head.loss(fused, proposals, gt_boxes, generator))
        return losses


class MasaModel(nn.Module):
    """A frozen backbone and the MASA adapter.

    ``forward_features(images float32[B, 3, H, W] RGB 0..255)`` -> fused pyramid (list of maps).
    The backbone runs without autograd while it is frozen (``backbone.frozen``), so only the
    adapter receives gradients.
    """

    def __init__(self, backbone: nn.Module, adapter: MasaAdapter) -> None:
        super().__init__()
        self.backbone = backbone
        self.adapter = adapter

    def forward_features(self, images: Tensor) -> list[Tensor]:
        frozen = getattr(self.backbone, "frozen", False)
        with torch.no_grad() if frozen else contextlib.nullcontext():
            feats = self.backbone(images)
        return self.adapter.fuse(list(feats))

    def forward(self, images: Tensor) -> list[Tensor]:
        return self.forward_features(images)


class MasaEmbedder:
    """:class:`~masa.modeling.embedder.Embedder` running a :class:`MasaModel` on single frames.

    Args:
        model: the model (moved to ``device`` and put in eval mode).
        preprocess: resize/pad settings (``PreprocessConfig((1024, 1024), 32)`` for R50,
            ``pad_to=1024`` for SAM).
        device: where the network runs.
        fp16: run under CUDA autocast (float16); ignored on other devices.
        channels_last: run the backbone in NHWC memory format (faster on CPU, same results).
    """

    def __init__(
        self,
        model: MasaModel,
        preprocess: PreprocessConfig = PreprocessConfig(),
        device: torch.device | str = "cpu",
        fp16: bool = False,
        channels_last: bool = True,
    ) -> None:
        self.device = torch.device(device)
        backbone = model.backbone
        if getattr(backbone, "frozen", False) and hasattr(backbone, "fold_batchnorm"):
            # Inference copy with BatchNorm folded into the convs (~1.6x faster backbone on CPU);
            # the adapter is shared, the caller's backbone and its state dict stay as they are.
            model = MasaModel(copy.deepcopy(backbone).fold_batchnorm(), model.adapter)
        self.model = model.to(self.device).eval()
        self.preprocess = preprocess
        self.fp16 = bool(fp16) and self.device.type == "cuda"
        self.embedding_dim = model.adapter.embedding_dim
        # Padding takes the backbone's mean colour, so it normalises to 0 (as SAM/mmdet pad).
        self._pad_value = getattr(model.backbone, "pixel_mean", torch.zeros(3)).flatten()
        # NHWC is 2-3x faster for the depthwise convs of EfficientNet-Lite on CPU (same numbers).
        self.channels_last = channels_last
        if channels_last:
            self.model.backbone.to(memory_format=torch.channels_last)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.fp16:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @contextlib.contextmanager
    def _run(self, image: np.ndarray | Tensor) -> Iterator[tuple[list[Tensor], Preprocessed]]:
        with torch.inference_mode(), self._autocast():
            pre = preprocess_image(image, self.preprocess, self.device, pad_value=self._pad_value)
            images = pre.images.contiguous(memory_format=torch.channels_last) if self.channels_last else pre.images
            yield self.model.forward_features(images), pre

    @staticmethod
    def _boxes(boxes: Tensor | np.ndarray) -> Tensor:
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
        if boxes.numel() == 0:
            return boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"MasaEmbedder: expected boxes [N, 4] xyxy, got {list(boxes.shape)}")
        return boxes

    def _embed(self, fused: list[Tensor], pre: Preprocessed, boxes: Tensor) -> Tensor:
        rois = boxes_to_rois(boxes.to(self.device) * pre.scale)  # network-input px
        return self.model.adapter.embed(fused, rois).float().cpu()

    def embed(self, image: np.ndarray, boxes: Tensor) -> Tensor:
        """Embeddings ``float32[N, D]`` (CPU) of ``boxes [N, 4]`` xyxy in original-frame px."""
        boxes = self._boxes(boxes)
        if boxes.shape[0] == 0:
            return torch.zeros(0, self.embedding_dim)
        with self._run(image) as (fused, pre):
            return self._embed(fused, pre, boxes)

    def _detections(self, fused: list[Tensor], pre: Preprocessed, frame_size: ImageSize, **kwargs) -> Detections:
        (boxes, scores), = self.model.adapter.detect(fused, [pre.input_size], **kwargs)
        h, w = frame_size
        boxes = boxes.float() / pre.scale  # back to original-frame px
        boxes = torch.stack(
            [boxes[:, 0].clamp(0, w), boxes[:, 1].clamp(0, h), boxes[:, 2].clamp(0, w), boxes[:, 3].clamp(0, h)], dim=1
        )
        return Detections(boxes=boxes.cpu(), scores=scores.float().cpu())

    def detect_frame(self, image: np.ndarray, **kwargs) -> Detections:
        """Class-agnostic detections of the adapter's own heads, boxes in original-frame px.

        ``kwargs`` go to :meth:`MasaAdapter.detect` (``score_thresh``, ``nms_iou``, ``max_per_img``, ...).
        """
        with self._run(image) as (fused, pre):
            return self._detections(fused, pre, _frame_size(image), **kwargs)

    def detect_and_embed(self, image: np.ndarray, **kwargs) -> Detections:
        """:meth:`detect_frame` with ``embeddings`` filled in, from one backbone pass."""
        with self._run(image) as (fused, pre):
            dets = self._detections(fused, pre, _frame_size(image), **kwargs)
            if len(dets) == 0:
                return dets.replace(embeddings=torch.zeros(0, self.embedding_dim))
            return dets.replace(embeddings=self._embed(fused, pre, dets.boxes))


def _frame_size(image: np.ndarray | Tensor) -> ImageSize:
    """``(h, w)`` of an ``[H, W, 3]`` array or a ``(3, H, W)`` tensor."""
    if isinstance(image, np.ndarray):
        return int(image.shape[0]), int(image.shape[1])
    return int(image.shape[-2]), int(image.shape[-1])
