"""Box helpers: the numpy xywh IoU used by evaluation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masa.ops.boxes import box_iou_xywh_np


def test_box_iou_xywh_np_values():
    a = np.array([[0, 0, 10, 10], [0, 0, 0, 10], [5, 5, -2, -2]], dtype=float)
    b = np.array([[0, 0, 10, 10], [2, 0, 10, 10], [100, 100, 5, 5]], dtype=float)
    iou = box_iou_xywh_np(a, b)
    assert iou.shape == (3, 3) and iou.dtype == np.float64
    # Shifted by 2 px: intersection 8*10 = 80, union 100 + 100 - 80 = 120.
    assert iou[0, 0] == 1.0 and iou[0, 1] == pytest.approx(80 / 120) and iou[0, 2] == 0.0
    np.testing.assert_array_equal(iou[1:], 0.0)  # zero and negative sizes overlap nothing
    assert box_iou_xywh_np(np.zeros((0, 4)), b).shape == (0, 3)
    assert box_iou_xywh_np(a, []).shape == (3, 0)


def test_box_iou_xywh_np_matches_trackeval_bit_for_bit():
    # HOTA / CLEAR / Identity must equal TrackEval's: the similarity has to be the same floats.
    from trackeval.datasets._base_dataset import _BaseDataset

    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(0, 100, (50, 2)), rng.uniform(-1, 40, (50, 2))])
    b = np.column_stack([rng.uniform(0, 100, (40, 2)), rng.uniform(-1, 40, (40, 2))])
    np.testing.assert_array_equal(box_iou_xywh_np(a, b), _BaseDataset._calculate_box_ious(a, b, box_format="xywh"))


def test_box_iou_in_row_chunks_is_exact(monkeypatch):
    import masa.ops.boxes as boxes_module

    gen = torch.Generator().manual_seed(0)
    xy = torch.rand(300, 2, generator=gen) * 100
    boxes = torch.cat([xy, xy + torch.rand(300, 2, generator=gen) * 30], dim=1)
    whole = boxes_module.box_iou(boxes, boxes[:200])
    monkeypatch.setattr(boxes_module, "_IOU_CHUNK", 1000)  # 5 rows per chunk
    assert torch.equal(boxes_module.box_iou(boxes, boxes[:200]), whole)
