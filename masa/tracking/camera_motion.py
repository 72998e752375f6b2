"""Camera-motion compensation: the global motion between consecutive frames, as a 2x3 affine.

:class:`CameraMotionEstimator` is the only part of ``masa.tracking`` that sees pixels. It keeps
the previous frame (grey, downscaled) and returns the affine ``A`` (numpy ``float32[2, 3]``) that maps a point
of the previous frame to the current one, in original-image pixels: ``p' = A[:, :2] @ p + A[:, 2]``.
The tracker applies it to its Kalman predictions (:func:`masa.tracking.kalman.warp`).

Methods (OpenCV):

* ``"sparse-flow"``: Shi-Tomasi corners tracked by pyramidal Lucas-Kanade, then a RANSAC
  similarity transform (rotation, uniform scale, shift) — the BoT-SORT default; a few ms per frame.
* ``"ecc"``: enhanced-correlation-coefficient alignment of the whole frame (euclidean motion);
  slower and more exact on texture-poor footage.

Points inside the given detection boxes are ignored when possible (they move with the objects,
not the camera). When an estimate fails (too few points, no convergence, a first frame, a changed
frame size) the identity is returned: the tracker then predicts without compensation.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor

__all__ = ["CMC_METHODS", "CameraMotionEstimator"]

CMC_METHODS = ("off", "sparse-flow", "ecc")


def _identity() -> np.ndarray:
    return np.eye(2, 3, dtype=np.float32)


class CameraMotionEstimator:
    """Frame-to-frame camera motion (module docstring); one instance per video.

    Args:
        method: ``"sparse-flow"`` or ``"ecc"``.
        downscale: the frames are shrunk by this integer factor before estimation (>= 1).
    """

    def __init__(self, method: str = "sparse-flow", *, downscale: int = 2) -> None:
        if method not in CMC_METHODS[1:]:
            raise ValueError(f"camera-motion method must be one of {CMC_METHODS[1:]}, got {method!r}")
        if isinstance(downscale, bool) or not isinstance(downscale, int) or downscale < 1:
            raise ValueError(f"camera-motion downscale must be an integer >= 1, got {downscale!r}")
        self.method, self.downscale = method, downscale
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame (the next estimate is the identity)."""
        self._previous: np.ndarray | None = None

    def estimate(self, image: np.ndarray, boxes: Tensor | None = None) -> np.ndarray:
        """The affine (numpy ``float32[2, 3]``) from the previous frame to ``image`` (identity on failure).

        Args:
            image: ``uint8[H, W, 3]`` RGB (or ``[H, W]`` grey) frame.
            boxes: optional ``float32[N, 4]`` xyxy pixel boxes of the frame's objects, masked out.
        """
        import cv2

        if image.ndim == 3:
            grey = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
        elif image.ndim == 2:
            grey = np.ascontiguousarray(image)
        else:
            raise ValueError(f"camera motion expects an [H, W, 3] or [H, W] image, got shape {tuple(image.shape)}")
        if self.downscale > 1:
            h, w = grey.shape
            grey = cv2.resize(grey, (max(1, w // self.downscale), max(1, h // self.downscale)), interpolation=cv2.INTER_AREA)
        previous, self._previous = self._previous, grey
        if previous is None or previous.shape != grey.shape:
            return _identity()
        if self.method == "ecc":
            affine = self._ecc(previous, grey)
        else:
            affine = self._sparse_flow(previous, grey, self._mask(grey.shape, boxes))
        if affine is None or not np.isfinite(affine).all():
            return _identity()
        affine = affine.astype(np.float32)
        affine[:, 2] *= self.downscale  # shift back to original pixels (the linear part is scale-free)
        return affine

    def _mask(self, shape: tuple[int, int], boxes: Tensor | None) -> np.ndarray:
        """``uint8[h, w]``: 255 where corners may be taken (border and object boxes excluded)."""
        h, w = shape
        mask = np.zeros((h, w), dtype=np.uint8)
        mask[int(0.02 * h) : int(0.98 * h), int(0.02 * w) : int(0.98 * w)] = 255
        if boxes is not None and len(boxes):
            b = (boxes.detach().cpu().numpy() / self.downscale).round().astype(int)
            b[:, [0, 2]] = b[:, [0, 2]].clip(0, w)
            b[:, [1, 3]] = b[:, [1, 3]].clip(0, h)
            for x0, y0, x1, y1 in b:
                mask[y0:y1, x0:x1] = 0
        if mask.mean() < 0.1 * 255:  # the objects cover the frame: use it all rather than nothing
            mask[:] = 255
        return mask

    @staticmethod
    def _sparse_flow(previous: np.ndarray, current: np.ndarray, mask: np.ndarray) -> np.ndarray | None:
        import cv2

        points = cv2.goodFeaturesToTrack(previous, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3, mask=mask)
        if points is None or len(points) < 8:
            return None
        moved, status, _ = cv2.calcOpticalFlowPyrLK(previous, current, points, None)
        ok = status.reshape(-1).astype(bool)
        if ok.sum() < 8:
            return None
        affine, _ = cv2.estimateAffinePartial2D(points[ok], moved[ok], method=cv2.RANSAC)
        return affine

    @staticmethod
    def _ecc(previous: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        import cv2

        warp = np.eye(2, 3, dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        try:
            _, warp = cv2.findTransformECC(previous, current, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 5)
        except cv2.error:
            return None
        # ECC maximises the correlation of previous(x) with current(warp(x)): warp maps
        # previous-frame points to the current frame, as wanted.
        return warp
