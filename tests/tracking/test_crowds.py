"""Crowds: suppression over thousands of boxes runs in row chunks with the same result."""

from __future__ import annotations

import torch

from masa.ops.boxes import box_iou
from masa.tracking.similarity import overlaps_earlier


def test_overlaps_earlier_in_chunks_equals_the_full_matrix():
    gen = torch.Generator().manual_seed(0)
    n = 3000  # 3 row chunks
    xy = torch.rand(n, 2, generator=gen) * 500
    boxes = torch.cat([xy, xy + 5 + torch.rand(n, 2, generator=gen) * 40], dim=1)
    thresholds = torch.where(torch.rand(n, generator=gen) < 0.5, torch.tensor(0.3), torch.tensor(float("inf")))
    ious = box_iou(boxes, boxes)
    earlier = torch.ones(n, n, dtype=torch.bool).tril(diagonal=-1)
    expected = ((ious > thresholds[:, None]) & earlier).any(dim=1)
    assert expected.any() and not expected.all()
    assert torch.equal(overlaps_earlier(boxes, thresholds), expected)
