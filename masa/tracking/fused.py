"""``FusedTracker``: MASA appearance fused with Kalman motion, two-stage matching, long-term re-id.

Per ``update(detections, frame_index)`` (``docs/tracker.md`` explains every parameter):

1. validate; an empty frame still ages the tracks (lost tracks may expire).
2. **Predict** every track with a constant-velocity Kalman filter over the frame gap; when camera
   motion compensation is on, warp the predictions by the camera motion measured on the frame
   given to :meth:`FusedTracker.observe_frame`.
3. Split the detections by score: **confident** (``score >= high_score_thresh``), **weak**
   (``low_score_thresh <= score < high_score_thresh``); lower ones are ignored.
4. **Stage 1** (confident detections vs active and recently lost tracks): fused similarity
   ``w * IoU(predicted box, box) + (1 - w) * appearance``, where ``appearance`` is the cosine of
   the detection's embedding with the track's averaged embedding, mapped to ``[0, 1]``, and the
   motion weight ``w = motion_weight * 0.5 ** (seconds since the track's last match /
   motion_half_life)`` falls as a track goes unseen (and at low frame rate, where frames are far
   apart in time). Pairs outside the Kalman gate (Mahalanobis distance of the centre) or with
   a different label (``class_aware``) cannot match. Optimal assignment (Hungarian), pairs below
   ``match_thresh`` rejected.
5. **Stage 2** (weak detections vs tracks matched on the previous frame and still free): IoU of
   the predicted box only, at least ``low_match_iou`` (weak boxes are often occluded: their
   appearance describes the occluder).
6. **Stage 3, re-identification** (confident detections still free vs every lost track kept for
   up to ``reid_seconds``): appearance only, the best cosine over the track's gallery of past
   embeddings, at least ``reid_thresh`` (stricter than stage 1), Hungarian.
7. Remaining confident detections start **tentative** tracks (on a video's first frame they are
   confirmed at once). A track is **confirmed** after ``confirm_hits`` matched frames. Unmatched
   tentative tracks are removed; unmatched confirmed tracks become **lost**; lost tracks are
   matched by motion + appearance for ``lost_seconds`` and by appearance alone until
   ``reid_seconds``, then **removed**.
8. Output: every matched or new detection whose track is confirmed, or tentative when
   ``output_tentative`` (the default: no confident box is ever dropped). Public ids are handed
   out in score order when a track is first output, so ids have no gaps.

No detection is suppressed for overlapping another (crowds keep every confident box). Times are
in seconds, converted with the source's frame rate; frame gaps (``frame_index`` jumps) count as
time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import Tensor

from masa.ops.boxes import box_iou_xywh_np
from masa.structures import Detections, Tracks
from masa.tracking import kalman
from masa.tracking.base import gather_tracks
from masa.tracking.camera_motion import CMC_METHODS, CameraMotionEstimator
from masa.tracking.fused_bank import CONFIRMED, LOST, TENTATIVE, FusedBank, unit_rows
from masa.tracking.validation import check_finite, check_frame_input, check_int

__all__ = ["FusedTrackerConfig", "FusedTracker"]

_NO_MATCH = -1.0  # similarity of pairs that may not match (gated, other class)
_FORBIDDEN = 1e6  # assignment cost of such pairs


@dataclass(frozen=True)
class FusedTrackerConfig:
    """Settings of :class:`FusedTracker`; times in seconds, scores and similarities in ``[0, 1]``.

    Attributes:
        high_score_thresh: detections scoring at least this are *confident*: matched first, and
            the only ones that start tracks or re-identify lost ones.
        low_score_thresh: detections between this and ``high_score_thresh`` are *weak*: they can
            only continue a track that was matched on the previous frame, by overlap. Lower
            scores are ignored.
        new_track_thresh: an unmatched confident detection starts a track when its score is at
            least this (``>= high_score_thresh`` to have an effect).
        match_thresh: minimum fused similarity of a stage-1 match.
        low_match_iou: minimum IoU of a weak detection with a track's predicted box (stage 2).
        reid_thresh: minimum gallery cosine (raw cosine in ``[-1, 1]``) to re-identify a lost
            track by appearance alone (stage 3).
        motion_weight: weight of the motion term (IoU with the predicted box) for a track matched
            a moment ago; appearance gets the rest.
        motion_half_life: seconds after which the motion weight has halved (the longer a track
            is unseen, the less its prediction is worth).
        appearance_floor: the cosine that maps to appearance similarity 0 in stage 1
            (``(cos - floor) / (1 - floor)``, clipped to ``[0, 1]``).
        gate_sigmas: Kalman gate: a pair is impossible when the detection's centre is more than
            this many standard deviations (Mahalanobis distance) from the track's predicted
            centre; ``None`` turns the gate off.
        kalman_step: seconds per Kalman step: the motion noise (:mod:`masa.tracking.kalman`) is
            set per step, so the filter's uncertainty grows with time, not with frames.
        lost_seconds: how long a lost track still takes part in stage 1 (motion + appearance).
        reid_seconds: how long a lost track is kept for re-identification, then removed.
        confirm_hits: matched frames (including the first) after which a track is confirmed.
        output_tentative: also output tentative tracks (every confident box gets an id at once).
        momentum: weight of the new embedding in the track's average (``(1-m) * old + m * new``).
        gallery_size: past embeddings kept per track for re-identification.
        gallery_interval: seconds between two gallery entries of one track.
        class_aware: only match equal labels; a track keeps the label it was created with.
        cmc: camera-motion compensation: ``"off"``, ``"sparse-flow"`` or ``"ecc"``
            (:mod:`masa.tracking.camera_motion`); needs :meth:`FusedTracker.observe_frame`.
        cmc_downscale: frames are shrunk by this integer factor before estimating camera motion.
    """

    high_score_thresh: float = 0.4
    low_score_thresh: float = 0.1
    new_track_thresh: float = 0.4
    match_thresh: float = 0.3
    low_match_iou: float = 0.5
    reid_thresh: float = 0.95
    motion_weight: float = 0.8
    motion_half_life: float = 1.0
    appearance_floor: float = 0.5
    gate_sigmas: float | None = 6.0
    kalman_step: float = 0.1
    lost_seconds: float = 1.5
    reid_seconds: float = 30.0
    confirm_hits: int = 2
    output_tentative: bool = True
    momentum: float = 0.2
    gallery_size: int = 10
    gallery_interval: float = 0.5
    occlusion_iou: float = 0.5
    class_aware: bool = False
    cmc: str = "off"
    cmc_downscale: int = 2

    def __post_init__(self) -> None:
        for name in ("high_score_thresh", "low_score_thresh", "new_track_thresh", "match_thresh", "low_match_iou"):
            check_finite(name, getattr(self, name))
        if not self.low_score_thresh <= self.high_score_thresh:
            raise ValueError(f"low_score_thresh ({self.low_score_thresh}) must be <= high_score_thresh ({self.high_score_thresh})")
        for name in ("reid_thresh", "appearance_floor"):
            check_finite(name, getattr(self, name))
            if not -1 <= getattr(self, name) < 1:
                raise ValueError(f"{name} is a cosine: expected a value in [-1, 1), got {getattr(self, name)}")
        for name in ("motion_weight", "momentum"):
            check_finite(name, getattr(self, name))
        if not 0 <= self.motion_weight <= 1:
            raise ValueError(f"motion_weight must be in [0, 1], got {self.motion_weight}")
        if not 0 < self.momentum <= 1:
            raise ValueError(f"momentum (weight of the new embedding) must be in (0, 1], got {self.momentum}")
        for name in ("motion_half_life", "gallery_interval", "kalman_step"):
            check_finite(name, getattr(self, name))
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        for name in ("lost_seconds", "reid_seconds"):
            check_finite(name, getattr(self, name))
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        if self.reid_seconds < self.lost_seconds:
            raise ValueError(f"reid_seconds ({self.reid_seconds}) must be >= lost_seconds ({self.lost_seconds})")
        if self.gate_sigmas is not None:
            check_finite("gate_sigmas", self.gate_sigmas)
            if self.gate_sigmas <= 0:
                raise ValueError(f"gate_sigmas must be > 0 standard deviations, or None (no gate), got {self.gate_sigmas}")
        check_int("confirm_hits", self.confirm_hits, 1)
        check_int("gallery_size", self.gallery_size, 1)
        check_int("cmc_downscale", self.cmc_downscale, 1)
        if self.cmc not in CMC_METHODS:
            raise ValueError(f"cmc must be one of {CMC_METHODS}, got {self.cmc!r}")


class FusedTracker:
    """Online tracker fusing appearance and motion (rules in the module docstring).

    Args:
        config: the settings.
        fps: frame rate of the source (frames per second, > 0); converts the times in
            ``config`` to frames.

    Use one instance per video; :meth:`reset` starts a new one. ``update()`` follows the MASA
    trackers' contract: ``Detections`` with ``embeddings float32[N, D]``, xyxy pixel boxes, a
    0-based non-decreasing ``frame_index``; returns ``Tracks`` of the input rows that got an id,
    sorted by ``det_index``, with every field (masks, embeddings, ``data``) carried over.
    """

    def __init__(self, config: FusedTrackerConfig = FusedTrackerConfig(), *, fps: float = 30.0) -> None:
        if not isinstance(config, FusedTrackerConfig):
            raise TypeError(f"config must be a FusedTrackerConfig, got {type(config).__name__}")
        check_finite("fps", fps)
        if fps <= 0:
            raise ValueError(f"fps must be > 0 frames per second, got {fps}")
        self.config, self.fps = config, float(fps)
        self._cmc = None if config.cmc == "off" else CameraMotionEstimator(config.cmc, downscale=config.cmc_downscale)
        self.reset()

    def reset(self) -> None:
        """Forget every track, restart ids at 0 and accept any ``frame_index`` and ``D`` again."""
        self._bank: FusedBank | None = None
        self._public: dict[int, int] = {}  # internal track key -> public id
        self._next_key = 0
        self._next_id = 0
        self._last_frame_index: int | None = None
        self._embedding_dim: int | None = None
        self._camera_motion: np.ndarray | None = None  # affine [2, 3] for the next update
        if self._cmc is not None:
            self._cmc.reset()

    @property
    def needs_frames(self) -> bool:
        """True when camera-motion compensation is on: call :meth:`observe_frame` before each update."""
        return self._cmc is not None

    @property
    def num_tracks(self) -> int:
        """Number of public ids handed out since the last reset."""
        return self._next_id

    def describe(self) -> str:
        """One line naming the tracker and its settings (printed by ``masa track``)."""
        c = self.config
        return (
            f"fused tracker (appearance + motion) at {self.fps:g} fps: confident >= {c.high_score_thresh:g}, "
            f"weak >= {c.low_score_thresh:g}, match >= {c.match_thresh:g}, re-id cosine >= {c.reid_thresh:g}, "
            f"motion weight {c.motion_weight:g} (half-life {c.motion_half_life:g} s), lost {c.lost_seconds:g} s, "
            f"re-id memory {c.reid_seconds:g} s, camera motion {c.cmc}" + (", class-aware" if c.class_aware else "")
        )

    def observe_frame(self, image: np.ndarray, boxes: Tensor | None = None) -> None:
        """Give the tracker the pixels of the frame about to be updated (camera motion only).

        ``image`` is ``uint8[H, W, 3]`` RGB; ``boxes`` (``float32[N, 4]`` xyxy pixels) are that
        frame's detections, whose points are ignored. A no-op when ``config.cmc == "off"``.
        """
        if self._cmc is not None:
            self._camera_motion = self._cmc.estimate(image, boxes)

    # -- one frame --------------------------------------------------------------------------------

    def update(self, detections: Detections, frame_index: int) -> Tracks:
        """Associate one frame's detections with the tracks; return the rows that got an id.

        Raises ``ValueError`` for missing or non-finite embeddings, a changed embedding
        dimension or a ``frame_index`` that is not a non-decreasing integer ``>= 0``; the tracker
        is unchanged then.
        """
        frame, embeds = check_frame_input(
            detections, frame_index, last_frame_index=self._last_frame_index, embedding_dim=self._embedding_dim
        )
        if embeds is not None:
            self._embedding_dim = int(embeds.shape[1])
        steps = 0 if self._last_frame_index is None else frame - self._last_frame_index
        first_frame = self._last_frame_index is None
        self._last_frame_index = frame
        camera, self._camera_motion = self._camera_motion, None
        bank = self._bank
        if bank is not None:
            # Kalman steps are kalman_step seconds whatever the frame rate (module docstring of kalman).
            bank.mean, bank.cov = kalman.predict(bank.mean, bank.cov, steps / (self.fps * self.config.kalman_step))
            if camera is not None:
                bank.mean, bank.cov = kalman.warp(bank.mean, bank.cov, camera)
            if steps > 1 and len(bank):
                self._age_over_gap(frame)
        if len(detections) == 0 or embeds is None:
            self._age(frame, matched=np.zeros(0 if bank is None else len(bank), dtype=bool))
            empty = torch.zeros(0, dtype=torch.int64)
            return gather_tracks(detections, empty, empty)
        if bank is None:
            bank = self._bank = FusedBank.empty(int(embeds.shape[1]), self.config.gallery_size)

        # The state lives in numpy on the CPU (fused_bank module docstring): one copy in.
        cfg = self.config
        scores_in = detections.scores.detach().cpu().numpy()
        order = np.argsort(-scores_in, kind="stable")  # rows by descending score, ties in input order
        boxes = detections.boxes.detach().cpu().numpy().astype(np.float64)[order]
        scores, labels = scores_in[order], detections.labels.detach().cpu().numpy()[order]
        units = unit_rows(embeds.detach().to("cpu", torch.float32).numpy()[order])
        track_of = np.full(len(order), -1, dtype=np.int64)  # bank row per sorted detection
        confident = scores >= cfg.high_score_thresh
        weak = ~confident & (scores >= cfg.low_score_thresh)

        ages = (frame - bank.last_frames) / self.fps  # [M] seconds since last match
        free = np.ones(len(bank), dtype=bool)
        predicted = kalman.measurements_to_xywh(bank.mean)  # [M, 4]
        iou = box_iou_xywh_np(_xyxy_to_xywh(boxes), predicted)  # [N, M]
        # Stage 1: confident detections vs active + recently lost tracks, fused similarity.
        active = (bank.state != LOST) | (ages <= cfg.lost_seconds + 1e-9)
        if confident.any() and active.any():
            sim = self._fused_similarity(boxes, labels, units, iou, ages)
            self._match(sim, confident, active, cfg.match_thresh, track_of, free)
        # Stage 2: weak detections vs tracks matched on the previous frame, overlap only.
        recent = (bank.state != LOST) & free
        if weak.any() and recent.any():
            self._match(self._class_mask(iou, labels), weak, recent, cfg.low_match_iou, track_of, free)
        # Stage 3: re-identification of lost tracks by their gallery, appearance only.
        lost = (bank.state == LOST) & free
        unmatched = confident & (track_of < 0)
        if lost.any() and unmatched.any():
            cand, tracks = np.flatnonzero(unmatched), np.flatnonzero(lost)
            gallery = np.einsum("nd,mgd->nmg", units[cand], bank.gallery[tracks])
            best = np.where(bank.gallery_valid[tracks][None], gallery, -2.0).max(axis=2)  # [n, m] best cosine
            sim = np.full((len(order), len(bank)), _NO_MATCH)
            sim[np.ix_(cand, tracks)] = best
            self._match(self._class_mask(sim, labels), unmatched, lost, cfg.reid_thresh, track_of, free)

        matched = track_of >= 0
        rows = track_of[matched]
        key_of = np.full(len(order), -1, dtype=np.int64)  # track key per sorted detection (-1: none)
        key_of[matched] = bank.keys[rows]
        previous = bank.state[rows]
        overlap = _max_overlap(boxes, np.flatnonzero(matched))
        bank.update_matched(
            rows,
            boxes[matched],
            labels[matched],
            units[matched],
            appearance_ok=(scores[matched] >= cfg.high_score_thresh) & (overlap <= cfg.occlusion_iou),
            frame_index=frame,
            momentum=cfg.momentum,
            gallery_interval=max(1, round(cfg.gallery_interval * self.fps)),
            keep_labels=cfg.class_aware,
        )
        confirm = (previous != TENTATIVE) | (bank.hits[rows] >= cfg.confirm_hits)
        bank.state[rows] = np.where(confirm, CONFIRMED, TENTATIVE)
        self._age(frame, matched=~free)

        start = confident & (track_of < 0) & (scores >= cfg.new_track_thresh)
        keys = np.arange(self._next_key, self._next_key + int(start.sum()), dtype=np.int64)
        self._next_key += keys.size
        new_state = CONFIRMED if (first_frame or cfg.confirm_hits <= 1) else TENTATIVE
        bank.append(keys, boxes[start], labels[start], units[start], frame_index=frame, state=new_state)
        key_of[start] = keys
        return self._output(detections, order, key_of)

    def _age(self, frame: int, *, matched: np.ndarray) -> None:
        """Lifecycle of the tracks not matched this frame (``matched``: ``bool[M]``).

        Tentative ones are removed, confirmed ones become lost, lost ones unseen for more than
        ``reid_seconds`` are removed.
        """
        bank = self._bank
        if bank is None or len(bank) == 0:
            return
        unmatched = ~matched
        bank.state[unmatched & (bank.state == CONFIRMED)] = LOST
        too_old = (frame - bank.last_frames) / self.fps > self.config.reid_seconds + 1e-9
        remove = unmatched & ((bank.state == TENTATIVE) | ((bank.state == LOST) & too_old))
        bank.keep(~remove)

    def _age_over_gap(self, frame: int) -> None:
        """A jump in ``frame_index`` is frames in which nothing was seen, as if they had been given
        empty: every track missed them (confirmed ones are lost, tentative ones removed), and tracks
        unseen for longer than ``reid_seconds`` are removed."""
        bank = self._bank
        assert bank is not None
        bank.state[bank.state == CONFIRMED] = LOST
        too_old = (frame - bank.last_frames) / self.fps > self.config.reid_seconds + 1e-9
        bank.keep(~((bank.state == TENTATIVE) | too_old))

    def _output(self, detections: Detections, order: np.ndarray, key_of: np.ndarray) -> Tracks:
        """``Tracks`` of the sorted detections with a track key whose track may be output.

        Tracks get their public id (next in the counter, in score order) the first time they are
        output.
        """
        bank = self._bank
        assert bank is not None
        has = np.flatnonzero(key_of >= 0)
        pos = np.searchsorted(bank.keys, key_of[has])  # bank row of each keyed detection
        out = bank.state[pos] == CONFIRMED
        if self.config.output_tentative:
            out |= bank.state[pos] == TENTATIVE
        has, pos = has[out], pos[out]
        fresh = pos[bank.public_ids[pos] < 0]
        bank.public_ids[fresh] = np.arange(self._next_id, self._next_id + fresh.size)
        self._next_id += fresh.size
        return gather_tracks(detections, torch.from_numpy(order[has]), torch.from_numpy(bank.public_ids[pos]))

    # -- steps ------------------------------------------------------------------------------------

    def _fused_similarity(self, boxes: np.ndarray, labels: np.ndarray, units: np.ndarray, iou: np.ndarray, ages: np.ndarray) -> np.ndarray:
        """``float64[N, M]`` stage-1 similarity of every detection with every track (``-1``: impossible).

        ``boxes [N, 4]`` xyxy, ``units [N, D]`` unit embeddings, ``iou [N, M]`` with the predicted
        boxes, ``ages [M]`` seconds since each track's last match.
        """
        cfg, bank = self.config, self._bank
        assert bank is not None
        cosine = (units @ bank.embeddings.T).astype(np.float64)  # [N, M]
        appearance = np.clip((cosine - cfg.appearance_floor) / (1 - cfg.appearance_floor), 0, 1)
        weight = cfg.motion_weight * 0.5 ** (ages / cfg.motion_half_life)  # [M]
        sim = weight[None, :] * iou + (1 - weight[None, :]) * appearance
        # A lost track's prediction is uncertain: in this stage it must still overlap the box
        # (far re-appearances are left to the stricter re-identification of stage 3).
        sim[(iou <= 0) & (bank.state == LOST)[None, :]] = _NO_MATCH
        if cfg.gate_sigmas is not None:
            gate = kalman.mahalanobis(bank.mean, bank.cov, kalman.boxes_to_measurements(boxes), position_only=True)
            sim[gate.T > cfg.gate_sigmas**2] = _NO_MATCH
        return self._class_mask(sim, labels)

    def _class_mask(self, sim: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """``sim [N, M]`` with pairs of different labels made impossible when class-aware."""
        if not self.config.class_aware:
            return sim
        assert self._bank is not None
        return np.where(labels[:, None] != self._bank.labels[None, :], _NO_MATCH, sim)

    @staticmethod
    def _match(sim: np.ndarray, det_ok: np.ndarray, track_ok: np.ndarray, thresh: float, track_of: np.ndarray, free: np.ndarray) -> None:
        """Hungarian assignment on ``sim [N, M]`` restricted to ``det_ok [N]`` x ``track_ok [M]``.

        Pairs below ``thresh`` are rejected; ``track_of`` (bank row per detection) and ``free``
        (tracks still unmatched) are updated in place.
        """
        dets = np.flatnonzero(det_ok & (track_of < 0))
        tracks = np.flatnonzero(track_ok & free)
        if dets.size == 0 or tracks.size == 0:
            return
        sub = sim[np.ix_(dets, tracks)]
        ok = sub >= thresh
        rows_any, cols_any = ok.any(axis=1), ok.any(axis=0)
        if not rows_any.any():
            return
        # Only rows/columns with an admissible pair take part; an inadmissible pair costs more than
        # leaving both unmatched, so the assignment never prefers it.
        cost = np.where(ok, 1.0 - sub, _FORBIDDEN)[rows_any][:, cols_any]
        r, c = linear_sum_assignment(cost)
        good = cost[r, c] < _FORBIDDEN
        det_rows, track_rows = dets[rows_any][r[good]], tracks[cols_any][c[good]]
        track_of[det_rows] = track_rows
        free[track_rows] = False


def _xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1)


def _max_overlap(boxes: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``float64[K]``: for each of the ``rows`` of ``boxes [N, 4]`` (xyxy), its largest IoU with
    another box of the frame (0 when alone)."""
    if rows.size == 0 or boxes.shape[0] < 2:
        return np.zeros(rows.size)
    xywh = _xyxy_to_xywh(boxes)
    iou = box_iou_xywh_np(xywh[rows], xywh)  # [K, N]
    iou[np.arange(rows.size), rows] = 0  # not with itself
    return iou.max(axis=1)
