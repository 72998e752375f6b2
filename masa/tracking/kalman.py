"""A constant-velocity Kalman filter over boxes, vectorised over all tracks (no per-track objects).

State of one track (8 values): ``[cx, cy, w, h, vx, vy, vw, vh]``: box centre, width and height in
original-image pixels, and their velocities in pixels per *step*. The caller chooses the step
as a duration (the fused tracker: ``kalman_step`` = 0.1 s) and predicts ``frame_gap / (fps *
step)`` steps, so that the motion noise is a property of time, not of frames (at 2 frames/s one
frame is 5 steps of 0.1 s, and the prediction is that much less certain). Measurements are boxes as
``[cx, cy, w, h]``. Noise is proportional to the box size (the SORT / ByteTrack / BoT-SORT
convention): a position std of ``1/20`` and a velocity std of ``1/160`` of the width (for ``x``,
``w``) or height (for ``y``, ``h``) per step. Arrays are numpy float64 on the CPU: the state is
tiny, and at tens of boxes the per-call cost of torch would dominate. ``M`` is the number of
tracks, ``N`` the number of measurements.

Functions take and return ``(mean float64[M, 8], cov float64[M, 8, 8])`` and never change their
inputs.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "POSITION_STD",
    "VELOCITY_STD",
    "boxes_to_measurements",
    "measurements_to_boxes",
    "measurements_to_xywh",
    "initiate",
    "predict",
    "update",
    "project",
    "mahalanobis",
    "warp",
]

#: std of the measured position / size, as a fraction of the box size (per step).
POSITION_STD = 1.0 / 20
#: std of the velocity, as a fraction of the box size (per step).
VELOCITY_STD = 1.0 / 160


def boxes_to_measurements(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` xyxy pixels -> ``float64[N, 4]`` ``[cx, cy, w, h]``."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    wh = b[:, 2:] - b[:, :2]
    return np.concatenate([b[:, :2] + wh / 2, wh], axis=1)


def measurements_to_boxes(z: np.ndarray) -> np.ndarray:
    """``[N, >=4]`` ``[cx, cy, w, h, ...]`` -> ``float64[N, 4]`` xyxy pixels (sizes clamped at 0)."""
    half = np.maximum(z[:, 2:4], 0) / 2
    return np.concatenate([z[:, :2] - half, z[:, :2] + half], axis=1)


def measurements_to_xywh(z: np.ndarray) -> np.ndarray:
    """``[N, >=4]`` ``[cx, cy, w, h, ...]`` -> ``float64[N, 4]`` ``(x, y, w, h)`` (top-left corner and size)."""
    wh = np.maximum(z[:, 2:4], 0)
    return np.concatenate([z[:, :2] - wh / 2, wh], axis=1)


def _size_scale(sizes: np.ndarray) -> np.ndarray:
    """``[M, 4]`` per-coordinate scale ``[w, h, w, h]`` from ``[M, >=4]`` states or measurements."""
    w, h = np.maximum(sizes[:, 2], 1.0), np.maximum(sizes[:, 3], 1.0)
    return np.stack([w, h, w, h], axis=1)


def _diag(values: np.ndarray) -> np.ndarray:
    """``[M, K]`` -> ``[M, K, K]`` diagonal matrices."""
    out = np.zeros(values.shape + (values.shape[1],))
    idx = np.arange(values.shape[1])
    out[:, idx, idx] = values
    return out


def initiate(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New tracks from measurements ``float64[N, 4]``: zero velocity, wide velocity uncertainty."""
    scale = _size_scale(z)  # [N, 4]
    mean = np.concatenate([z, np.zeros_like(z)], axis=1)
    std = np.concatenate([2 * POSITION_STD * scale, 10 * VELOCITY_STD * scale], axis=1)  # [N, 8]
    return mean, _diag(std**2)


def _transition(steps: float) -> np.ndarray:
    """``[8, 8]`` constant-velocity transition over ``steps`` steps."""
    f = np.eye(8)
    f[:4, 4:] = steps * np.eye(4)
    return f


def predict(mean: np.ndarray, cov: np.ndarray, steps: float) -> tuple[np.ndarray, np.ndarray]:
    """Advance every track by ``steps >= 0`` steps (may be fractional; process noise grows linearly with ``steps``)."""
    if mean.shape[0] == 0 or steps == 0:
        return mean, cov
    f = _transition(steps)
    scale = _size_scale(mean)
    q = _diag(np.concatenate([POSITION_STD * scale, VELOCITY_STD * scale], axis=1) ** 2) * steps
    return mean @ f.T, f @ cov @ f.T + q


def project(mean: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Predicted measurement ``[M, 4]`` and its covariance ``[M, 4, 4]`` (state + measurement noise)."""
    r = _diag((POSITION_STD * _size_scale(mean)) ** 2)
    return mean[:, :4], cov[:, :4, :4] + r


def update(mean: np.ndarray, cov: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Correct tracks ``[K, 8]`` with their matched measurements ``float64[K, 4]`` (row by row)."""
    if mean.shape[0] == 0:
        return mean, cov
    z_pred, s = project(mean, cov)  # [K, 4], [K, 4, 4]
    pht = cov[:, :, :4]  # P H^T: [K, 8, 4]
    gain = np.linalg.solve(s, pht.transpose(0, 2, 1)).transpose(0, 2, 1)  # K = P H^T S^-1 (S symmetric)
    mean = mean + (gain @ (z - z_pred)[:, :, None])[:, :, 0]
    cov = cov - gain @ s @ gain.transpose(0, 2, 1)
    return mean, (cov + cov.transpose(0, 2, 1)) / 2


def mahalanobis(mean: np.ndarray, cov: np.ndarray, z: np.ndarray, *, position_only: bool = False) -> np.ndarray:
    """Squared Mahalanobis distance ``float64[M, N]`` of measurements ``[N, 4]`` to each track's prediction.

    With ``position_only`` only the centre ``(cx, cy)`` counts (2 degrees of freedom, else 4).
    """
    z_pred, s = project(mean, cov)
    dims = 2 if position_only else 4
    diff = (z[None, :, :dims] - z_pred[:, None, :dims]).transpose(0, 2, 1)  # [M, d, N]
    return (diff * np.linalg.solve(s[:, :dims, :dims], diff)).sum(axis=1)


def warp(mean: np.ndarray, cov: np.ndarray, affine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move every track by a camera motion ``affine [2, 3]`` (previous frame -> current pixels).

    Centres map through the affine; velocities through its linear part; sizes and their velocities
    scale by ``sqrt(|det|)`` of the linear part. The covariance is transformed alike.
    """
    if mean.shape[0] == 0:
        return mean, cov
    a = np.asarray(affine, dtype=np.float64)
    lin, shift = a[:, :2], a[:, 2]
    s = np.sqrt(abs(np.linalg.det(lin)))
    t = np.zeros((8, 8))
    t[0:2, 0:2] = lin
    t[4:6, 4:6] = lin
    t[2, 2] = t[3, 3] = t[6, 6] = t[7, 7] = s
    mean = mean @ t.T
    mean[:, :2] += shift
    return mean, t @ cov @ t.T
