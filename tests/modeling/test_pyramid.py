"""SimpleFPN and FPN: output strides/shapes, top-down pathway, official key names."""

from __future__ import annotations

import pytest
import torch

from masa.modeling.pyramid import FPN, LayerNorm2d, SimpleFPN


def test_simple_fpn_shapes_and_strides():
    fpn = SimpleFPN(in_channels=24, out_channels=16, num_outs=5)
    feats = [torch.randn(2, 24, 8, 6) for _ in range(4)]  # stride 16 of a 128x96 image
    outs = fpn(feats)
    assert fpn.strides == (4, 8, 16, 32, 64)
    assert [tuple(o.shape) for o in outs] == [(2, 16, 32, 24), (2, 16, 16, 12), (2, 16, 8, 6), (2, 16, 4, 3), (2, 16, 2, 2)]


def test_simple_fpn_uses_each_input_once():
    torch.manual_seed(0)
    fpn = SimpleFPN(in_channels=8, out_channels=8).eval()
    feats = [torch.randn(1, 8, 4, 4) for _ in range(4)]
    base = fpn(feats)
    changed = list(feats)
    changed[0] = feats[0] + 1.0  # the first tap only feeds the stride-4 branch (fpn1)
    out = fpn(changed)
    assert not torch.allclose(out[0], base[0])
    for level in range(1, 5):
        torch.testing.assert_close(out[level], base[level])
    with pytest.raises(ValueError, match="4 input maps"):
        fpn(feats[:3])


def test_simple_fpn_official_keys():
    keys = set(SimpleFPN(in_channels=16, out_channels=8).state_dict())
    expected = {"fpn1.0.weight", "fpn1.0.bias", "fpn1.1.ln.weight", "fpn1.1.ln.bias", "fpn1.3.weight", "fpn1.3.bias"}
    expected |= {"fpn2.0.weight", "fpn2.0.bias"}
    for i in range(4):
        expected |= {f"lateral_convs.{i}.conv.weight", f"lateral_convs.{i}.conv.bias"}
        expected |= {f"fpn_convs.{i}.conv.weight", f"fpn_convs.{i}.conv.bias"}
    assert keys == expected


def test_layernorm2d_normalises_channels():
    ln = LayerNorm2d(6)
    x = torch.randn(2, 6, 3, 5) * 4 + 2
    y = ln(x)
    torch.testing.assert_close(y.mean(dim=1), torch.zeros(2, 3, 5), atol=1e-5, rtol=0)
    assert ln.ln.eps == 1e-6


def test_fpn_bn_shapes_strides_and_keys():
    fpn = FPN(in_channels=(8, 16, 32), out_channels=16, num_outs=5, norm="bn", in_strides=(8, 16, 32))
    feats = [torch.randn(1, 8, 12, 10), torch.randn(1, 16, 6, 5), torch.randn(1, 32, 3, 3)]
    outs = fpn(feats)
    assert fpn.strides == (8, 16, 32, 64, 128)
    assert fpn.strides_for((4, 8, 16, 32)) == (4, 8, 16, 32, 64)
    assert [tuple(o.shape[-2:]) for o in outs] == [(12, 10), (6, 5), (3, 3), (2, 2), (1, 1)]
    assert all(o.shape[1] == 16 for o in outs)
    keys = set(fpn.state_dict())
    for kind in ("lateral_convs", "fpn_convs"):
        for i in range(3):
            assert f"{kind}.{i}.conv.weight" in keys
            assert f"{kind}.{i}.conv.bias" not in keys
            for buf in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
                assert f"{kind}.{i}.bn.{buf}" in keys
    assert len(keys) == 2 * 3 * 6


def test_fpn_without_norm_has_bias_and_top_down_reaches_fine_levels():
    torch.manual_seed(0)
    fpn = FPN(in_channels=(4, 8), out_channels=8, num_outs=3, norm="none")
    assert "lateral_convs.0.conv.bias" in fpn.state_dict()
    assert fpn.strides is None
    feats = [torch.randn(1, 4, 7, 9), torch.randn(1, 8, 4, 5)]  # odd sizes: upsample to the exact size
    base = fpn(feats)
    out = fpn([feats[0], feats[1] + 1.0])
    assert not torch.allclose(out[0], base[0])  # coarse input changes the finest output
    assert tuple(base[2].shape[-2:]) == (2, 3)
    with pytest.raises(ValueError):
        fpn(feats[:1])
    with pytest.raises(ValueError):
        FPN(in_channels=(4, 8), norm="gn")  # type: ignore[arg-type]
