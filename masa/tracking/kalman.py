"""A constant-velocity Kalman filter over boxes, vectorised over all tracks (no per-track objects).

State of one track (8 values): ``[cx, cy, w, h, vx, vy, vw, vh]``: box centre, width and height in
original-image pixels, and their velocities in pixels per *step*. A step is ``1 / STEP_RATE``
seconds (1/10 s) whatever the video's frame rate: the caller predicts ``frame_gap * STEP_RATE /
fps`` steps, so that the motion noise is a property of time, not of frames (at 2 frames/s one
frame is 5 steps, and the prediction is that much less certain). Measurements are boxes as
``[cx, cy, w, h]``. Noise is proportional to the box size (the SORT / ByteTrack / BoT-SORT
convention): a position std of ``1/20`` and a velocity std of ``1/160`` of the width (for ``x``,
``w``) or height (for ``y``, ``h``) per step. All arrays are float64 for stable covariances;
``M`` is the number of tracks, ``N`` the number of measurements.

Functions take and return ``(mean float64[M, 8], cov float64[M, 8, 8])`` and never change their
inputs.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "STEP_RATE",
    "POSITION_STD",
    "VELOCITY_STD",
    "boxes_to_measurements",
    "measurements_to_boxes",
    "initiate",
    "predict",
    "update",
    "project",
    "mahalanobis",
    "warp",
]

#: steps per second: the time unit of the velocities and of the process noise.
STEP_RATE = 10.0
#: std of the measured position / size, as a fraction of the box size (per step).
POSITION_STD = 1.0 / 20
#: std of the velocity, as a fraction of the box size (per step).
VELOCITY_STD = 1.0 / 160


def boxes_to_measurements(boxes: Tensor) -> Tensor:
    """``float32[N, 4]`` xyxy pixels -> ``float64[N, 4]`` ``[cx, cy, w, h]``."""
    b = boxes.to(torch.float64)
    wh = b[:, 2:] - b[:, :2]
    return torch.cat([b[:, :2] + wh / 2, wh], dim=1)


def measurements_to_boxes(z: Tensor) -> Tensor:
    """``[N, >=4]`` ``[cx, cy, w, h, ...]`` -> ``float32[N, 4]`` xyxy pixels (sizes clamped at 0)."""
    half = z[:, 2:4].clamp_min(0) / 2
    return torch.cat([z[:, :2] - half, z[:, :2] + half], dim=1).to(torch.float32)


def _size_scale(sizes: Tensor) -> Tensor:
    """``[M, 4]`` per-coordinate scale ``[w, h, w, h]`` from ``[M, >=4]`` states or measurements."""
    w, h = sizes[:, 2].clamp_min(1.0), sizes[:, 3].clamp_min(1.0)
    return torch.stack([w, h, w, h], dim=1)


def initiate(z: Tensor) -> tuple[Tensor, Tensor]:
    """New tracks from measurements ``float64[N, 4]``: zero velocity, wide velocity uncertainty."""
    scale = _size_scale(z)  # [N, 4]
    mean = torch.cat([z, torch.zeros_like(z)], dim=1)
    std = torch.cat([2 * POSITION_STD * scale, 10 * VELOCITY_STD * scale], dim=1)  # [N, 8]
    return mean, torch.diag_embed(std**2)


def _transition(steps: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """``[8, 8]`` constant-velocity transition over ``steps`` steps."""
    f = torch.eye(8, dtype=dtype, device=device)
    f[:4, 4:] = steps * torch.eye(4, dtype=dtype, device=device)
    return f


def predict(mean: Tensor, cov: Tensor, steps: float) -> tuple[Tensor, Tensor]:
    """Advance every track by ``steps >= 0`` steps (may be fractional; process noise grows linearly with ``steps``)."""
    if mean.shape[0] == 0 or steps == 0:
        return mean, cov
    f = _transition(steps, mean.dtype, mean.device)
    scale = _size_scale(mean)
    q = torch.diag_embed(torch.cat([POSITION_STD * scale, VELOCITY_STD * scale], dim=1) ** 2) * steps
    mean = mean @ f.T
    cov = f @ cov @ f.T + q
    return mean, cov


def project(mean: Tensor, cov: Tensor) -> tuple[Tensor, Tensor]:
    """Predicted measurement ``[M, 4]`` and its covariance ``[M, 4, 4]`` (state + measurement noise)."""
    r = torch.diag_embed((POSITION_STD * _size_scale(mean)) ** 2)
    return mean[:, :4], cov[:, :4, :4] + r


def update(mean: Tensor, cov: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
    """Correct tracks ``[K, 8]`` with their matched measurements ``float64[K, 4]`` (row by row)."""
    if mean.shape[0] == 0:
        return mean, cov
    z_pred, s = project(mean, cov)  # [K, 4], [K, 4, 4]
    pht = cov[:, :, :4]  # P H^T: [K, 8, 4]
    gain = torch.linalg.solve(s, pht.transpose(1, 2)).transpose(1, 2)  # K = P H^T S^-1: [K, 8, 4]
    innovation = z - z_pred
    mean = mean + (gain @ innovation[:, :, None]).squeeze(2)
    cov = cov - gain @ s @ gain.transpose(1, 2)
    return mean, (cov + cov.transpose(1, 2)) / 2


def mahalanobis(mean: Tensor, cov: Tensor, z: Tensor, *, position_only: bool = False) -> Tensor:
    """Squared Mahalanobis distance ``float64[M, N]`` of measurements ``[N, 4]`` to each track's prediction.

    With ``position_only`` only the centre ``(cx, cy)`` counts (2 degrees of freedom, else 4).
    """
    z_pred, s = project(mean, cov)
    dims = 2 if position_only else 4
    chol = torch.linalg.cholesky(s[:, :dims, :dims])  # [M, d, d]
    diff = (z[None, :, :dims] - z_pred[:, None, :dims]).transpose(1, 2)  # [M, d, N]
    y = torch.linalg.solve_triangular(chol, diff, upper=False)
    return (y**2).sum(dim=1)


def warp(mean: Tensor, cov: Tensor, affine: Tensor) -> tuple[Tensor, Tensor]:
    """Move every track by a camera motion ``affine float[2, 3]`` (previous frame -> current pixels).

    Centres map through the affine; velocities through its linear part; sizes and their velocities
    scale by ``sqrt(|det|)`` of the linear part. The covariance is transformed alike.
    """
    if mean.shape[0] == 0:
        return mean, cov
    a = affine.to(mean)
    lin, shift = a[:, :2], a[:, 2]
    s = torch.linalg.det(lin).abs().sqrt()
    t = torch.zeros(8, 8, dtype=mean.dtype, device=mean.device)
    t[0:2, 0:2] = lin
    t[4:6, 4:6] = lin
    t[2, 2] = t[3, 3] = t[6, 6] = t[7, 7] = s
    mean = mean @ t.T
    mean[:, :2] += shift
    return mean, t @ cov @ t.T
