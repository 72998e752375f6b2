"""The track losses against their formulas, written out row by row on small hand-made matrices."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from masa.training.losses import margin_l2_loss, pair_targets, paper_contrastive_loss, track_losses, unbiased_contrastive_loss

# Key samples 0..4 (instances 0, 0, 1, 2, 7 of images 0, 0, 0, 1, 1) against reference samples
# 0..6 (instances 0, 0, 1, bg, 2, 3, bg of images 0, 0, 0, 0, 1, 1, 1): key 4 (instance 7) has no
# positive; key 0 and 1 have two positives each.
KEY_IDS = torch.tensor([0, 0, 1, 2, 7])
KEY_IMAGES = torch.tensor([0, 0, 0, 1, 1])
REF_IDS = torch.tensor([0, 0, 1, -1, 2, 3, -1])
REF_IMAGES = torch.tensor([0, 0, 0, 0, 1, 1, 1])


def logits(seed: int = 0, scale: float = 3.0) -> torch.Tensor:
    return torch.randn(5, 7, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def unbiased_reference(s: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> float:
    """denom_i = sum_P exp(s_ik) / |P| + sum_{valid, not P} exp(s_ik); L_i = -(1/|P|) sum_P [s_ij - log denom_i]."""
    rows = []
    for i in range(s.shape[0]):
        pos = [j for j in range(s.shape[1]) if v[i, j] and t[i, j] > 0]
        neg = [k for k in range(s.shape[1]) if v[i, k] and not t[i, k] > 0]
        if not pos:
            continue
        denom = sum(math.exp(s[i, k]) for k in pos) / len(pos) + sum(math.exp(s[i, k]) for k in neg)
        rows.append(-sum(float(s[i, j]) - math.log(denom) for j in pos) / len(pos))
    return sum(rows) / len(rows)


def paper_reference(c: torch.Tensor, t: torch.Tensor, v: torch.Tensor, temperature: float) -> float:
    """L_i = -(1/|P|) sum_P log(exp(c_ij / t) / sum_{valid k} exp(c_ik / t))."""
    rows = []
    for i in range(c.shape[0]):
        pos = [j for j in range(c.shape[1]) if v[i, j] and t[i, j] > 0]
        if not pos:
            continue
        log_z = math.log(sum(math.exp(c[i, k] / temperature) for k in range(c.shape[1]) if v[i, k]))
        rows.append(-sum(float(c[i, j]) / temperature - log_z for j in pos) / len(pos))
    return sum(rows) / len(rows)


def margin_reference(c: torch.Tensor, t: torch.Tensor, v: torch.Tensor, ub: int = 3, neg_margin: float = 0.1) -> float:
    """Pairs in valid; positives: (clamp(c) - 1)^2; negatives: clamp(c - 0.1)^2, only the ub x #pos largest; mean over kept."""
    pos = [float(c[i, j]) for i in range(c.shape[0]) for j in range(c.shape[1]) if v[i, j] and t[i, j] > 0]
    neg = [float(c[i, j]) for i in range(c.shape[0]) for j in range(c.shape[1]) if v[i, j] and not t[i, j] > 0]
    pos_err = [(min(max(p, 0.0), 1.0) - 1.0) ** 2 for p in pos]
    neg_err = sorted(((min(max(n - neg_margin, 0.0), 1.0)) ** 2 for n in neg), reverse=True)
    if not pos:
        return 0.0
    neg_err = neg_err[: ub * len(pos)]
    return (sum(pos_err) + sum(neg_err)) / (len(pos_err) + len(neg_err))


# -- pair_targets --------------------------------------------------------------------------------


def test_pair_targets_image_mode():
    targets, valid = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "image")
    assert targets.dtype == torch.float32 and valid.dtype == torch.bool
    expected_valid = KEY_IMAGES[:, None] == REF_IMAGES[None, :]
    assert torch.equal(valid, expected_valid)
    expected = torch.zeros(5, 7)
    expected[0, [0, 1]] = expected[1, [0, 1]] = 1
    expected[2, 2] = 1
    expected[3, 4] = 1
    assert torch.equal(targets, expected)  # key 4 (instance 7) has no positive


def test_pair_targets_batch_mode_and_same_id_in_other_image():
    # instance id 0 exists in both images: it is a positive only within its own image
    key_ids, key_images = torch.tensor([0, 0]), torch.tensor([0, 1])
    ref_ids, ref_images = torch.tensor([0, 0, -1]), torch.tensor([0, 1, 1])
    targets, valid = pair_targets(key_ids, ref_ids, key_images, ref_images, "batch")
    assert valid.all()
    assert torch.equal(targets, torch.tensor([[1.0, 0, 0], [0, 1, 0]]))
    targets_img, valid_img = pair_targets(key_ids, ref_ids, key_images, ref_images, "image")
    assert torch.equal(targets_img, targets)
    assert torch.equal(valid_img, torch.tensor([[True, False, False], [False, True, True]]))


def test_pair_targets_background_never_positive():
    targets, _ = pair_targets(torch.tensor([-1, -3]), torch.tensor([-1, -3]), torch.zeros(2), torch.zeros(2), "image")
    assert targets.sum() == 0


def test_pair_targets_rejects_unknown_mode():
    with pytest.raises(ValueError, match="negatives"):
        pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "everything")


# -- unbiased contrastive loss ------------------------------------------------------------------


@pytest.mark.parametrize("negatives", ["image", "batch"])
def test_unbiased_loss_matches_formula(negatives):
    s = logits(1)
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, negatives)
    got = unbiased_contrastive_loss(s, t.double(), v)
    assert got.item() == pytest.approx(unbiased_reference(s, t, v), rel=1e-9, abs=1e-12)


def test_unbiased_loss_single_positive_is_cross_entropy():
    # |P| = 1: denom = exp(s_ij) + sum_{k != j} exp(s_ik), i.e. plain softmax cross-entropy
    s = logits(2)[:1, :4]
    t = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    v = torch.ones(1, 4, dtype=torch.bool)
    assert unbiased_contrastive_loss(s, t, v).item() == pytest.approx(F.cross_entropy(s, torch.tensor([2])).item(), rel=1e-12)


def test_unbiased_loss_positives_count_once_in_denominator():
    # all-equal logits, |P| = 2 of 4: denom = 2 e^0 / 2 + 2 e^0 = 3 -> loss log 3 (not log 4 as plain InfoNCE)
    s = torch.zeros(1, 4, dtype=torch.float64)
    t = torch.tensor([[1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    v = torch.ones(1, 4, dtype=torch.bool)
    assert unbiased_contrastive_loss(s, t, v).item() == pytest.approx(math.log(3), rel=1e-12)


def test_unbiased_loss_ignores_rows_without_positive_and_invalid_pairs():
    s = logits(3)
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "image")
    t = t.double()
    base = unbiased_contrastive_loss(s, t, v)
    changed = s.clone()
    changed[4] = 1e3  # the row without a positive
    changed[~v] = torch.randn(int((~v).sum()), dtype=torch.float64) * 100  # pairs across images
    assert unbiased_contrastive_loss(changed, t, v).item() == pytest.approx(base.item(), rel=1e-12)
    # the mean is over the 4 rows that have a positive
    one_row = [unbiased_contrastive_loss(s[i : i + 1], t[i : i + 1], v[i : i + 1]).item() for i in range(4)]
    assert base.item() == pytest.approx(sum(one_row) / 4, rel=1e-12)


def test_unbiased_loss_is_stable_for_large_logits():
    s = logits(4, scale=1.0) * 30 + 200  # exp(230) overflows float32 without the max shift
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "batch")
    got = unbiased_contrastive_loss(s.float(), t, v)
    assert torch.isfinite(got)
    assert got.item() == pytest.approx(unbiased_reference(s, t, v), rel=1e-4)


def test_unbiased_loss_gradient():
    s = logits(5).requires_grad_()
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "image")
    assert torch.autograd.gradcheck(lambda x: unbiased_contrastive_loss(x, t.double(), v), (s,))
    unbiased_contrastive_loss(s, t.double(), v).backward()
    assert torch.all(s.grad[4] == 0)  # the row without a positive gets no gradient
    assert torch.all(s.grad[~v] == 0)  # nor do pairs across images


# -- paper contrastive loss ---------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [0.07, 0.5])
@pytest.mark.parametrize("negatives", ["image", "batch"])
def test_paper_loss_matches_formula(temperature, negatives):
    c = torch.tanh(logits(6))  # cosines in (-1, 1)
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, negatives)
    got = paper_contrastive_loss(c, t.double(), v, temperature)
    assert got.item() == pytest.approx(paper_reference(c, t, v, temperature), rel=1e-9)


def test_paper_loss_float32_with_small_temperature_is_finite():
    c = torch.tensor([[1.0, -1.0, 1.0]])
    t = torch.tensor([[1.0, 0.0, 0.0]])
    v = torch.tensor([[True, True, False]])  # the third pair is invalid: not in the denominator
    got = paper_contrastive_loss(c, t, v, 0.01)
    assert got.item() == pytest.approx(math.log1p(math.exp(-200)), abs=1e-6)


# -- margin-L2 loss -----------------------------------------------------------------------------


def test_margin_l2_matches_formula_with_hard_mining():
    c = torch.tanh(logits(7))
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "batch")  # 6 positives, 29 negatives > 18: mining on
    assert int(t.sum()) * 3 < int((v & (t == 0)).sum())
    got = margin_l2_loss(c, t.double(), v)
    assert got.item() == pytest.approx(margin_reference(c, t, v), rel=1e-9)


def test_margin_l2_without_mining_when_few_negatives():
    c = torch.tensor([[0.9, 0.5, 0.05, -0.4]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    v = torch.ones(1, 4, dtype=torch.bool)
    # 3 negatives <= 3 x 1 positive: all kept; 0.05 and -0.4 are within the 0.1 margin (error 0)
    expected = ((0.9 - 1) ** 2 + (0.5 - 0.1) ** 2 + 0 + 0) / 4
    assert margin_l2_loss(c, t, v).item() == pytest.approx(expected, rel=1e-12)


def test_margin_l2_keeps_hardest_negatives_by_margin_error():
    # 1 positive, 5 negatives: 3 are kept. The hardest are the largest cosines (0.8, 0.6, 0.3), not
    # the most negative one (-0.9, whose margin-shifted, clamped error is 0).
    c = torch.tensor([[1.0, 0.8, -0.9, 0.6, 0.3, 0.2]], dtype=torch.float64)
    t = torch.tensor([[1.0, 0, 0, 0, 0, 0]], dtype=torch.float64)
    v = torch.ones(1, 6, dtype=torch.bool)
    expected = (0 + 0.7**2 + 0.5**2 + 0.2**2) / 4
    assert margin_l2_loss(c, t, v).item() == pytest.approx(expected, rel=1e-12)


def test_margin_l2_clamps_to_unit_interval():
    c = torch.tensor([[1.5, 1.5]], dtype=torch.float64)  # not cosines, but the clamp must hold
    t = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    v = torch.ones(1, 2, dtype=torch.bool)
    assert margin_l2_loss(c, t, v).item() == pytest.approx((0 + 1.0) / 2, rel=1e-12)


def test_margin_l2_counts_only_valid_pairs():
    c = torch.tanh(logits(8))
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "image")
    changed = c.clone()
    changed[~v] = 0.99
    assert margin_l2_loss(changed, t.double(), v).item() == pytest.approx(margin_l2_loss(c, t.double(), v).item(), rel=1e-12)


# -- no positive at all -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unbiased", "paper", "margin"])
def test_losses_are_zero_and_differentiable_without_positive(name):
    x = torch.randn(3, 4, requires_grad=True)
    t = torch.zeros(3, 4)
    v = torch.ones(3, 4, dtype=torch.bool)
    fn = {"unbiased": unbiased_contrastive_loss, "paper": paper_contrastive_loss, "margin": margin_l2_loss}[name]
    loss = fn(torch.tanh(x), t, v)
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(x.grad, torch.zeros(3, 4))


@pytest.mark.parametrize("variant", ["unbiased", "paper"])
def test_track_losses_without_positive_or_without_samples(variant):
    key = torch.randn(2, 8, requires_grad=True)
    ref = torch.randn(3, 8, requires_grad=True)
    losses = track_losses(key, ref, torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool), variant=variant)
    assert set(losses) == {"loss_track", "loss_track_aux"}
    sum(losses.values()).backward()
    assert all(v.item() == 0.0 for v in losses.values())
    assert key.grad is not None and torch.equal(key.grad, torch.zeros_like(key))
    empty = track_losses(torch.zeros(0, 8, requires_grad=True), ref, torch.zeros(0, 3), torch.zeros(0, 3, dtype=torch.bool))
    assert all(v.item() == 0.0 and v.requires_grad for v in empty.values())


# -- track_losses -------------------------------------------------------------------------------


def test_track_losses_combines_the_parts():
    g = torch.Generator().manual_seed(9)
    key = torch.randn(5, 16, generator=g, dtype=torch.float64)
    ref = torch.randn(7, 16, generator=g, dtype=torch.float64)
    t, v = pair_targets(KEY_IDS, REF_IDS, KEY_IMAGES, REF_IMAGES, "image")
    t = t.double()
    cos = F.normalize(key, dim=1) @ F.normalize(ref, dim=1).T
    unbiased = track_losses(key, ref, t, v)
    assert unbiased["loss_track"].item() == pytest.approx(0.25 * unbiased_reference(key @ ref.T, t, v), rel=1e-9)
    assert unbiased["loss_track_aux"].item() == pytest.approx(margin_reference(cos, t, v), rel=1e-9)
    paper = track_losses(key, ref, t, v, variant="paper", weight=1.0, aux_weight=2.0, temperature=0.1)
    assert paper["loss_track"].item() == pytest.approx(paper_reference(cos, t, v, 0.1), rel=1e-9)
    assert paper["loss_track_aux"].item() == pytest.approx(2 * margin_reference(cos, t, v), rel=1e-9)
    assert set(track_losses(key, ref, t, v, aux_weight=0.0)) == {"loss_track"}
    # the paper form is scale-free, the authors' form is not
    assert track_losses(3 * key, ref, t, v, variant="paper")["loss_track"].item() == pytest.approx(
        track_losses(key, ref, t, v, variant="paper")["loss_track"].item(), rel=1e-9
    )
    with pytest.raises(ValueError, match="variant"):
        track_losses(key, ref, t, v, variant="triplet")
