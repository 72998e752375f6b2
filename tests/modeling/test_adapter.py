"""MasaAdapter / MasaModel on tiny fake backbones (CPU, forward and backward)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from masa.modeling.adapter import MasaAdapter, MasaModel
from masa.modeling.backbones.base import Backbone
from masa.modeling.det_head import RoIBoxHead, RPNHead
from masa.modeling.fusion import DeformFusion, DyHead
from masa.modeling.pyramid import FPN, SimpleFPN
from masa.ops.roi import boxes_to_rois

C = 32
EMBED = 16


class TinyHierarchical(Backbone):
    """Three strided convs: strides 8, 16, 32 (a stand-in for Swin/EfficientNet)."""

    def __init__(self) -> None:
        super().__init__(out_channels=(8, 12, 16), strides=(8, 16, 32))
        self.stem = nn.Conv2d(3, 8, 8, stride=8)
        self.down1 = nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.down2 = nn.Conv2d(12, 16, 3, stride=2, padding=1)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x8 = self.stem(self.normalize(images))
        x16 = self.down1(x8)
        return [x8, x16, self.down2(x16)]


class TinyPlainViT(Backbone):
    """Four stride-16 maps (a stand-in for SAM's tapped blocks)."""

    def __init__(self) -> None:
        super().__init__(out_channels=(24,) * 4, strides=(16,) * 4)
        self.patch = nn.Conv2d(3, 24, 16, stride=16)
        self.blocks = nn.ModuleList(nn.Conv2d(24, 24, 1) for _ in range(4))

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        x = self.patch(self.normalize(images))
        outs = []
        for block in self.blocks:
            x = x + block(x)
            outs.append(x)
        return outs


def _heads(anchor_strides, roi_strides):
    from masa.modeling.track_head import TrackHead

    track = TrackHead(in_channels=C, num_convs=2, conv_channels=C, roi_size=7, fc_channels=32, embed_dim=EMBED, gn_groups=8)
    rpn = RPNHead(in_channels=C, feat_channels=C, anchor_strides=anchor_strides, num_samples=64)
    roi = RoIBoxHead(roi_strides=roi_strides, in_channels=C, fc_channels=32, num_samples=64)
    return track, rpn, roi


def _swin_like_model() -> MasaModel:
    torch.manual_seed(0)
    backbone = TinyHierarchical().freeze()
    track, rpn, roi = _heads((8, 16, 32, 64, 128), (8, 16, 32))
    pyramid = FPN(backbone.out_channels, C, num_outs=5, norm="bn", in_strides=backbone.strides)
    adapter = MasaAdapter(
        pyramid=pyramid, fusion=DeformFusion(C, num_blocks=1), track_head=track, rpn_head=rpn, roi_head=roi, roi_strides=(8, 16, 32)
    )
    return MasaModel(backbone, adapter)


def _sam_like_model() -> MasaModel:
    torch.manual_seed(0)
    backbone = TinyPlainViT().freeze()
    track, rpn, roi = _heads((4, 8, 16, 32, 64), (4, 8, 16, 32))
    adapter = MasaAdapter(
        pyramid=SimpleFPN(24, C), fusion=DyHead(C, num_blocks=1), track_head=track, rpn_head=rpn, roi_head=roi, roi_strides=(4, 8, 16, 32)
    )
    return MasaModel(backbone, adapter)


@pytest.mark.parametrize("make", [_swin_like_model, _sam_like_model])
def test_forward_backward_only_adapter_gets_gradients(make):
    model = make().train()
    assert not model.backbone.training  # frozen backbone ignores train()
    images = torch.rand(2, 3, 64, 96) * 255
    fused = model.forward_features(images)
    assert len(fused) == 5 and all(f.shape[:2] == (2, C) for f in fused)
    gts = [torch.tensor([[4.0, 6.0, 40.0, 50.0], [30.0, 10.0, 90.0, 60.0]]), torch.tensor([[10.0, 10.0, 30.0, 30.0]])]
    losses = model.adapter.detection_losses(fused, gts, [(64, 96), (64, 96)], generator=torch.Generator().manual_seed(0))
    assert set(losses) == {"loss_rpn_cls", "loss_rpn_bbox", "loss_rcnn_cls", "loss_rcnn_bbox"}
    assert all(torch.isfinite(v) for v in losses.values())
    emb = model.adapter.embed(fused, boxes_to_rois(gts))
    assert emb.shape == (3, EMBED)
    (sum(losses.values()) + emb.square().mean()).backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is not None for p in model.adapter.parameters())


def test_detect_returns_boxes_inside_the_image():
    model = _swin_like_model().eval()
    with torch.no_grad():
        fused = model.forward_features(torch.rand(1, 3, 64, 96) * 255)
        ((boxes, scores),) = model.adapter.detect(fused, [(60, 90)], score_thresh=0.0, max_per_img=7)
    assert boxes.shape[0] == scores.shape[0] <= 7
    assert float(boxes.min()) >= 0 and float(boxes[:, 2].max()) <= 90 and float(boxes[:, 3].max()) <= 60


def test_adapter_without_detection_heads():
    model = _swin_like_model()
    adapter = MasaAdapter(
        pyramid=model.adapter.pyramid, fusion=model.adapter.fusion, track_head=model.adapter.track_head, roi_strides=(8, 16, 32)
    )
    assert not adapter.has_detection_heads
    with pytest.raises(RuntimeError, match="rpn_head"):
        adapter.detect([], [(1, 1)])
    with pytest.raises(ValueError, match="rois"):
        adapter.embed([torch.zeros(1, C, 4, 4)], torch.zeros(3, 4))
