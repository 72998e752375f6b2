"""Identity metrics of embeddings on hand-made frame pairs."""

from __future__ import annotations

import math

import torch

from masa.eval.embedding import IdentityStats, accumulate_identity_pair


def test_perfect_and_confused_embeddings():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    stats = IdentityStats()
    accumulate_identity_pair(stats, a, torch.tensor([1, 2]), a.flip(0), torch.tensor([2, 1]))
    assert stats.queries == 2 and stats.nn_accuracy == 1.0
    # same-id cosines are 1, different-id cosines 0: infinite separation is nan-free only with spread
    swapped = IdentityStats()
    accumulate_identity_pair(swapped, a, torch.tensor([1, 2]), a, torch.tensor([2, 1]))  # ids swapped
    assert swapped.nn_accuracy == 0.0
    # a query whose id is absent in the earlier frame does not count
    extra = IdentityStats()
    accumulate_identity_pair(extra, a, torch.tensor([1, 2]), torch.tensor([[1.0, 0.1]]), torch.tensor([3]))
    assert extra.queries == 0 and math.isnan(extra.nn_accuracy)


def test_separation_is_d_prime():
    gen = torch.Generator().manual_seed(0)
    stats = IdentityStats()
    for _ in range(20):
        base = torch.nn.functional.normalize(torch.randn(5, 16, generator=gen), dim=1)
        later = base + 0.1 * torch.randn(5, 16, generator=gen)
        accumulate_identity_pair(stats, base, torch.arange(5), later, torch.arange(5))
    same, diff = torch.cat(stats.same).double(), torch.cat(stats.diff).double()
    expected = (same.mean() - diff.mean()) / ((same.var() + diff.var()) / 2).sqrt()
    assert abs(stats.separation - float(expected)) < 1e-9 and stats.separation > 3
    assert IdentityStats().merge([stats]).queries == stats.queries == 100
