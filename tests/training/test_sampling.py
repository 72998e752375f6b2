"""Candidate boxes, max-IoU assignment and instance-balanced sampling of the track loss."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou

from masa.training.sampling import BACKGROUND, IGNORE, SamplingConfig, assign_by_iou, candidate_boxes, sample_boxes


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def strip(height: float) -> list[float]:
    """A box [0, 0, 10, height] : its IoU with [0, 0, 10, 10] is height / 10 (for height <= 10)."""
    return [0.0, 0.0, 10.0, height]


def labels_for(counts: dict[int, int], ignored: int = 0) -> torch.Tensor:
    """Labels: ``counts[g]`` candidates of instance g, then background (-1) / ignored (-2) ones."""
    parts = [torch.full((n,), g) for g, n in counts.items()]
    parts.append(torch.full((ignored,), IGNORE))
    return torch.cat(parts).long()


def fake_candidates(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32)[:, None].repeat(1, 4) + torch.tensor([0.0, 0.0, 5.0, 5.0])


# -- assignment -----------------------------------------------------------------------------------


def test_assignment_default_thresholds():
    instances = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    cands = torch.tensor([strip(10), strip(8), strip(7.5), strip(6), strip(3.5), strip(2.5), strip(1), [50, 50, 60, 60]])
    labels = assign_by_iou(cands, instances, SamplingConfig())
    assert labels.tolist() == [0, 0, 0, IGNORE, IGNORE, BACKGROUND, BACKGROUND, BACKGROUND]


def test_assignment_threshold_boundaries_are_inclusive_for_positives():
    # exact binary fractions: IoU = pos_iou is a positive, IoU = neg_iou is ignored (background is < neg_iou)
    config = SamplingConfig(pos_iou=0.75, neg_iou=0.25)
    instances = torch.tensor([[0.0, 0.0, 10.0, 10.0]])
    cands = torch.tensor([strip(7.5), strip(7.4), strip(2.5), strip(2.4)])
    assert torch.isclose(box_iou(cands, instances)[[0, 2], 0], torch.tensor([0.75, 0.25])).all()
    assert assign_by_iou(cands, instances, config).tolist() == [0, IGNORE, IGNORE, BACKGROUND]


def test_assignment_takes_the_best_instance():
    instances = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0], [0.0, 0.0, 10.0, 9.0]])
    cands = torch.tensor([[20.0, 0.0, 30.0, 9.0], [0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 8.9], [100.0, 100.0, 110.0, 110.0]])
    labels = assign_by_iou(cands, instances, SamplingConfig())
    assert labels.tolist() == [1, 0, 2, BACKGROUND]


def test_assignment_without_instances_or_candidates():
    cands = torch.tensor([strip(10), strip(5)])
    assert assign_by_iou(cands, torch.zeros(0, 4), SamplingConfig()).tolist() == [BACKGROUND, BACKGROUND]
    assert assign_by_iou(torch.zeros(0, 4), torch.tensor([strip(10)]), SamplingConfig()).numel() == 0


def test_config_validation():
    with pytest.raises(ValueError):
        SamplingConfig(pos_iou=0.3, neg_iou=0.7)
    with pytest.raises(ValueError):
        SamplingConfig(pos_fraction=0.0)
    with pytest.raises(ValueError):
        SamplingConfig(num=0)


# -- sampling caps ------------------------------------------------------------------------------


def counts(labels: torch.Tensor) -> tuple[int, int, int]:
    return int((labels >= 0).sum()), int((labels == BACKGROUND).sum()), int((labels == IGNORE).sum())


def test_sampling_caps_with_many_positives():
    labels = torch.cat([labels_for({0: 300, 1: 200, 2: 100}, ignored=50), torch.full((2000,), BACKGROUND)])
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(), gen())
    pos, neg, ign = counts(out.labels)
    assert (pos, neg, ign) == (256, 256, 0)  # num * pos_fraction positives, the rest negatives
    assert len(out.boxes) == 512


def test_sampling_caps_negatives_per_positive():
    labels = torch.cat([labels_for({0: 6, 1: 4}, ignored=5), torch.full((1000,), BACKGROUND)])
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(), gen())
    assert counts(out.labels) == (10, 30, 0)  # all positives, neg_pos_ub x 10 negatives
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(neg_pos_ub=-1), gen())
    assert counts(out.labels) == (10, 502, 0)  # no bound: num - positives
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(num=64, pos_fraction=0.25), gen())
    assert counts(out.labels) == (10, 30, 0)
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(num=20, pos_fraction=0.25), gen())
    assert counts(out.labels) == (5, 15, 0)  # 20 * 0.25 positives, then num - 5 negatives (< 3 x 5)


def test_sampling_without_positives_keeps_a_few_negatives():
    labels = torch.full((100,), BACKGROUND)
    out = sample_boxes(fake_candidates(100), labels, SamplingConfig(), gen())
    assert counts(out.labels) == (0, 3, 0)  # neg_pos_ub x max(#pos, 1)


def test_sampling_with_few_negatives_takes_them_all():
    labels = torch.cat([labels_for({0: 20}), torch.full((7,), BACKGROUND)])
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(), gen())
    assert counts(out.labels) == (20, 7, 0)


def test_sampled_boxes_match_their_labels():
    labels = torch.cat([labels_for({0: 400, 1: 300}, ignored=10), torch.full((900,), BACKGROUND)])
    labels = labels[torch.randperm(len(labels), generator=gen(3))]
    boxes = fake_candidates(len(labels))
    out = sample_boxes(boxes, labels, SamplingConfig(), gen())
    index = out.boxes[:, 0].long()  # fake_candidates: box i starts at (i, i)
    assert torch.equal(labels[index], out.labels)
    assert len(index.unique()) == len(index)  # no candidate twice
    assert torch.all(out.labels[:256] >= 0) and torch.all(out.labels[256:] == BACKGROUND)  # positives first


# -- instance balancing ---------------------------------------------------------------------------


def test_sampling_balances_instances():
    # 1000 positives of instance 0 and 10 of instances 1 and 2: per instance round(256 / 3) + 1 = 86
    # are drawn first, so the small instances keep all their positives (uniform sampling: ~2.5 each)
    labels = torch.cat([labels_for({0: 1000, 1: 10, 2: 10}), torch.full((500,), BACKGROUND)])
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(), gen())
    per = torch.bincount(out.labels[out.labels >= 0], minlength=3)
    assert per.tolist() == [236, 10, 10]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sampling_every_instance_gets_its_share(seed):
    labels = torch.cat([labels_for({g: 120 + 40 * g for g in range(5)}), torch.full((300,), BACKGROUND)])
    labels = labels[torch.randperm(len(labels), generator=gen(10 + seed))]
    out = sample_boxes(fake_candidates(len(labels)), labels, SamplingConfig(num=256), gen(seed))
    per = torch.bincount(out.labels[out.labels >= 0], minlength=5)
    assert int(per.sum()) == 128
    # per instance round(128 / 5) + 1 = 27 first (135 > 128: cut at random to 128)
    assert int(per.min()) >= 20, per.tolist()


def test_sampling_is_deterministic_per_generator_seed():
    labels = torch.cat([labels_for({0: 500, 1: 400, 2: 30}), torch.full((3000,), BACKGROUND)])
    boxes = fake_candidates(len(labels))
    a = sample_boxes(boxes, labels, SamplingConfig(), gen(7))
    b = sample_boxes(boxes, labels, SamplingConfig(), gen(7))
    c = sample_boxes(boxes, labels, SamplingConfig(), gen(8))
    assert torch.equal(a.boxes, b.boxes) and torch.equal(a.labels, b.labels)
    assert not torch.equal(a.boxes, c.boxes)


# -- candidates ---------------------------------------------------------------------------------


def test_candidate_boxes_layout_and_determinism():
    config = SamplingConfig(jitter_per_instance=4, random_boxes=16)
    instances = torch.tensor([[10.0, 20.0, 50.0, 60.0], [0.0, 0.0, 30.0, 15.0]])
    a = candidate_boxes(instances, (90, 120), config, gen(1))
    assert a.shape == (2 + 2 * 4 + 16, 4) and a.dtype == torch.float32
    assert torch.equal(a[:2], instances)  # the instances themselves come first (add_gt_as_proposals)
    assert torch.equal(a, candidate_boxes(instances, (90, 120), config, gen(1)))
    assert not torch.equal(a, candidate_boxes(instances, (90, 120), config, gen(2)))
    # jittered copies mostly stay positives of their instance
    jitter_labels = assign_by_iou(a[2:10], instances, SamplingConfig())
    assert int((jitter_labels >= 0).sum()) >= 4
    assert len(candidate_boxes(torch.zeros(0, 4), (90, 120), config, gen(1))) == 16


@pytest.mark.parametrize("sigma", [0.1, 1.0])
def test_candidate_boxes_inside_the_view_and_at_least_one_pixel(sigma):
    h, w = 40, 64
    # instances at the borders and corners (one 1 px wide), large jitter: boxes pushed outside must be clipped back
    instances = torch.tensor(
        [[0.0, 0.0, 5.0, 5.0], [59.0, 35.0, 64.0, 40.0], [63.0, 0.0, 64.0, 40.0], [0.0, 39.0, 64.0, 40.0], [20.0, 10.0, 40.0, 30.0]]
    )
    config = SamplingConfig(jitter_per_instance=200, jitter_sigma=sigma, random_boxes=500)
    boxes = candidate_boxes(instances, (h, w), config, gen(0))
    assert torch.isfinite(boxes).all()
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all()
    assert (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()
    wh = boxes[:, 2:] - boxes[:, :2]
    assert (wh >= 1 - 1e-5).all()  # 1 px, up to float32 rounding of x1 + 1
