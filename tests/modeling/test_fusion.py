"""DeformFusion and DyHead: shapes, zero-offset behaviour, the high-branch flat read, keys."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.ops import deform_conv2d

from masa.modeling.fusion import DeformFusion, DyHead, DyReLU, fit_to_output, flat_read, top_left_crop

C = 16


def _pyramid(batch: int = 2, channels: int = C) -> list[torch.Tensor]:
    torch.manual_seed(1)
    sizes = ((12, 13), (6, 7), (3, 4), (2, 2))  # each level = ceil(previous / 2), like the pyramids
    return [torch.randn(batch, channels, h, w) for h, w in sizes]


def test_deform_conv_with_zero_offsets_is_a_plain_conv():
    torch.manual_seed(0)
    x = torch.randn(2, 4, 9, 7)
    w = torch.randn(5, 4, 3, 3)
    for stride in (1, 2):
        out_h, out_w = (9 - 1) // stride + 1, (7 - 1) // stride + 1
        offset = torch.zeros(2, 18, out_h, out_w)
        mask = torch.ones(2, 9, out_h, out_w)
        got = deform_conv2d(x, offset, w, stride=stride, padding=1, mask=mask)
        torch.testing.assert_close(got, F.conv2d(x, w, stride=stride, padding=1), atol=1e-5, rtol=1e-5)


def test_deform_fusion_at_init_is_the_average_of_half_masked_convs():
    """Zero offset conv at init: offsets 0, masks sigmoid(0) = 0.5; check the level mixing rule."""
    fusion = DeformFusion(C, num_blocks=1)
    block = fusion.dyhead_blocks[0]
    x = _pyramid()[:3]
    out = fusion(x)

    def branch(module, feat, stride):
        return module.norm(F.conv2d(feat, module.conv.weight, stride=stride, padding=1) * 0.5)

    for level in range(3):
        terms = [branch(block.spatial_conv_mid, x[level], 1)]
        if level > 0:
            terms.append(branch(block.spatial_conv_low, x[level - 1], 2))
        if level < 2:
            high = branch(block.spatial_conv_high, x[level + 1], 1)
            terms.append(F.interpolate(high, size=x[level].shape[-2:], mode="bilinear", align_corners=True))
        torch.testing.assert_close(out[level], sum(terms) / len(terms), atol=1e-5, rtol=1e-4)


def test_fusion_shapes_and_backward():
    x = [t.requires_grad_() for t in _pyramid(channels=C)]
    for fusion in (DeformFusion(C, num_blocks=1), DyHead(C, num_blocks=1)):
        with torch.no_grad():  # make the offsets non-trivial
            for block in fusion.dyhead_blocks:
                block.spatial_conv_offset.weight.normal_(0, 0.05)
        out = fusion(x)
        assert [o.shape for o in out] == [t.shape for t in x]
        sum(o.square().mean() for o in out).backward()
        assert all(p.grad is not None for p in fusion.parameters())


def test_flat_read_semantics():
    t = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    got = flat_read(t, (2, 3))
    for b in range(2):
        torch.testing.assert_close(got[b], t[b].reshape(-1)[: 3 * 2 * 3].view(3, 2, 3))
    assert not torch.equal(got, top_left_crop(t, (2, 3)))
    torch.testing.assert_close(top_left_crop(t, (2, 3)), t[:, :, :2, :3])
    assert flat_read(t, (4, 5)) is t
    # a channel slice of a bigger tensor (DeformFusion's per-branch views) reads its own block
    big = torch.randn(2, 81, 4, 5)
    view = big[:, 36:54]
    torch.testing.assert_close(flat_read(view, (2, 2))[1], big[1, 36:54].reshape(-1)[: 18 * 4].view(18, 2, 2))


def _copy_with_flag(fusion_cls, flag: bool, source):
    other = fusion_cls(C, num_blocks=1, official_flat_read=flag)
    other.load_state_dict(source.state_dict())
    return other


def test_flat_read_and_crop_differ_with_offsets_and_agree_at_init():
    torch.manual_seed(3)
    for fusion_cls in (DeformFusion, DyHead):
        flat = fusion_cls(C, num_blocks=1, official_flat_read=True)
        with torch.no_grad():
            flat.dyhead_blocks[0].spatial_conv_offset.weight.normal_(0, 0.1)
            flat.dyhead_blocks[0].spatial_conv_offset.bias.normal_(0, 0.5)
        crop = _copy_with_flag(fusion_cls, False, flat)
        pyramid = _pyramid()
        out_flat, out_crop = flat(pyramid), crop(pyramid)
        # the top level has no high branch: identical; lower levels use the high branch: differ
        torch.testing.assert_close(out_flat[-1], out_crop[-1])
        assert not torch.allclose(out_flat[0], out_crop[0], atol=1e-4)
        # at init (zero offset conv: zero offsets, constant masks) both readings coincide
        fresh = fusion_cls(C, num_blocks=1, official_flat_read=True)
        torch.testing.assert_close(fresh(pyramid)[0], _copy_with_flag(fusion_cls, False, fresh)(pyramid)[0])


def test_fit_to_output_is_identity_when_sizes_agree():
    t = torch.randn(2, 18, 5, 7)[:, 3:12]  # a non-contiguous channel view, as in the blocks
    for flag in (True, False):
        assert fit_to_output(t, (5, 7), flag) is t
    torch.testing.assert_close(fit_to_output(t, (2, 3), False), t[:, :, :2, :3])
    torch.testing.assert_close(fit_to_output(t, (2, 3), True), flat_read(t, (2, 3)))


def test_dyhead_crops_the_high_mask_but_deform_fusion_flat_reads_it():
    """Only mask logits non-zero: DyHead's mask is a real crop in both modes, DeformFusion's is not."""
    torch.manual_seed(4)
    pyramid = _pyramid()
    dy = DyHead(C, num_blocks=1)
    with torch.no_grad():
        dy.dyhead_blocks[0].spatial_conv_offset.weight[18:].normal_(0, 0.5)  # mask logits only
    torch.testing.assert_close(dy(pyramid)[0], _copy_with_flag(DyHead, False, dy)(pyramid)[0])

    df = DeformFusion(C, num_blocks=1)
    with torch.no_grad():
        df.dyhead_blocks[0].spatial_conv_offset.weight[54:].normal_(0, 0.5)  # mask logits only
    assert not torch.allclose(df(pyramid)[0], _copy_with_flag(DeformFusion, False, df)(pyramid)[0], atol=1e-5)


def test_dyrelu_formula():
    torch.manual_seed(5)
    dyrelu = DyReLU(8)
    with torch.no_grad():
        for p in dyrelu.parameters():
            p.normal_(0, 0.5)
    x = torch.randn(2, 8, 3, 3)
    pooled = x.mean(dim=(2, 3), keepdim=True)
    hidden = F.relu(dyrelu.conv1.conv(pooled))
    coeffs = torch.clamp((dyrelu.conv2.conv(hidden) + 3) / 6, 0, 1) - 0.5
    a1, b1, a2, b2 = coeffs.split(8, dim=1)
    expected = torch.max(x * (2 * a1 + 1) + b1, x * (2 * a2) + b2)
    torch.testing.assert_close(dyrelu(x), expected)


def test_official_key_names_and_init():
    df = DeformFusion(C, num_blocks=3).state_dict()
    assert df["dyhead_blocks.2.spatial_conv_offset.weight"].shape == (81, C, 3, 3)
    for branch in ("high", "mid", "low"):
        assert df[f"dyhead_blocks.0.spatial_conv_{branch}.conv.weight"].shape == (C, C, 3, 3)
        assert f"dyhead_blocks.0.spatial_conv_{branch}.conv.bias" not in df
        assert f"dyhead_blocks.0.spatial_conv_{branch}.norm.weight" in df
    assert len(df) == 3 * (2 + 3 * 3)
    assert torch.count_nonzero(df["dyhead_blocks.0.spatial_conv_offset.weight"]) == 0

    dy = DyHead(C, num_blocks=3).state_dict()
    assert dy["dyhead_blocks.1.spatial_conv_offset.weight"].shape == (27, C, 3, 3)
    assert dy["dyhead_blocks.1.scale_attn_module.1.weight"].shape == (1, C, 1, 1)
    assert dy["dyhead_blocks.1.task_attn_module.conv1.conv.weight"].shape == (C // 4, C, 1, 1)
    assert dy["dyhead_blocks.1.task_attn_module.conv2.conv.bias"].shape == (4 * C,)
    assert len(dy) == 3 * (2 + 3 * 3 + 2 + 4)
