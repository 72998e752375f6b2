"""The track losses: multi-positive contrastive loss (two forms) and the margin-L2 auxiliary loss.

Shapes: key embeddings ``(Nk, D)``, reference embeddings ``(Nr, D)``, targets ``T (Nk, Nr)`` with
``T[i, j] = 1`` iff reference sample ``j`` is a positive of the same instance as key positive
``i``; ``valid (Nk, Nr)`` marks the pairs that enter the loss (the authors: pairs within one
image; ``negatives="batch"`` also uses every other image's samples as negatives).

* :func:`unbiased_contrastive_loss`: the authors' code (``UnbiasedContrastLoss``, loss weight
  0.25) on raw dot products, for a row with positive set ``P``::

      denom_i = sum_{k in P} exp(s_ik) / |P| + sum_{k not in P} exp(s_ik)
      L_i     = -(1/|P|) sum_{j in P} [s_ij - log denom_i]

* :func:`paper_contrastive_loss`: the paper's Eq. 1, on cosines over a temperature (0.07)::

      L_i = -(1/|P|) sum_{j in P} log( exp(c_ij / t) / sum_k exp(c_ik / t) )

* :func:`margin_l2_loss`: mmdet ``MarginL2Loss(neg_pos_ub=3, pos_margin=0, neg_margin=0.1,
  hard_mining=True)`` on the cosine matrix.

Rows without a positive (instances the other view lost) have no loss. Every loss is the mean over
rows that have one (0 when none has, keeping the graph).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["unbiased_contrastive_loss", "paper_contrastive_loss", "margin_l2_loss", "pair_targets", "track_losses"]


def pair_targets(
    key_ids: Tensor, ref_ids: Tensor, key_images: Tensor, ref_images: Tensor, negatives: str = "image"
) -> tuple[Tensor, Tensor]:
    """``(targets float[Nk, Nr], valid bool[Nk, Nr])`` from per-sample instance ids and image indices.

    ``key_ids``/``ref_ids``: instance ids unique within their image (``< 0`` = background, never a
    positive). ``negatives``: ``"image"`` (pairs within one image, as the authors) or ``"batch"``.
    """
    if negatives not in ("image", "batch"):
        raise ValueError(f"negatives: expected 'image' or 'batch', got {negatives!r}")
    same_image = key_images[:, None] == ref_images[None, :]
    targets = same_image & (key_ids[:, None] == ref_ids[None, :]) & (key_ids[:, None] >= 0)
    valid = same_image if negatives == "image" else torch.ones_like(same_image)
    return targets.float(), valid


def _masked_rows(logits: Tensor, targets: Tensor, valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    rows = (targets * valid).sum(dim=1) > 0
    neg_inf = torch.finfo(logits.dtype).min
    logits = logits.masked_fill(~valid, neg_inf)
    return logits[rows], targets[rows] * valid[rows], valid[rows]


def _zero(logits: Tensor) -> Tensor:
    return logits.sum() * 0.0


def unbiased_contrastive_loss(logits: Tensor, targets: Tensor, valid: Tensor) -> Tensor:
    """The authors' ``UnbiasedContrastLoss`` (``pos_normalize=True``), unweighted (module docstring)."""
    s, t, v = _masked_rows(logits, targets, valid)
    if len(s) == 0:
        return _zero(logits)
    s = s - s.max(dim=1, keepdim=True).values.detach()
    exp = s.exp() * v
    num_pos = t.sum(dim=1)
    denom = (exp * t).sum(dim=1) / num_pos + (exp * (1 - t)).sum(dim=1)
    per_row = -((s - denom.log()[:, None]) * t).sum(dim=1) / num_pos
    return per_row.mean()


def paper_contrastive_loss(cosines: Tensor, targets: Tensor, valid: Tensor, temperature: float = 0.07) -> Tensor:
    """The paper's multi-positive InfoNCE on cosines / ``temperature`` (module docstring)."""
    s, t, _ = _masked_rows(cosines / temperature, targets, valid)
    if len(s) == 0:
        return _zero(cosines)
    log_prob = s - torch.logsumexp(s, dim=1, keepdim=True)
    return (-(log_prob * t).sum(dim=1) / t.sum(dim=1)).mean()


def margin_l2_loss(
    cosines: Tensor, targets: Tensor, valid: Tensor, *, neg_pos_ub: int = 3, pos_margin: float = 0.0, neg_margin: float = 0.1
) -> Tensor:
    """mmdet ``MarginL2Loss`` with hard mining: MSE of margin-shifted, clamped cosines against 0/1.

    Negatives are cut to the ``neg_pos_ub * #positives`` hardest ones (largest squared error after
    the margin shift and clamp, as mmdet); no positive: no loss (mmdet keeps no negative then).
    """
    pred = cosines[valid]
    target = targets[valid]
    pos = target > 0
    neg = ~pos
    weight = torch.ones_like(pred)
    num_pos = int(pos.sum())
    if num_pos == 0 and neg_pos_ub > 0:  # mmdet: num_neg / (num_pos + eps) > neg_pos_ub keeps no negative either
        return _zero(cosines)
    shifted = torch.where(pos, pred - pos_margin, pred - neg_margin).clamp(0, 1)
    if neg_pos_ub > 0 and int(neg.sum()) > neg_pos_ub * num_pos:
        neg_index = torch.nonzero(neg).flatten()
        costs = (shifted.detach()[neg_index] - target[neg_index]) ** 2  # mmdet ranks the margin-shifted, clamped errors
        keep = neg_index[costs.topk(neg_pos_ub * num_pos).indices]
        dropped = neg.clone()
        dropped[keep] = False
        weight[dropped] = 0.0
    count = weight.sum()
    if count == 0:
        return _zero(cosines)
    return (((shifted - target) ** 2) * weight).sum() / count


def track_losses(
    key_emb: Tensor,
    ref_emb: Tensor,
    targets: Tensor,
    valid: Tensor,
    *,
    variant: str = "unbiased",
    weight: float = 0.25,
    aux_weight: float = 1.0,
    temperature: float = 0.07,
) -> dict[str, Tensor]:
    """Named track losses: ``loss_track`` (weighted) and ``loss_track_aux`` (margin-L2; off when ``aux_weight == 0``).

    ``variant``: ``"unbiased"`` (the authors' code: raw dot products) or ``"paper"`` (cosines / temperature).
    """
    cosines = F.normalize(key_emb, dim=1) @ F.normalize(ref_emb, dim=1).T  # (Nk, Nr)
    if variant == "unbiased":
        main = unbiased_contrastive_loss(key_emb @ ref_emb.T, targets, valid)
    elif variant == "paper":
        main = paper_contrastive_loss(cosines, targets, valid, temperature)
    else:
        raise ValueError(f"loss variant: expected 'unbiased' or 'paper', got {variant!r}")
    losses = {"loss_track": main * weight}
    if aux_weight > 0:
        losses["loss_track_aux"] = margin_l2_loss(cosines, targets, valid) * aux_weight
    return losses
