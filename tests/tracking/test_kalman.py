"""The vectorised Kalman filter and the camera-motion estimator, rule by rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from masa.tracking import kalman
from masa.tracking.camera_motion import CameraMotionEstimator


def _boxes(*rows):
    return np.asarray(rows, dtype=np.float64)


def test_measurements_round_trip():
    boxes = _boxes([10, 20, 50, 100], [0, 0, 4, 2])
    z = kalman.boxes_to_measurements(boxes)
    assert z.dtype == np.float64
    assert z[0].tolist() == [30, 60, 40, 80]
    assert np.allclose(kalman.measurements_to_boxes(z), boxes)
    assert kalman.measurements_to_xywh(z)[0].tolist() == [10, 20, 40, 80]


def test_initiate_has_zero_velocity_and_size_scaled_noise():
    mean, cov = kalman.initiate(kalman.boxes_to_measurements(_boxes([0, 0, 40, 80])))
    assert mean.shape == (1, 8) and cov.shape == (1, 8, 8)
    assert np.abs(mean[0, 4:]).sum() == 0
    std = np.sqrt(cov[0].diagonal())
    assert std[0] == pytest.approx(2 * kalman.POSITION_STD * 40)  # x scales with the width
    assert std[1] == pytest.approx(2 * kalman.POSITION_STD * 80)  # y with the height


def test_constant_velocity_is_learned_and_predicted_over_gaps():
    z = kalman.boxes_to_measurements(_boxes([0, 0, 40, 80]))
    mean, cov = kalman.initiate(z)
    for step in range(1, 30):  # moves 5 px right per frame
        mean, cov = kalman.predict(mean, cov, 1.0)
        mean, cov = kalman.update(mean, cov, kalman.boxes_to_measurements(_boxes([5 * step, 0, 5 * step + 40, 80])))
    assert mean[0, 4] == pytest.approx(5.0, abs=0.2)
    ahead, ahead_cov = kalman.predict(mean, cov, 4.0)  # a 4-frame gap: 4 steps of velocity
    assert ahead[0, 0] == pytest.approx(mean[0, 0] + 4 * mean[0, 4])
    assert (ahead_cov[0].diagonal() > cov[0].diagonal()).all()  # uncertainty grows with the gap
    same, same_cov = kalman.predict(mean, cov, 0.0)
    assert np.array_equal(same, mean) and np.array_equal(same_cov, cov)


def test_predict_and_update_are_row_wise():
    """Tracks are independent rows: a batch equals the rows one at a time."""
    z = kalman.boxes_to_measurements(_boxes([0, 0, 40, 80], [100, 50, 120, 90], [5, 5, 9, 30]))
    mean, cov = kalman.initiate(z)
    mean, cov = kalman.predict(mean, cov, 2.0)
    new = z + np.array([[3.0, 1.0, 0.0, 0.0], [-2.0, 4.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    m_all, c_all = kalman.update(mean, cov, new)
    for i in range(3):
        m_i, c_i = kalman.update(mean[i : i + 1], cov[i : i + 1], new[i : i + 1])
        assert np.allclose(m_all[i], m_i[0]) and np.allclose(c_all[i], c_i[0])


def test_mahalanobis_gate_distance():
    z = kalman.boxes_to_measurements(_boxes([0, 0, 40, 80]))
    mean, cov = kalman.initiate(z)
    _, s = kalman.project(mean, cov)
    dx = 3 * np.sqrt(s[0, 0, 0])  # three standard deviations along x
    far = z.copy()
    far[0, 0] += dx
    d = kalman.mahalanobis(mean, cov, np.concatenate([z, far]), position_only=True)
    assert d.shape == (1, 2)
    assert d[0, 0] == pytest.approx(0.0, abs=1e-9)
    assert d[0, 1] == pytest.approx(9.0, rel=1e-6)


def test_warp_moves_centres_velocities_and_sizes():
    mean, cov = kalman.initiate(kalman.boxes_to_measurements(_boxes([0, 0, 40, 80])))
    mean[0, 4] = 2.0  # 2 px/frame to the right
    shift = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, -5.0]])
    moved, moved_cov = kalman.warp(mean, cov, shift)
    assert moved[0, :4].tolist() == [30, 35, 40, 80] and moved[0, 4] == 2.0
    assert np.allclose(moved_cov, cov)  # a pure shift leaves the uncertainty
    angle = math.pi / 2
    rot2 = np.array([[2 * math.cos(angle), -2 * math.sin(angle), 0.0], [2 * math.sin(angle), 2 * math.cos(angle), 0.0]])
    turned, _ = kalman.warp(mean, cov, rot2)  # rotate 90 degrees and zoom 2x about the origin
    assert turned[0, 0] == pytest.approx(-80.0) and turned[0, 1] == pytest.approx(40.0)
    assert turned[0, 2] == pytest.approx(80.0) and turned[0, 3] == pytest.approx(160.0)
    assert turned[0, 5] == pytest.approx(4.0)  # the velocity turns too


def _texture(height=240, width=320, seed=0):
    import cv2

    noise = (np.random.default_rng(seed).random((height, width)) * 255).astype(np.uint8)
    grey = cv2.GaussianBlur(noise, (0, 0), 2)
    return np.stack([grey] * 3, axis=-1)


@pytest.mark.parametrize("method", ["sparse-flow", "ecc"])
def test_camera_motion_recovers_a_synthetic_shift(method):
    """A frame shifted 10 px right and 6 px down gives that shift (in original pixels)."""
    image = _texture()
    shifted = np.roll(image, (6, 10), axis=(0, 1))
    estimator = CameraMotionEstimator(method, downscale=2)
    first = estimator.estimate(image)
    assert np.array_equal(first, np.eye(2, 3))  # no previous frame yet
    affine = estimator.estimate(shifted)
    assert affine.shape == (2, 3) and affine.dtype == np.float32
    assert affine[0, 2] == pytest.approx(10.0, abs=1.0) and affine[1, 2] == pytest.approx(6.0, abs=1.0)
    assert np.allclose(affine[:, :2], np.eye(2), atol=0.02)


def test_camera_motion_failures_give_the_identity():
    estimator = CameraMotionEstimator("sparse-flow")
    flat = np.zeros((64, 64, 3), dtype=np.uint8)
    estimator.estimate(flat)
    assert np.array_equal(estimator.estimate(flat), np.eye(2, 3))  # no corners on a flat frame
    assert np.array_equal(estimator.estimate(_texture(32, 48)), np.eye(2, 3))  # the frame size changed
    with pytest.raises(ValueError, match="camera-motion method"):
        CameraMotionEstimator("orb")
    with pytest.raises(ValueError, match="downscale"):
        CameraMotionEstimator("ecc", downscale=0)
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        estimator.estimate(np.zeros((2, 3, 4, 5), dtype=np.uint8))
