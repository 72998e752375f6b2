"""RPN and RoI box head: anchors, coder, assigner, sampler, losses and inference."""

from __future__ import annotations

import math

import torch

from masa.modeling.det_head import DeltaXYWHCoder, RoIBoxHead, RPNHead, level_anchors, max_iou_assign, random_sample

C = 16
STRIDES = (4, 8, 16, 32, 64)


def _features(batch: int = 2, size: int = 64) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, C, math.ceil(size / s), math.ceil(size / s)) for s in STRIDES]


def _gts() -> list[torch.Tensor]:
    return [torch.tensor([[4.0, 6.0, 40.0, 30.0], [20.0, 18.0, 60.0, 62.0]]), torch.zeros(0, 4)]


def test_level_anchors_follow_mmdet_layout():
    anchors = level_anchors(4, (2, 3))
    assert anchors.shape == (2 * 3 * 3, 4)
    # ratio 0.5 (h/w), scale 8, stride 4: w = 32 / sqrt(0.5), h = 32 * sqrt(0.5), centred on (0, 0)
    w, h = 32 / math.sqrt(0.5), 32 * math.sqrt(0.5)
    torch.testing.assert_close(anchors[0], torch.tensor([-w / 2, -h / 2, w / 2, h / 2]))
    torch.testing.assert_close(anchors[1], torch.tensor([-16.0, -16.0, 16.0, 16.0]))  # ratio 1
    # location-major: the next 3 anchors are shifted by one stride in x, then rows in y
    torch.testing.assert_close(anchors[3] - anchors[0], torch.tensor([4.0, 0.0, 4.0, 0.0]))
    torch.testing.assert_close(anchors[9] - anchors[0], torch.tensor([0.0, 4.0, 0.0, 4.0]))


def test_coder_round_trip_clamp_and_clip():
    coder = DeltaXYWHCoder(stds=(0.1, 0.1, 0.2, 0.2))
    boxes = torch.tensor([[10.0, 10.0, 30.0, 50.0], [0.0, 0.0, 8.0, 8.0]])
    targets = torch.tensor([[12.0, 8.0, 40.0, 44.0], [1.0, 2.0, 5.0, 9.0]])
    deltas = coder.encode(boxes, targets)
    torch.testing.assert_close(deltas[0, 0], torch.tensor((26.0 - 20.0) / 20.0 / 0.1))
    torch.testing.assert_close(coder.decode(boxes, deltas), targets)
    huge = coder.decode(boxes[:1], torch.tensor([[0.0, 0.0, 100.0, 100.0]]))
    assert float(huge[0, 2] - huge[0, 0]) <= 20 * 1000 / 16 + 1e-3  # dw clamped to log(1000/16)
    clipped = DeltaXYWHCoder().decode(boxes, torch.tensor([[0.0, 0.0, 3.0, 3.0], [0.0, 0.0, 0.0, 0.0]]), max_shape=(40, 35))
    assert float(clipped[:, 0::2].max()) <= 35 and float(clipped[:, 1::2].max()) <= 40 and float(clipped.min()) >= 0


def test_max_iou_assign_matches_mmdet_rules():
    ious = torch.tensor(
        [
            [0.80, 0.10, 0.35, 0.40, 0.00],
            [0.75, 0.20, 0.35, 0.10, 0.00],
        ]
    )
    got = max_iou_assign(ious, pos_iou_thr=0.7, neg_iou_thr=0.3, min_pos_iou=0.3, match_low_quality=True)
    # box 0 is positive for gt 0 (0.80), but it is also gt 1's best box (0.75 >= min_pos_iou): the
    # low-quality pass runs in ground-truth order and reassigns it to gt 1. Boxes 2, 3 are ignored.
    assert got.tolist() == [2, 0, -1, -1, 0]
    got = max_iou_assign(ious, 0.7, 0.3, 0.3, match_low_quality=False)
    assert got.tolist() == [1, 0, -1, -1, 0]
    ties = torch.tensor([[0.5, 0.5, 0.1]])  # both boxes tie for the best IoU: both assigned
    assert max_iou_assign(ties, 0.7, 0.3, 0.3, True).tolist() == [1, 1, 0]
    assert max_iou_assign(ties, 0.7, 0.3, 0.6, True).tolist() == [-1, -1, 0]  # below min_pos_iou
    assert max_iou_assign(torch.zeros(0, 3), 0.7, 0.3, 0.3, True).tolist() == [0, 0, 0]


def test_random_sample_limits():
    assigned = torch.tensor([1] * 10 + [0] * 100 + [-1] * 5)
    gen = torch.Generator().manual_seed(0)
    pos, neg = random_sample(assigned, num=16, pos_fraction=0.25, generator=gen)
    assert pos.numel() == 4 and neg.numel() == 12
    assert bool((assigned[pos] > 0).all()) and bool((assigned[neg] == 0).all())
    pos, neg = random_sample(torch.tensor([1, 0, 0]), num=16, pos_fraction=0.5)
    assert pos.tolist() == [0] and sorted(neg.tolist()) == [1, 2]


def test_rpn_loss_and_proposals():
    rpn = RPNHead(in_channels=C, feat_channels=C, anchor_strides=STRIDES, num_samples=64)
    feats = [f.requires_grad_() for f in _features()]
    losses = rpn.loss(feats, _gts(), generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox"}
    assert all(torch.isfinite(v) for v in losses.values())
    assert float(losses["loss_rpn_bbox"].detach()) > 0
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in rpn.parameters())
    l1 = RPNHead(in_channels=C, feat_channels=C, anchor_strides=STRIDES, num_samples=64, loss_bbox="l1").loss(_features(), _gts())
    assert torch.isfinite(l1["loss_rpn_bbox"])

    sizes = [(64, 64), (50, 40)]
    proposals = rpn.predict_proposals(_features(), sizes, nms_pre=100, max_per_img=30)
    for props, (h, w) in zip(proposals, sizes):
        assert props.ndim == 2 and props.shape[1] == 5 and 0 < props.shape[0] <= 30
        assert not props.requires_grad
        assert float(props[:, 0].min()) >= 0 and float(props[:, 2].max()) <= w and float(props[:, 3].max()) <= h
        assert bool(((props[:, 2] - props[:, 0]) > 0).all())
        assert bool((props[:-1, 4] >= props[1:, 4]).all())  # best first


def test_rpn_valid_flags_restrict_anchors():
    rpn = RPNHead(in_channels=C, feat_channels=C, anchor_strides=STRIDES)
    flags = rpn._valid_flags(_features(), (20, 64))
    per_level = [int(math.ceil(64 / s)) ** 2 * 3 for s in STRIDES]
    assert flags.numel() == sum(per_level)
    # stride 4: rows >= ceil(20 / 4) = 5 are invalid
    assert int(flags[: per_level[0]].sum()) == 5 * 16 * 3


def _roi_heads() -> list[RoIBoxHead]:
    shared2fc = RoIBoxHead(roi_strides=(4, 8, 16, 32), in_channels=C, num_shared_fcs=2, fc_channels=32, num_samples=64)
    shared4conv = RoIBoxHead(
        roi_strides=(4, 8, 16, 32), in_channels=C, num_shared_convs=4, conv_channels=C, num_shared_fcs=1, fc_channels=32, num_samples=64
    )
    return [shared2fc, shared4conv]


def test_roi_head_loss_and_predict():
    proposals = [torch.tensor([[5.0, 5.0, 38.0, 31.0, 0.9], [0.0, 0.0, 20.0, 20.0, 0.5], [30.0, 30.0, 63.0, 63.0, 0.4]])] * 2
    for head in _roi_heads():
        feats = [f.requires_grad_() for f in _features()]
        losses = head.loss(feats, proposals, _gts(), generator=torch.Generator().manual_seed(0))
        assert set(losses) == {"loss_rcnn_cls", "loss_rcnn_bbox"}
        assert all(torch.isfinite(v) for v in losses.values())
        sum(losses.values()).backward()
        assert all(p.grad is not None for p in head.parameters())

        head.eval()
        with torch.no_grad():
            results = head.predict(_features(), proposals, [(64, 64), (30, 40)], score_thresh=0.0, max_per_img=2)
        for (boxes, scores), (h, w) in zip(results, [(64, 64), (30, 40)]):
            assert boxes.shape[0] == scores.shape[0] <= 2
            assert float(boxes[:, 2].max()) <= w and float(boxes[:, 3].max()) <= h and float(boxes.min()) >= 0
            assert bool(((scores > 0) & (scores < 1)).all())


def test_roi_head_background_is_the_last_class():
    head = RoIBoxHead(roi_strides=(4, 8, 16, 32), in_channels=C, fc_channels=32)
    with torch.no_grad():
        head.fc_cls.weight.zero_()
        head.fc_cls.bias.copy_(torch.tensor([5.0, -5.0]))  # column 0 = object
    proposals = [torch.tensor([[5.0, 5.0, 38.0, 31.0]])]
    (boxes, scores), = head.predict(_features(batch=1), proposals, [(64, 64)])
    assert scores.shape == (1,) and float(scores[0]) > 0.99


def test_roi_head_official_keys():
    two = RoIBoxHead().state_dict()
    assert {k: tuple(v.shape) for k, v in two.items()} == {
        "shared_fcs.0.weight": (1024, 12544),
        "shared_fcs.0.bias": (1024,),
        "shared_fcs.1.weight": (1024, 1024),
        "shared_fcs.1.bias": (1024,),
        "fc_cls.weight": (2, 1024),
        "fc_cls.bias": (2,),
        "fc_reg.weight": (4, 1024),
        "fc_reg.bias": (4,),
    }
    four = RoIBoxHead(num_shared_convs=4, num_shared_fcs=1).state_dict()
    assert four["shared_convs.3.conv.weight"].shape == (256, 256, 3, 3)
    assert "shared_convs.0.conv.bias" not in four and "shared_convs.0.bn.running_var" in four
    assert "shared_fcs.1.weight" not in four
    rpn = RPNHead().state_dict()
    assert {k: tuple(v.shape) for k, v in rpn.items()} == {
        "rpn_conv.weight": (256, 256, 3, 3),
        "rpn_conv.bias": (256,),
        "rpn_cls.weight": (3, 256, 1, 1),
        "rpn_cls.bias": (3,),
        "rpn_reg.weight": (12, 256, 1, 1),
        "rpn_reg.bias": (12,),
    }
