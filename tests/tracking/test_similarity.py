"""Hand-computed checks of the score functions, the distance gate, overlap suppression and greedy assignment."""

from __future__ import annotations

import math

import pytest
import torch

from masa.tracking import bisoftmax_cosine_scores, bisoftmax_scores, cosine_scores, softmax_scores
from masa.tracking.similarity import center_distance_gate, greedy_assign, overlaps_earlier


def test_bisoftmax_by_hand() -> None:
    dets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    tracks = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits [[1, 0], [1, 0]]: row softmax [a, 1-a] with a = e/(e+1); column softmax 0.5 everywhere.
    a = math.e / (math.e + 1)
    expected = torch.tensor([[(a + 0.5) / 2, (1 - a + 0.5) / 2]] * 2)
    torch.testing.assert_close(bisoftmax_scores(dets, tracks), expected)


def test_softmax_is_row_softmax_of_raw_dot_products() -> None:
    dets = torch.tensor([[2.0, 0.0]])
    tracks = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # logits [2, 0] (no normalisation, no temperature)
    expected = torch.tensor([[1 / (1 + math.exp(-2)), 1 / (1 + math.exp(2))]])
    torch.testing.assert_close(softmax_scores(dets, tracks), expected)


def test_cosine_ignores_scale_and_zero_rows_score_zero() -> None:
    dets = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    tracks = torch.tensor([[10.0, 0.0], [0.0, -2.0]])
    expected = torch.tensor([[0.6, -0.8], [0.0, 0.0]])
    torch.testing.assert_close(cosine_scores(dets, tracks), expected)


def test_mixed_is_the_average_of_bisoftmax_and_cosine() -> None:
    g = torch.Generator().manual_seed(0)
    dets, tracks = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    expected = (bisoftmax_scores(dets, tracks) + cosine_scores(dets, tracks)) / 2
    torch.testing.assert_close(bisoftmax_cosine_scores(dets, tracks), expected)


@pytest.mark.parametrize("seed", range(5))
def test_bisoftmax_of_one_detection_and_one_track_is_one(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    dets, tracks = torch.randn(1, 8, generator=g) * 10, torch.randn(1, 8, generator=g) * 10
    assert float(bisoftmax_scores(dets, tracks)) == 1.0


def test_score_functions_reject_mismatched_dimensions() -> None:
    for fn in (bisoftmax_scores, softmax_scores, cosine_scores):
        with pytest.raises(ValueError, match="dimensions differ"):
            fn(torch.zeros(2, 4), torch.zeros(3, 5))
        with pytest.raises(ValueError, match="2-D"):
            fn(torch.zeros(4), torch.zeros(3, 4))


def test_center_distance_gate_formula() -> None:
    track = torch.tensor([[0.0, 0.0, 10.0, 10.0]])  # centre (5, 5)
    allowed = 100 * math.exp(2 / 5)  # max_distance * exp(gap / growth_factor), gap 2
    dets = torch.tensor(
        [
            [10.0, 0.0, 20.0, 10.0],  # 10 px away: inside -> 1
            [allowed, 0.0, allowed + 10, 10.0],  # exactly at the radius -> 1
            [allowed + 3, 0.0, allowed + 13, 10.0],  # 3 px beyond -> exp(-3 / smoothing)
        ]
    )
    gate = center_distance_gate(
        dets, track, torch.tensor([2]), max_distance=100.0, growth_factor=5.0, smoothing=100 / 30
    )
    expected = torch.tensor([[1.0], [1.0], [math.exp(-3 / (100 / 30))]])
    torch.testing.assert_close(gate, expected, atol=1e-4, rtol=1e-4)


def test_overlaps_earlier_counts_flagged_rows_too() -> None:
    boxes = torch.tensor([[0.0, 0, 10, 10], [4, 0, 14, 10], [8, 0, 18, 10]])
    # IoU(0,1) = IoU(1,2) = 60/140 = 0.43, IoU(0,2) = 20/180 = 0.11
    flagged = overlaps_earlier(boxes, torch.tensor([0.3, 0.3, 0.3]))
    assert flagged.tolist() == [False, True, True]  # row 2 only overlaps the flagged row 1
    flagged = overlaps_earlier(boxes, torch.tensor([0.3, math.inf, 0.3]))
    assert flagged.tolist() == [False, False, True]  # row 1 not checked, still counts as earlier


def test_greedy_assign_zeroes_the_taken_column() -> None:
    scores = torch.tensor([[0.9, 0.8], [0.95, 0.1]])
    ids = greedy_assign(
        scores, torch.tensor([0.9, 0.8]), torch.tensor([7, 8]), match_thresh=0.5, obj_score_thresh=0.5
    )
    assert ids.tolist() == [7, -1]  # row 1 would prefer 7 but it is taken; 8 scores only 0.1


def test_greedy_assign_ties_take_the_first_column() -> None:
    ids = greedy_assign(
        torch.tensor([[0.7, 0.7]]), torch.tensor([0.9]), torch.tensor([3, 4]), match_thresh=0.5, obj_score_thresh=0.5
    )
    assert ids.tolist() == [3]


def test_greedy_assign_suppression_and_backdrop_targets() -> None:
    scores = torch.tensor([[0.9, 0.0], [0.8, 0.0], [0.0, 0.95]])
    det_scores = torch.tensor([0.4, 0.3, 0.2])  # all below obj_score_thresh
    ids = greedy_assign(
        scores,
        det_scores,
        torch.tensor([5, -1]),
        match_thresh=0.5,
        obj_score_thresh=0.5,
        suppress_conf_thresh=0.85,
    )
    # row 0: suppressed (0.9 > 0.85); row 1: 0.8 not > 0.85 -> -1; row 2: best is a backdrop -> -1
    assert ids.tolist() == [-2, -1, -1]


def test_greedy_assign_rejects_negative_match_threshold() -> None:
    with pytest.raises(ValueError, match="match_thresh"):
        greedy_assign(
            torch.zeros(1, 1), torch.ones(1), torch.zeros(1, dtype=torch.int64), match_thresh=-0.1, obj_score_thresh=0
        )


def _reference_greedy(scores, det_scores, target_ids, match_thresh, obj_thresh, suppress):
    """Literal transcription of the rule with eager column zeroing (float32 comparisons)."""
    scores = scores.clone()
    ids = [-1] * scores.shape[0]
    for i in range(scores.shape[0]):
        conf, j = torch.max(scores[i], dim=0)
        if conf > match_thresh and target_ids[j] > -1:
            if det_scores[i] > obj_thresh:
                ids[i] = int(target_ids[j])
                scores[:i, j] = 0
                scores[i + 1 :, j] = 0
            elif suppress is not None and conf > suppress:
                ids[i] = -2
    return ids


@pytest.mark.parametrize("seed", range(20))
def test_greedy_assign_matches_the_eager_reference(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    n, m = int(torch.randint(1, 30, (1,), generator=g)), int(torch.randint(1, 30, (1,), generator=g))
    # Coarse values make ties and conflicts frequent; some negatives (cosine-like scores).
    scores = torch.randint(-2, 9, (n, m), generator=g).float() / 8
    det_scores = torch.randint(0, 10, (n,), generator=g).float() / 10
    target_ids = torch.arange(m) + 100
    target_ids[torch.rand(m, generator=g) < 0.3] = -1  # backdrops
    for suppress in (None, 0.5):
        expected = _reference_greedy(scores, det_scores, target_ids, 0.5, 0.3, suppress)
        got = greedy_assign(
            scores, det_scores, target_ids, match_thresh=0.5, obj_score_thresh=0.3, suppress_conf_thresh=suppress
        )
        assert got.tolist() == expected
