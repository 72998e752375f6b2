"""Which boxes the track loss embeds: candidate boxes, IoU assignment, instance-balanced sampling.

The authors assign the RPN's proposals of each view to that view's instances with mmdet's
``MaxIoUAssigner(pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.5, match_low_quality=False)``
and sample them with ``CombinedSampler(num=512, pos_fraction=0.5, neg_pos_ub=3,
add_gt_as_proposals=True, pos=InstanceBalancedPosSampler, neg=RandomSampler)`` (reference notes
§2.6). Heads without an RPN (the residual head) get their candidates from :func:`candidate_boxes`:
the instances' own boxes, jittered copies of them and random boxes; the assignment and sampling
rules are the same. Every random choice uses the ``torch.Generator`` passed in.

Boxes are ``float32[N, 4]`` ``(x1, y1, x2, y2)`` in view pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision.ops import box_iou

__all__ = ["SamplingConfig", "Assignment", "candidate_boxes", "assign_by_iou", "sample_boxes", "IGNORE", "BACKGROUND"]

#: Assignment codes: below the negative threshold (background), between the thresholds (unused).
BACKGROUND = -1
IGNORE = -2


@dataclass(frozen=True)
class SamplingConfig:
    """Candidate generation, assignment and sampling (defaults: the authors' ``track_head.train_cfg``).

    pos_iou, neg_iou: a candidate is a positive of instance ``g`` if its best IoU (with ``g``) is
        ``>= pos_iou``, background if its best IoU is ``< neg_iou``, unused in between.
    num, pos_fraction, neg_pos_ub: at most ``num`` samples per view, at most ``num * pos_fraction``
        positives (spread evenly over instances), at most ``neg_pos_ub`` negatives per positive.
    jitter_per_instance, jitter_sigma, random_boxes: candidates of heads without an RPN: per
        instance ``jitter_per_instance`` copies with centre and size perturbed by
        ``N(0, jitter_sigma)`` x the box size, plus ``random_boxes`` boxes uniform over the view.
    max_instances: at most this many instances per batch (over all images) enter the loss.
    """

    pos_iou: float = 0.7
    neg_iou: float = 0.3
    num: int = 512
    pos_fraction: float = 0.5
    neg_pos_ub: int = 3
    jitter_per_instance: int = 4
    jitter_sigma: float = 0.1
    random_boxes: int = 64
    max_instances: int = 256

    def __post_init__(self) -> None:
        if not 0 < self.neg_iou <= self.pos_iou <= 1:
            raise ValueError(f"SamplingConfig: expected 0 < neg_iou <= pos_iou <= 1, got {self.neg_iou}, {self.pos_iou}")
        if self.num < 1 or not 0 < self.pos_fraction <= 1 or self.max_instances < 1:
            raise ValueError("SamplingConfig: num and max_instances must be >= 1 and pos_fraction in (0, 1]")


@dataclass
class Assignment:
    """Sampled boxes of one view: ``boxes [S, 4]`` and ``labels [S]`` (instance index, or ``BACKGROUND``)."""

    boxes: Tensor
    labels: Tensor


def candidate_boxes(instances: Tensor, size: tuple[int, int], config: SamplingConfig, generator: torch.Generator) -> Tensor:
    """Candidates for a view of ``size`` ``(h, w)``: the instances, jittered copies, random boxes.

    Returns ``float32[G + G * jitter_per_instance + random_boxes, 4]``, clipped to the view,
    every box at least 1 px wide and high.
    """
    h, w = size
    boxes = [instances]
    if len(instances) and config.jitter_per_instance > 0:
        rep = instances.repeat_interleave(config.jitter_per_instance, dim=0)
        wh = (rep[:, 2:] - rep[:, :2]).clamp(min=1.0)
        centre = (rep[:, :2] + rep[:, 2:]) / 2
        noise = torch.randn(len(rep), 4, generator=generator) * config.jitter_sigma
        centre = centre + noise[:, :2] * wh
        wh = wh * noise[:, 2:].exp()
        boxes.append(torch.cat([centre - wh / 2, centre + wh / 2], dim=1))
    if config.random_boxes > 0:
        u = torch.rand(config.random_boxes, 4, generator=generator)
        side = torch.tensor([w, h], dtype=torch.float32)
        wh = (0.05 + 0.6 * u[:, 2:]) * side
        xy = u[:, :2] * (side - wh)
        boxes.append(torch.cat([xy, xy + wh], dim=1))
    out = torch.cat(boxes).float()
    out[:, 0::2] = out[:, 0::2].clamp(0, w)
    out[:, 1::2] = out[:, 1::2].clamp(0, h)
    out[:, 0] = out[:, 0].clamp(max=w - 1)  # room for the 1 px minimum inside the view
    out[:, 1] = out[:, 1].clamp(max=h - 1)
    out[:, 2:] = torch.maximum(out[:, 2:], out[:, :2] + 1)
    return out


def assign_by_iou(candidates: Tensor, instances: Tensor, config: SamplingConfig) -> Tensor:
    """``int64[N]``: the instance index of each candidate, ``BACKGROUND`` or ``IGNORE`` (max-IoU rule)."""
    labels = torch.full((len(candidates),), BACKGROUND, dtype=torch.int64)
    if len(instances) == 0 or len(candidates) == 0:
        return labels
    best, index = box_iou(candidates, instances).max(dim=1)
    labels[best >= config.neg_iou] = IGNORE
    positive = best >= config.pos_iou
    labels[positive] = index[positive]
    return labels


def _choose(indices: Tensor, count: int, generator: torch.Generator) -> Tensor:
    if len(indices) <= count:
        return indices
    return indices[torch.randperm(len(indices), generator=generator)[:count]]


def sample_boxes(candidates: Tensor, labels: Tensor, config: SamplingConfig, generator: torch.Generator) -> Assignment:
    """Instance-balanced positives and random negatives (mmdet ``InstanceBalancedPosSampler`` + ``RandomSampler``).

    Positives: ``num * pos_fraction`` at most, ``round(expected / G) + 1`` drawn per instance
    first, then topped up at random from the rest (or cut at random). Negatives: at most
    ``num - positives`` and at most ``neg_pos_ub`` per positive (at least one when there is no positive).
    """
    pos_all = torch.nonzero(labels >= 0).flatten()
    neg_all = torch.nonzero(labels == BACKGROUND).flatten()
    expected = int(config.num * config.pos_fraction)
    if len(pos_all) > expected:
        instances = labels[pos_all].unique()
        per_instance = int(round(expected / len(instances))) + 1
        chosen = [_choose(pos_all[labels[pos_all] == g], per_instance, generator) for g in instances.tolist()]
        pos = torch.cat(chosen)
        if len(pos) < expected:
            rest = pos_all[~torch.isin(pos_all, pos)]
            pos = torch.cat([pos, _choose(rest, expected - len(pos), generator)])
        elif len(pos) > expected:
            pos = _choose(pos, expected, generator)
        pos = pos.sort().values
    else:
        pos = pos_all
    neg_budget = config.num - len(pos)
    if config.neg_pos_ub >= 0:
        neg_budget = min(neg_budget, config.neg_pos_ub * max(len(pos), 1))
    neg = _choose(neg_all, neg_budget, generator).sort().values
    keep = torch.cat([pos, neg])
    return Assignment(boxes=candidates[keep], labels=labels[keep])
