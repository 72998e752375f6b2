"""Match scores, the centre-distance gate, overlap suppression and greedy assignment.

Pure functions shared by :class:`~masa.tracking.MasaTaoTracker` and
:class:`~masa.tracking.MasaBDDTracker`: tensors in, tensors out, no state.

Conventions: ``det_embeds`` is ``float32[N, D]`` (the current frame's detections, sorted by
score), ``track_embeds`` is ``float32[M, D]`` (the memory). Score matrices are ``float32[N, M]``:
row ``i`` is detection ``i``, column ``j`` is memory entry ``j``. Embeddings are used as they come
out of the track head: the dot products are raw (no normalisation, no temperature), as in the
authors' trackers.
"""

from __future__ import annotations

import torch
from torch import Tensor

from masa.ops.boxes import box_centers, box_iou

__all__ = [
    "bisoftmax_scores",
    "softmax_scores",
    "cosine_scores",
    "bisoftmax_cosine_scores",
    "center_distance_gate",
    "overlaps_earlier",
    "greedy_assign",
]


def _check_pair(det_embeds: Tensor, track_embeds: Tensor) -> None:
    if det_embeds.ndim != 2 or track_embeds.ndim != 2:
        raise ValueError(
            f"expected 2-D embeddings [N, D] and [M, D], got {list(det_embeds.shape)} and {list(track_embeds.shape)}"
        )
    if det_embeds.shape[1] != track_embeds.shape[1]:
        raise ValueError(
            f"embedding dimensions differ: detections have D={det_embeds.shape[1]}, "
            f"tracks have D={track_embeds.shape[1]}"
        )


def _l2_normalize(x: Tensor, eps: float = 1e-12) -> Tensor:
    """Rows of ``x [K, D]`` divided by their L2 norm (clamped at ``eps``: zero rows stay zero)."""
    return x / x.norm(dim=1, keepdim=True).clamp_min(eps)


def bisoftmax_scores(det_embeds: Tensor, track_embeds: Tensor) -> Tensor:
    """Bi-directional softmax of raw dot products, ``float32[N, M]`` in ``[0, 1]``.

    ``S = det_embeds @ track_embeds.T``; the result is
    ``(softmax(S, dim=1) + softmax(S, dim=0)) / 2``: the first term normalises each detection over
    all memory entries, the second each memory entry over all detections (the paper's ``s1``,
    Eq. 2). With one detection and one memory entry it is exactly 1, whatever the appearance.
    """
    _check_pair(det_embeds, track_embeds)
    logits = det_embeds @ track_embeds.T  # [N, M]
    return (logits.softmax(dim=1) + logits.softmax(dim=0)) / 2


def softmax_scores(det_embeds: Tensor, track_embeds: Tensor) -> Tensor:
    """Row softmax of raw dot products, ``float32[N, M]``: each detection over all memory entries."""
    _check_pair(det_embeds, track_embeds)
    return (det_embeds @ track_embeds.T).softmax(dim=1)  # [N, M]


def cosine_scores(det_embeds: Tensor, track_embeds: Tensor) -> Tensor:
    """Cosine similarity ``float32[N, M]`` in ``[-1, 1]`` (a zero embedding scores 0 with everything)."""
    _check_pair(det_embeds, track_embeds)
    return _l2_normalize(det_embeds) @ _l2_normalize(track_embeds).T  # [N, M]


def bisoftmax_cosine_scores(det_embeds: Tensor, track_embeds: Tensor) -> Tensor:
    """The paper's Eq. 2 and the TAO tracker's score: ``(bisoftmax + cosine) / 2``, ``float32[N, M]``."""
    return (bisoftmax_scores(det_embeds, track_embeds) + cosine_scores(det_embeds, track_embeds)) / 2


def center_distance_gate(
    det_boxes: Tensor,
    track_boxes: Tensor,
    frame_gaps: Tensor,
    *,
    max_distance: float,
    growth_factor: float,
    smoothing: float,
) -> Tensor:
    """Soft spatial gate ``float32[N, M]`` in ``(0, 1]`` that the TAO tracker multiplies its scores by.

    Args:
        det_boxes: ``float32[N, 4]`` xyxy boxes of the detections, original-image pixels.
        track_boxes: ``float32[M, 4]`` xyxy last boxes of the tracks.
        frame_gaps: ``[M]`` frames since each track was last matched (``|frame - last_frame|``).
        max_distance: radius in pixels allowed for a one-frame-old track before the growth term.
        growth_factor: the allowed radius is ``max_distance * exp(gap / growth_factor)``
            (the authors use ``fps / 6``).
        smoothing: beyond the allowed radius ``A`` the gate decays as
            ``exp(-(distance - A) / smoothing)`` (the authors use ``100 / fps``).

    ``distance`` is the Euclidean distance between box centres.
    """
    det_centers = box_centers(det_boxes)  # [N, 2]
    track_centers = box_centers(track_boxes)  # [M, 2]
    # The direct difference (not the matmul shortcut) keeps the distance exact for the threshold.
    distance = torch.cdist(det_centers, track_centers, compute_mode="donot_use_mm_for_euclid_dist")  # [N, M]
    allowed = max_distance * torch.exp(frame_gaps.to(distance.dtype) / growth_factor)  # [M]
    excess = distance - allowed[None, :]  # [N, M]
    decay = torch.exp(-excess.clamp_min(0) / smoothing)
    return torch.where(excess <= 0, torch.ones_like(decay), decay)


def overlaps_earlier(boxes: Tensor, iou_thresholds: Tensor) -> Tensor:
    """``bool[N]``: row ``i`` overlaps some earlier row ``j < i`` with ``IoU > iou_thresholds[i]``.

    ``boxes`` is ``float32[N, 4]`` xyxy, sorted by descending score; ``iou_thresholds`` is
    ``float32[N]`` (``inf`` for rows that must not be checked). Every earlier row counts, including
    rows that are themselves flagged: this is the authors' distractor, duplicate and backdrop
    suppression, which is not a classic NMS (there a suppressed box suppresses nothing). Because of
    that it needs no sequential loop.
    """
    n = boxes.shape[0]
    if n < 2:
        return torch.zeros(n, dtype=torch.bool, device=boxes.device)
    out = torch.zeros(n, dtype=torch.bool, device=boxes.device)
    step = max(1, 2**22 // n)  # row chunks bound the [rows, N] temporaries for crowds (same result)
    for start in range(0, n, step):
        rows = slice(start, min(n, start + step))
        ious = box_iou(boxes[rows], boxes)  # [R, N]
        index = torch.arange(rows.start, rows.stop, device=boxes.device)
        earlier = torch.arange(n, device=boxes.device)[None, :] < index[:, None]  # j < i
        out[rows] = ((ious > iou_thresholds[rows, None]) & earlier).any(dim=1)
    return out


def _as_float32(value: float) -> float:
    """``value`` rounded to float32: thresholds are compared the way torch compares a float32 tensor."""
    return float(torch.tensor(value, dtype=torch.float32))


def greedy_assign(
    match_scores: Tensor,
    det_scores: Tensor,
    target_ids: Tensor,
    *,
    match_thresh: float,
    obj_score_thresh: float,
    suppress_conf_thresh: float | None = None,
) -> Tensor:
    """The authors' greedy matching, one detection at a time in row (= score) order.

    For each detection ``i``: ``(conf, j) = max_j S[i, j]`` (first index on ties). If
    ``conf > match_thresh`` and column ``j`` is a real track (``target_ids[j] >= 0``):

    * if ``det_scores[i] > obj_score_thresh``: detection ``i`` takes id ``target_ids[j]`` and
      column ``j`` is zeroed for all other detections, so no later detection can take that track;
    * else, if ``suppress_conf_thresh`` is set (BDD tracker) and ``conf > suppress_conf_thresh``:
      detection ``i`` gets ``-2`` (suppressed); the column is *not* zeroed.

    Args:
        match_scores: ``float32[N, M]`` scores, rows sorted by descending detection score.
        det_scores: ``float32[N]`` detection scores in the same order.
        target_ids: ``int64[M]`` id of each memory column; ``-1`` for backdrops (never matched).
        match_thresh, obj_score_thresh, suppress_conf_thresh: strict lower bounds (compared in
            float32, like the authors' tensor comparisons); ``match_thresh`` must be ``>= 0``.

    Returns:
        ``int64[N]`` on the device of ``match_scores``: a track id, ``-1`` (unmatched) or ``-2``.
    """
    n, m = match_scores.shape
    assert det_scores.shape == (n,) and target_ids.shape == (m,)
    if match_thresh < 0:
        # A zeroed (taken) column scores 0, so it could be taken a second time.
        raise ValueError(f"match_thresh must be >= 0, got {match_thresh}")
    ids = [-1] * n
    if n > 0 and m > 0:
        match_thresh = _as_float32(match_thresh)
        obj_score_thresh = _as_float32(obj_score_thresh)
        suppress = None if suppress_conf_thresh is None else _as_float32(suppress_conf_thresh)
        scores = match_scores.detach()
        confident = (det_scores > obj_score_thresh).tolist()
        targets = target_ids.tolist()
        # Each row's best column on the raw scores, first index on ties: [N].
        best_cols = scores.argmax(dim=1)
        best_confs = scores.gather(1, best_cols[:, None]).squeeze(1)
        # Zeroing never lifts a score above max(score, 0) and match_thresh >= 0, so a row whose
        # initial best is not above the threshold can never act: skip it.
        can_act = best_confs > match_thresh
        if suppress is None:
            can_act &= det_scores > obj_score_thresh
        cols, confs = best_cols.tolist(), best_confs.tolist()
        # Zeroing is applied lazily: a row only differs from its raw scores in the columns taken
        # by earlier rows. If its raw best column is not taken, that column is still its best
        # (taken columns drop to 0 < conf; ties keep the first index), so only rows whose raw
        # best was taken are rescored with the taken columns zeroed.
        taken: list[int] = []  # columns taken so far, in order
        taken_set: set[int] = set()
        for i in can_act.nonzero().flatten().tolist():
            j, conf = cols[i], confs[i]
            if j in taken_set:
                row = scores[i].clone()
                row[taken] = 0
                j = int(row.argmax())
                conf = float(row[j])
            if conf <= match_thresh or targets[j] < 0:
                continue
            if confident[i]:
                ids[i] = targets[j]
                taken.append(j)  # column j now scores 0 for every later detection
                taken_set.add(j)
            elif suppress is not None and conf > suppress:
                ids[i] = -2
    return torch.tensor(ids, dtype=torch.int64, device=match_scores.device)

