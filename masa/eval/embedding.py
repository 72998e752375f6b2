"""How well embeddings tell identities apart, from ground-truth boxes alone (no tracker involved).

For two frames ``k`` apart with ground-truth boxes, every box of the later frame whose identity is
also in the earlier frame is a query:

* **nearest-neighbour accuracy**: the share of queries whose most cosine-similar box of the earlier
  frame has the same identity;
* **separation** (d'): ``(mean_same - mean_diff) / sqrt((var_same + var_diff) / 2)`` over the
  cosines of all same-identity pairs and all different-identity pairs between the two frames.

A quick check of an appearance model before (and while) training one: it needs minutes, not a
tracking run, and isolates appearance from association rules.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["IdentityStats", "accumulate_identity_pair"]


@dataclass
class IdentityStats:
    """Running sums over frame pairs (combine sequences by accumulating into one instance)."""

    queries: int = 0
    correct: int = 0
    same: list[Tensor] = field(default_factory=list)
    diff: list[Tensor] = field(default_factory=list)

    @property
    def nn_accuracy(self) -> float:
        return self.correct / self.queries if self.queries else float("nan")

    @property
    def separation(self) -> float:
        """d' between same- and different-identity cosines (``nan`` without both kinds)."""
        if not self.same or not self.diff:
            return float("nan")
        same, diff = torch.cat(self.same).double(), torch.cat(self.diff).double()
        if len(same) < 2 or len(diff) < 2:
            return float("nan")
        pooled = ((same.var() + diff.var()) / 2).sqrt()
        return float((same.mean() - diff.mean()) / pooled) if pooled > 0 else float("nan")

    def merge(self, others: Iterable[IdentityStats]) -> IdentityStats:
        for other in others:
            self.queries += other.queries
            self.correct += other.correct
            self.same += other.same
            self.diff += other.diff
        return self


def accumulate_identity_pair(stats: IdentityStats, emb_a: Tensor, ids_a: Tensor, emb_b: Tensor, ids_b: Tensor) -> None:
    """Add one frame pair: ``emb_a float[N, D]`` / ``ids_a int[N]`` (earlier frame), ``emb_b [M, D]`` / ``ids_b [M]``."""
    if len(ids_a) == 0 or len(ids_b) == 0:
        return
    cos = F.normalize(emb_b.float(), dim=1) @ F.normalize(emb_a.float(), dim=1).T  # [M, N]
    same = ids_b[:, None] == ids_a[None, :]  # [M, N]
    queries = same.any(dim=1)
    if queries.any():
        nearest = cos[queries].argmax(dim=1)
        stats.correct += int((ids_a[nearest] == ids_b[queries]).sum())
        stats.queries += int(queries.sum())
    stats.same.append(cos[same])
    stats.diff.append(cos[~same])
