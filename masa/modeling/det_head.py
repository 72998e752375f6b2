"""Class-agnostic detection branch of the adapter ("object prior distillation", paper §3.2.2).

A Faster R-CNN style RPN and RoI box head on the fused pyramid, with mmdet's semantics as MASA
configures them (all of it written with plain torch / torchvision ops):

* anchors: mmdet ``AnchorGenerator`` (base size = level stride, centre offset 0, scale 8,
  ratios 0.5/1/2, ratio-major order, one location after the other, row-major);
* box coding: ``DeltaXYWHBBoxCoder`` (means 0; stds 1 for the RPN, (0.1, 0.1, 0.2, 0.2) for the
  RoI head; ``dw, dh`` clamped to ``|log(16/1000)|`` when decoding; boxes clipped to the image);
* assignment: mmdet ``MaxIoUAssigner`` (``-1`` ignore, ``0`` background, ``i + 1`` ground truth
  ``i``; low-quality matches give *every* anchor that ties for a ground truth's best IoU to that
  ground truth, later ground truths winning, when that IoU >= ``min_pos_iou``). torchvision's
  ``Matcher`` differs (a low-quality anchor keeps its own best ground truth, no ``min_pos_iou``),
  so it is not used;
* sampling: mmdet ``RandomSampler`` (``num`` samples, at most ``num * pos_fraction`` positives,
  negatives fill the rest);
* losses: RPN sigmoid BCE + SmoothL1 (beta 1/9) or L1, both summed and divided by the number of
  sampled anchors in the batch; RoI softmax CE averaged over sampled RoIs, L1 on positives
  divided by the number of sampled RoIs (mmdet's ``avg_factor = bbox_targets.size(0)``).

Class order of the RoI head (``num_classes = 1``): ``fc_cls`` column 0 is the object class and
column 1 (the *last*, index ``num_classes``) is background, as in mmdet.

Boxes are xyxy in network-input pixels throughout this module. Image sizes are ``(h, w)`` of the
resized image before padding.

Keys: ``rpn_conv``, ``rpn_cls``, ``rpn_reg`` (RPN); ``shared_convs.{i}.conv.weight`` +
``shared_convs.{i}.bn.*`` (Shared4Conv1FC only), ``shared_fcs.{i}``, ``fc_cls``, ``fc_reg`` (RoI head).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import batched_nms, box_iou

from masa.ops.boxes import box_centers, clip_boxes
from masa.ops.roi import boxes_to_rois, multilevel_roi_align

__all__ = [
    "DeltaXYWHCoder",
    "level_anchors",
    "max_iou_assign",
    "random_sample",
    "RPNHead",
    "RoIBoxHead",
]

ImageSize = tuple[int, int]


# ---------------------------------------------------------------------------------------------
# Box coding, anchors, assignment and sampling (pure functions)


@dataclass(frozen=True)
class DeltaXYWHCoder:
    """mmdet ``DeltaXYWHBBoxCoder``: ``(dx, dy, dw, dh) = ((gx - px) / pw, (gy - py) / ph,
    log(gw / pw), log(gh / ph))``, then ``(delta - means) / stds``."""

    means: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
    stds: tuple[float, float, float, float] = (1.0, 1.0, 1.0, 1.0)
    wh_ratio_clip: float = 16 / 1000

    def encode(self, boxes: Tensor, targets: Tensor) -> Tensor:
        """Deltas ``[N, 4]`` taking ``boxes [N, 4]`` to ``targets [N, 4]`` (xyxy).

        Widths and heights are clamped to >= 1e-6 to keep degenerate ground truths finite.
        """
        pw = (boxes[:, 2] - boxes[:, 0]).clamp(min=1e-6)
        ph = (boxes[:, 3] - boxes[:, 1]).clamp(min=1e-6)
        px = (boxes[:, 0] + boxes[:, 2]) * 0.5
        py = (boxes[:, 1] + boxes[:, 3]) * 0.5
        gw = (targets[:, 2] - targets[:, 0]).clamp(min=1e-6)
        gh = (targets[:, 3] - targets[:, 1]).clamp(min=1e-6)
        gx = (targets[:, 0] + targets[:, 2]) * 0.5
        gy = (targets[:, 1] + targets[:, 3]) * 0.5
        deltas = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=1)
        means = deltas.new_tensor(self.means)
        stds = deltas.new_tensor(self.stds)
        return (deltas - means) / stds

    def decode(self, boxes: Tensor, deltas: Tensor, max_shape: ImageSize | None = None) -> Tensor:
        """Apply ``deltas [N, 4]`` to ``boxes [N, 4]``; clip to ``max_shape = (h, w)`` if given."""
        deltas = deltas * deltas.new_tensor(self.stds) + deltas.new_tensor(self.means)
        max_ratio = abs(math.log(self.wh_ratio_clip))
        dxy = deltas[:, :2]
        dwh = deltas[:, 2:].clamp(min=-max_ratio, max=max_ratio)
        pxy = box_centers(boxes)
        pwh = boxes[:, 2:] - boxes[:, :2]
        gxy = pxy + pwh * dxy
        gwh = pwh * dwh.exp()
        out = torch.cat([gxy - gwh * 0.5, gxy + gwh * 0.5], dim=1)
        if max_shape is not None:
            out = clip_boxes(out, *max_shape)
        return out


def level_anchors(
    stride: int,
    feat_size: tuple[int, int],
    scales: Sequence[float] = (8.0,),
    ratios: Sequence[float] = (0.5, 1.0, 2.0),
    device: torch.device | str | None = None,
) -> Tensor:
    """All anchors ``[H * W * A, 4]`` of one level (mmdet ``AnchorGenerator``, centre offset 0).

    Base anchors (``A = len(ratios) * len(scales)``, ratio-major): ``w = stride * scale / sqrt(r)``,
    ``h = stride * scale * sqrt(r)``, centred on ``(0, 0)``; then shifted to ``(x * stride, y * stride)``
    for every location, row-major, ``A`` anchors per location.
    """
    ratios_t = torch.tensor(ratios, dtype=torch.float32, device=device)
    scales_t = torch.tensor(scales, dtype=torch.float32, device=device)
    h_ratios = torch.sqrt(ratios_t)
    w_ratios = 1.0 / h_ratios
    ws = (stride * w_ratios[:, None] * scales_t[None, :]).reshape(-1)  # (A,)
    hs = (stride * h_ratios[:, None] * scales_t[None, :]).reshape(-1)
    base = torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=1)  # (A, 4)
    h, w = feat_size
    shift_x = torch.arange(w, dtype=torch.float32, device=device) * stride
    shift_y = torch.arange(h, dtype=torch.float32, device=device) * stride
    yy, xx = torch.meshgrid(shift_y, shift_x, indexing="ij")
    shifts = torch.stack([xx, yy, xx, yy], dim=-1).reshape(-1, 1, 4)  # (H*W, 1, 4)
    return (shifts + base[None]).reshape(-1, 4)  # (H*W*A, 4)


def max_iou_assign(
    ious: Tensor,
    pos_iou_thr: float,
    neg_iou_thr: float,
    min_pos_iou: float,
    match_low_quality: bool,
) -> Tensor:
    """mmdet ``MaxIoUAssigner`` (``gt_max_assign_all=True``) on ``ious [G, N]``.

    Returns ``int64[N]``: ``-1`` ignored, ``0`` background, ``i + 1`` assigned to ground truth ``i``.
    """
    num_gts, num_boxes = ious.shape
    assigned = torch.full((num_boxes,), -1, dtype=torch.int64, device=ious.device)
    if num_gts == 0 or num_boxes == 0:
        if num_gts == 0:
            assigned.zero_()
        return assigned
    max_overlaps, argmax = ious.max(dim=0)  # (N,)
    assigned[(max_overlaps >= 0) & (max_overlaps < neg_iou_thr)] = 0
    pos = max_overlaps >= pos_iou_thr
    assigned[pos] = argmax[pos] + 1
    if match_low_quality:
        gt_max = ious.max(dim=1).values  # (G,)
        ties = (ious == gt_max[:, None]) & (gt_max[:, None] >= min_pos_iou)  # (G, N)
        # mmdet loops over ground truths in order, so the last tying ground truth wins.
        order = torch.arange(1, num_gts + 1, device=ious.device)[:, None]  # (G, 1)
        last = (ties.long() * order).max(dim=0).values  # (N,) 0 = no tie
        assigned = torch.where(last > 0, last, assigned)
    return assigned


def random_sample(
    assigned: Tensor, num: int, pos_fraction: float, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """mmdet ``RandomSampler``: indices of sampled positives (``assigned > 0``) and negatives (``== 0``).

    At most ``int(num * pos_fraction)`` positives; negatives fill up to ``num`` in total.
    """

    def choose(candidates: Tensor, k: int) -> Tensor:
        if candidates.numel() <= k:
            return candidates
        perm = torch.randperm(candidates.numel(), generator=generator)[:k].to(candidates.device)
        return candidates[perm]

    pos = choose((assigned > 0).nonzero().flatten(), int(num * pos_fraction))
    neg = choose((assigned == 0).nonzero().flatten(), num - pos.numel())
    return pos, neg


# ---------------------------------------------------------------------------------------------
# RPN


class RPNHead(nn.Module):
    """mmdet ``RPNHead`` (one 3x3 conv), class-agnostic, sigmoid objectness.

    Args:
        in_channels: channels of the fused pyramid (256).
        feat_channels: channels of ``rpn_conv`` (256).
        anchor_strides: stride of each pyramid level, one anchor generator level each
            (``(4, 8, 16, 32, 64)`` SAM/R50, ``(8, 16, 32, 64, 128)`` GDINO/Detic).
        anchor_scales, anchor_ratios: anchor shapes (``(8,)``, ``(0.5, 1, 2)``).
        loss_bbox: ``"smooth_l1"`` (beta ``smooth_l1_beta`` = 1/9; GDINO, Detic, SAM) or ``"l1"`` (R50).
        pos_iou_thr, neg_iou_thr, min_pos_iou: assigner (0.7, 0.3, 0.3, with low-quality matches).
        num_samples, pos_fraction: sampler (256, 0.5).

    ``forward(features)`` -> ``(cls_logits, deltas)``: per level ``(B, A, H, W)`` and ``(B, 4A, H, W)``.
    """

    def __init__(
        self,
        *,
        in_channels: int = 256,
        feat_channels: int = 256,
        anchor_strides: Sequence[int] = (4, 8, 16, 32, 64),
        anchor_scales: Sequence[float] = (8.0,),
        anchor_ratios: Sequence[float] = (0.5, 1.0, 2.0),
        loss_bbox: Literal["smooth_l1", "l1"] = "smooth_l1",
        smooth_l1_beta: float = 1.0 / 9.0,
        pos_iou_thr: float = 0.7,
        neg_iou_thr: float = 0.3,
        min_pos_iou: float = 0.3,
        num_samples: int = 256,
        pos_fraction: float = 0.5,
    ) -> None:
        super().__init__()
        if loss_bbox not in ("smooth_l1", "l1"):
            raise ValueError(f"RPNHead: loss_bbox must be 'smooth_l1' or 'l1', got {loss_bbox!r}")
        self.anchor_strides = tuple(int(s) for s in anchor_strides)
        self.anchor_scales = tuple(float(s) for s in anchor_scales)
        self.anchor_ratios = tuple(float(r) for r in anchor_ratios)
        self.num_anchors = len(self.anchor_scales) * len(self.anchor_ratios)
        self.loss_bbox_type = loss_bbox
        self.smooth_l1_beta = float(smooth_l1_beta)
        self.pos_iou_thr, self.neg_iou_thr, self.min_pos_iou = pos_iou_thr, neg_iou_thr, min_pos_iou
        self.num_samples, self.pos_fraction = int(num_samples), float(pos_fraction)
        self.coder = DeltaXYWHCoder()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, self.num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, self.num_anchors * 4, 1)
        for conv in (self.rpn_conv, self.rpn_cls, self.rpn_reg):  # mmdet RPNHead init: N(0, 0.01)
            nn.init.normal_(conv.weight, 0.0, 0.01)
            nn.init.zeros_(conv.bias)

    def forward(self, features: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        self._check_levels(features)
        cls_logits, deltas = [], []
        for feat in features:
            x = F.relu(self.rpn_conv(feat))
            cls_logits.append(self.rpn_cls(x))  # (B, A, H, W)
            deltas.append(self.rpn_reg(x))  # (B, 4A, H, W)
        return cls_logits, deltas

    def _check_levels(self, features: Sequence[Tensor]) -> None:
        if len(features) != len(self.anchor_strides):
            raise ValueError(f"RPNHead: {len(features)} feature levels for {len(self.anchor_strides)} anchor strides")

    def anchors(self, features: Sequence[Tensor]) -> list[Tensor]:
        """Anchors ``[H_l * W_l * A, 4]`` of every level, matching the flattened head outputs."""
        return [
            level_anchors(s, tuple(f.shape[-2:]), self.anchor_scales, self.anchor_ratios, f.device)
            for s, f in zip(self.anchor_strides, features)
        ]

    @staticmethod
    def _flatten(cls_logits: Sequence[Tensor], deltas: Sequence[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """Per level ``(B, H*W*A)`` logits and ``(B, H*W*A, 4)`` deltas in anchor order."""
        flat_cls = [c.permute(0, 2, 3, 1).reshape(c.shape[0], -1) for c in cls_logits]
        flat_reg = [d.permute(0, 2, 3, 1).reshape(d.shape[0], -1, 4) for d in deltas]
        return flat_cls, flat_reg

    def _valid_flags(self, features: Sequence[Tensor], size: ImageSize | None) -> Tensor:
        """mmdet ``valid_flags``: anchors at locations inside ``ceil(size / stride)`` (all if ``None``)."""
        flags = []
        for stride, feat in zip(self.anchor_strides, features):
            h, w = feat.shape[-2:]
            valid = torch.ones(h, w, dtype=torch.bool, device=feat.device)
            if size is not None:
                valid[min(h, math.ceil(size[0] / stride)) :, :] = False
                valid[:, min(w, math.ceil(size[1] / stride)) :] = False
            flags.append(valid[:, :, None].expand(h, w, self.num_anchors).reshape(-1))
        return torch.cat(flags)

    # -- training ------------------------------------------------------------------------------

    def loss(
        self,
        features: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        image_sizes: Sequence[ImageSize] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """RPN losses ``{"loss_rpn_cls", "loss_rpn_bbox"}`` for a batch.

        Args:
            features: the fused pyramid, ``len(anchor_strides)`` maps ``(B, C, H_l, W_l)``.
            gt_boxes: per image ``[G_i, 4]`` xyxy ground-truth boxes (class-agnostic).
            image_sizes: per image ``(h, w)`` of its padded region (mmdet ``pad_shape``); anchors at
                locations beyond it are ignored. ``None``: every anchor is used (``allowed_border=-1``).
        """
        outputs = self(features)
        return self.loss_from_outputs(features, outputs, gt_boxes, image_sizes, generator)

    def loss_from_outputs(
        self,
        features: Sequence[Tensor],
        outputs: tuple[list[Tensor], list[Tensor]],
        gt_boxes: Sequence[Tensor],
        image_sizes: Sequence[ImageSize] | None = None,
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """:meth:`loss` on head outputs already computed by :meth:`forward`."""
        flat_cls, flat_reg = self._flatten(*outputs)
        cls_all = torch.cat(flat_cls, dim=1)  # (B, N)
        reg_all = torch.cat(flat_reg, dim=1)  # (B, N, 4)
        anchors = torch.cat(self.anchors(features))  # (N, 4)
        batch = cls_all.shape[0]
        if len(gt_boxes) != batch:
            raise ValueError(f"RPNHead.loss: {len(gt_boxes)} ground-truth sets for a batch of {batch}")
        cls_preds, cls_targets, reg_preds, reg_targets = [], [], [], []
        for i in range(batch):
            valid = self._valid_flags(features, None if image_sizes is None else image_sizes[i])
            gts = gt_boxes[i].to(anchors).reshape(-1, 4)
            ious = box_iou(gts, anchors) if gts.numel() else anchors.new_zeros(0, anchors.shape[0])
            assigned = max_iou_assign(ious, self.pos_iou_thr, self.neg_iou_thr, self.min_pos_iou, True)
            assigned[~valid] = -1
            pos, neg = random_sample(assigned, self.num_samples, self.pos_fraction, generator)
            sampled = torch.cat([pos, neg])
            cls_preds.append(cls_all[i, sampled])
            cls_targets.append(torch.cat([anchors.new_ones(pos.numel()), anchors.new_zeros(neg.numel())]))
            reg_preds.append(reg_all[i, pos])
            reg_targets.append(self.coder.encode(anchors[pos], gts[assigned[pos] - 1]))
        cls_pred = torch.cat(cls_preds)
        avg_factor = max(cls_pred.numel(), 1)  # sampled positives + negatives over the batch
        loss_cls = F.binary_cross_entropy_with_logits(cls_pred, torch.cat(cls_targets), reduction="sum") / avg_factor
        reg_pred, reg_target = torch.cat(reg_preds), torch.cat(reg_targets)
        if self.loss_bbox_type == "smooth_l1":
            loss_bbox = F.smooth_l1_loss(reg_pred, reg_target, beta=self.smooth_l1_beta, reduction="sum")
        else:
            loss_bbox = F.l1_loss(reg_pred, reg_target, reduction="sum")
        return {"loss_rpn_cls": loss_cls, "loss_rpn_bbox": loss_bbox / avg_factor}

    # -- inference -----------------------------------------------------------------------------

    def predict_proposals(
        self,
        features: Sequence[Tensor],
        image_sizes: Sequence[ImageSize],
        nms_pre: int = 1000,
        max_per_img: int = 1000,
        nms_iou: float = 0.7,
        min_size: float = 0.0,
    ) -> list[Tensor]:
        """Proposals per image ``[K, 5]`` (xyxy, objectness), best first; no gradient.

        Per level the ``nms_pre`` highest-scoring anchors are decoded and clipped to the image,
        boxes with width or height ``<= min_size`` dropped, NMS at ``nms_iou`` run separately per
        level (mmdet ``batched_nms`` by level id) and the best ``max_per_img`` kept.
        (mmdet: test ``nms_pre=1000``; training proposals ``nms_pre=2000``; both ``max_per_img=1000``.)
        """
        with torch.no_grad():
            outputs = self(features)
        return self.proposals_from_outputs(features, outputs, image_sizes, nms_pre, max_per_img, nms_iou, min_size)

    @torch.no_grad()
    def proposals_from_outputs(
        self,
        features: Sequence[Tensor],
        outputs: tuple[list[Tensor], list[Tensor]],
        image_sizes: Sequence[ImageSize],
        nms_pre: int = 1000,
        max_per_img: int = 1000,
        nms_iou: float = 0.7,
        min_size: float = 0.0,
    ) -> list[Tensor]:
        """:meth:`predict_proposals` on head outputs already computed by :meth:`forward` (detached)."""
        flat_cls, flat_reg = self._flatten(*outputs)
        anchors = self.anchors(features)
        batch = flat_cls[0].shape[0]
        if len(image_sizes) != batch:
            raise ValueError(f"RPNHead.predict_proposals: {len(image_sizes)} image sizes for a batch of {batch}")
        results = []
        for i in range(batch):
            scores_l, deltas_l, anchors_l, levels_l = [], [], [], []
            for level, (cls, reg, anc) in enumerate(zip(flat_cls, flat_reg, anchors)):
                scores = cls[i].detach().float().sigmoid()  # (N_l,)
                deltas = reg[i].detach().float()  # (N_l, 4)
                if 0 < nms_pre < scores.numel():
                    scores, order = scores.sort(descending=True)
                    order = order[:nms_pre]
                    scores, deltas, anc = scores[:nms_pre], deltas[order], anc[order]
                scores_l.append(scores)
                deltas_l.append(deltas)
                anchors_l.append(anc)
                levels_l.append(torch.full_like(scores, level, dtype=torch.int64))
            scores = torch.cat(scores_l)
            levels = torch.cat(levels_l)
            boxes = self.coder.decode(torch.cat(anchors_l), torch.cat(deltas_l), max_shape=image_sizes[i])
            if min_size >= 0:
                keep = ((boxes[:, 2] - boxes[:, 0]) > min_size) & ((boxes[:, 3] - boxes[:, 1]) > min_size)
                boxes, scores, levels = boxes[keep], scores[keep], levels[keep]
            keep = batched_nms(boxes, scores, levels, nms_iou)[:max_per_img]
            results.append(torch.cat([boxes[keep], scores[keep, None]], dim=1))
        return results


# ---------------------------------------------------------------------------------------------
# RoI box head


class _ConvBNReLU(nn.Module):
    """3x3 ``conv`` (no bias) -> ``bn`` -> ReLU: mmcv ``ConvModule`` with BN (SyncBN in the configs)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_normal_(self.conv.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


class RoIBoxHead(nn.Module):
    """Class-agnostic RoI box head (mmdet ``StandardRoIHead`` + ``ConvFCBBoxHead``, ``num_classes=1``).

    Shared2FC (GDINO, Detic, SAM): ``num_shared_convs=0, num_shared_fcs=2``: flatten -> ``shared_fcs.0``
    -> ReLU -> ``shared_fcs.1`` -> ReLU. Shared4Conv1FC (R50): ``num_shared_convs=4, num_shared_fcs=1``:
    4 x (3x3 conv + BN + ReLU) -> flatten -> ``shared_fcs.0`` -> ReLU. Then ``fc_cls`` (2 logits:
    object, background) and ``fc_reg`` (4 class-agnostic deltas, stds ``reg_stds``).

    Args:
        roi_strides: strides of the pyramid levels RoIs are pooled from (``(4, 8, 16, 32)`` or ``(8, 16, 32)``).
        in_channels, roi_size, conv_channels, fc_channels: layer sizes (256, 7, 256, 1024).
        pos_iou_thr, neg_iou_thr, min_pos_iou: assigner (0.5, 0.5, 0.5, no low-quality matches).
        num_samples, pos_fraction: sampler (512, 0.25; ground truths are added as proposals).

    ``forward(roi_feats (K, C, 7, 7))`` -> ``(cls_logits (K, 2), deltas (K, 4))``.
    """

    def __init__(
        self,
        *,
        roi_strides: Sequence[int] = (4, 8, 16, 32),
        in_channels: int = 256,
        roi_size: int = 7,
        num_shared_convs: int = 0,
        conv_channels: int = 256,
        num_shared_fcs: int = 2,
        fc_channels: int = 1024,
        finest_scale: float = 56.0,
        reg_stds: tuple[float, float, float, float] = (0.1, 0.1, 0.2, 0.2),
        pos_iou_thr: float = 0.5,
        neg_iou_thr: float = 0.5,
        min_pos_iou: float = 0.5,
        num_samples: int = 512,
        pos_fraction: float = 0.25,
    ) -> None:
        super().__init__()
        if num_shared_fcs < 1:
            raise ValueError(f"RoIBoxHead: num_shared_fcs must be >= 1, got {num_shared_fcs}")
        self.roi_strides = tuple(int(s) for s in roi_strides)
        self.roi_size = int(roi_size)
        self.finest_scale = float(finest_scale)
        self.num_classes = 1
        self.coder = DeltaXYWHCoder(stds=tuple(float(s) for s in reg_stds))  # type: ignore[arg-type]
        self.pos_iou_thr, self.neg_iou_thr, self.min_pos_iou = pos_iou_thr, neg_iou_thr, min_pos_iou
        self.num_samples, self.pos_fraction = int(num_samples), float(pos_fraction)
        self.shared_convs = nn.ModuleList(
            _ConvBNReLU(in_channels if i == 0 else conv_channels, conv_channels) for i in range(num_shared_convs)
        )
        flat = (conv_channels if num_shared_convs > 0 else in_channels) * roi_size * roi_size
        self.shared_fcs = nn.ModuleList(
            nn.Linear(flat if i == 0 else fc_channels, fc_channels) for i in range(num_shared_fcs)
        )
        self.fc_cls = nn.Linear(fc_channels, self.num_classes + 1)  # column num_classes (= 1) is background
        self.fc_reg = nn.Linear(fc_channels, 4)  # class-agnostic
        # mmdet init: Xavier(uniform) shared fcs, fc_cls N(0, 0.01), fc_reg N(0, 0.001), biases 0.
        for fc in self.shared_fcs:
            nn.init.xavier_uniform_(fc.weight)
            nn.init.zeros_(fc.bias)
        nn.init.normal_(self.fc_cls.weight, 0.0, 0.01)
        nn.init.normal_(self.fc_reg.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc_cls.bias)
        nn.init.zeros_(self.fc_reg.bias)

    def forward(self, roi_feats: Tensor) -> tuple[Tensor, Tensor]:
        x = roi_feats
        for conv in self.shared_convs:
            x = conv(x)  # (K, conv_channels, 7, 7)
        x = x.flatten(1)  # (K, C * 49)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))  # (K, fc_channels)
        return self.fc_cls(x), self.fc_reg(x)  # (K, 2), (K, 4)

    def pool(self, features: Sequence[Tensor], rois: Tensor) -> Tensor:
        """RoI-Align ``rois [K, 5]`` from the first ``len(roi_strides)`` levels -> ``(K, C, 7, 7)``."""
        return multilevel_roi_align(features, rois, self.roi_strides, self.roi_size, self.finest_scale)

    # -- training ------------------------------------------------------------------------------

    def loss(
        self,
        features: Sequence[Tensor],
        proposals: Sequence[Tensor],
        gt_boxes: Sequence[Tensor],
        generator: torch.Generator | None = None,
    ) -> dict[str, Tensor]:
        """RoI losses ``{"loss_rcnn_cls", "loss_rcnn_bbox"}``.

        Args:
            features: the fused pyramid (``(B, C, H_l, W_l)`` maps).
            proposals: per image ``[K_i, 4]`` or ``[K_i, 5]`` boxes (a score column is ignored);
                treated as constants.
            gt_boxes: per image ``[G_i, 4]`` ground-truth boxes; they are added to the proposals.
        """
        if len(proposals) != len(gt_boxes):
            raise ValueError(f"RoIBoxHead.loss: {len(proposals)} proposal sets for {len(gt_boxes)} ground-truth sets")
        device = features[0].device
        rois, labels, targets, pos_masks = [], [], [], []
        for props, gts in zip(proposals, gt_boxes):
            props = props[:, :4].detach().float().to(device)
            gts = gts.float().to(device).reshape(-1, 4)
            ious = box_iou(gts, props) if gts.numel() and props.numel() else props.new_zeros(gts.shape[0], props.shape[0])
            assigned = max_iou_assign(ious, self.pos_iou_thr, self.neg_iou_thr, self.min_pos_iou, False)
            boxes = torch.cat([gts, props])  # ground truths added as proposals, first
            assigned = torch.cat([torch.arange(1, gts.shape[0] + 1, device=device), assigned])
            pos, neg = random_sample(assigned, self.num_samples, self.pos_fraction, generator)
            sampled = torch.cat([pos, neg])
            rois.append(boxes[sampled])
            # label 0 = object, 1 = background (mmdet: background is index num_classes)
            labels.append(torch.cat([assigned.new_zeros(pos.numel()), assigned.new_ones(neg.numel())]))
            tgt = boxes.new_zeros(sampled.numel(), 4)
            tgt[: pos.numel()] = self.coder.encode(boxes[pos], gts[assigned[pos] - 1])
            targets.append(tgt)
            pos_masks.append(torch.arange(sampled.numel(), device=device) < pos.numel())
        labels_t, targets_t, pos_t = torch.cat(labels), torch.cat(targets), torch.cat(pos_masks)
        num_sampled = labels_t.numel()
        if num_sampled == 0:  # no proposals and no ground truth anywhere: zero losses, still in the graph
            zero = sum(p.sum() for p in self.parameters()) * 0.0
            return {"loss_rcnn_cls": zero, "loss_rcnn_bbox": zero.clone()}
        roi_tensor = boxes_to_rois(rois).to(device)  # (S, 5)
        cls_logits, deltas = self(self.pool(features, roi_tensor))
        loss_cls = F.cross_entropy(cls_logits, labels_t, reduction="sum") / max(num_sampled, 1)
        if pos_t.any():
            loss_bbox = F.l1_loss(deltas[pos_t], targets_t[pos_t], reduction="sum") / num_sampled
        else:
            loss_bbox = deltas[pos_t].sum()
        return {"loss_rcnn_cls": loss_cls, "loss_rcnn_bbox": loss_bbox}

    # -- inference -----------------------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self,
        features: Sequence[Tensor],
        proposals: Sequence[Tensor],
        image_sizes: Sequence[ImageSize],
        score_thresh: float = 0.02,
        nms_iou: float = 0.5,
        max_per_img: int = 50,
    ) -> list[tuple[Tensor, Tensor]]:
        """Refined boxes per image: ``(boxes [K, 4], scores [K])``, best first; no gradient.

        Scores are the softmax probability of the object class; boxes are decoded from the
        proposals, clipped to ``image_sizes[i] = (h, w)``, kept above ``score_thresh`` and
        NMS-ed (class-agnostic, ``nms_iou``), at most ``max_per_img`` per image.
        """
        if len(proposals) != len(image_sizes):
            raise ValueError(f"RoIBoxHead.predict: {len(proposals)} proposal sets for {len(image_sizes)} image sizes")
        device = features[0].device
        props = [p[:, :4].float().to(device) for p in proposals]
        counts = [p.shape[0] for p in props]
        rois = boxes_to_rois(props).to(device)
        if rois.shape[0]:
            cls_logits, deltas = self(self.pool(features, rois))
            scores_all = cls_logits.float().softmax(dim=1)[:, 0]  # object probability
            deltas_all = deltas.float()
        else:
            scores_all = rois.new_zeros(0)
            deltas_all = rois.new_zeros(0, 4)
        results = []
        for props_i, scores, deltas, size in zip(
            props, scores_all.split(counts), deltas_all.split(counts), image_sizes
        ):
            boxes = self.coder.decode(props_i, deltas, max_shape=size)
            keep = scores > score_thresh
            boxes, scores = boxes[keep], scores[keep]
            keep = batched_nms(boxes, scores, torch.zeros_like(scores, dtype=torch.int64), nms_iou)[:max_per_img]
            results.append((boxes[keep], scores[keep]))
        return results
