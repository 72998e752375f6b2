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
* :class:`MasaModel`: a frozen :class:`~masa.modeling.backbones.base.Backbone` plus the adapter
  (or, for the off-the-shelf baseline, :class:`~masa.modeling.baseline.RawRoIFeatures` in its place).
  Frames, boxes in frame pixels and devices are handled once, by
  :class:`~masa.modeling.predictor.MasaPredictor`.

In the authors' checkpoints the adapter's parts are ``masa_adapter.0`` (pyramid),
``masa_adapter.1`` (fusion), ``track_head.embed_head``, ``rpn_head`` and ``roi_head.bbox_head``
(see :mod:`masa.modeling.official`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from masa.modeling.det_head import RoIBoxHead, RPNHead
from masa.modeling.track_head import TrackHead
from masa.ops.roi import multilevel_roi_align

__all__ = ["MasaAdapter", "MasaModel"]

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
        *,
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

    def __init__(self, backbone: nn.Module, adapter: nn.Module) -> None:
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
