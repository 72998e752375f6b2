"""TrackHead: shapes, official key names, init, no normalisation."""

from __future__ import annotations

import pytest
import torch

from masa.modeling.track_head import TrackHead


def test_shapes_and_backward():
    head = TrackHead(in_channels=16, num_convs=4, conv_channels=16, roi_size=7, fc_channels=32, embed_dim=8, gn_groups=4)
    feats = torch.randn(5, 16, 7, 7, requires_grad=True)
    out = head(feats)
    assert out.shape == (5, 8)
    out.sum().backward()
    assert feats.grad is not None and all(p.grad is not None for p in head.parameters())
    assert head(torch.zeros(0, 16, 7, 7)).shape == (0, 8)
    with pytest.raises(ValueError, match="RoI features"):
        head(torch.randn(2, 8, 7, 7))


def test_official_keys_shapes_and_init():
    head = TrackHead()
    state = head.state_dict()
    expected = {"fcs.0.weight": (1024, 12544), "fcs.0.bias": (1024,), "fc_embed.weight": (256, 1024), "fc_embed.bias": (256,)}
    for i in range(4):
        expected[f"convs.{i}.conv.weight"] = (256, 256, 3, 3)
        expected[f"convs.{i}.gn.weight"] = (256,)
        expected[f"convs.{i}.gn.bias"] = (256,)
    assert {k: tuple(v.shape) for k, v in state.items()} == expected
    assert head.convs[0].gn.num_groups == 32
    assert abs(float(state["fc_embed.weight"].std()) - 0.01) < 0.001
    bound = (6 / (12544 + 1024)) ** 0.5  # Xavier uniform
    assert float(state["fcs.0.weight"].abs().max()) <= bound + 1e-6
    assert torch.count_nonzero(state["fcs.0.bias"]) == 0


def test_embeddings_are_not_normalised():
    torch.manual_seed(0)
    head = TrackHead(in_channels=8, conv_channels=8, fc_channels=16, embed_dim=4, gn_groups=2)
    norms = head(torch.randn(6, 8, 7, 7)).norm(dim=1)
    assert not torch.allclose(norms, torch.ones_like(norms))
