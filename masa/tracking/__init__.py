"""Online trackers of MASA: associate per-frame detections (with embeddings) into tracks.

Two trackers reproduce the authors' code (github.com/siyuanliii/masa, ``masa/models/tracker/``):

* :class:`MasaTaoTracker` / :class:`TaoTrackerConfig`: demos, TAO and open-vocabulary runs;
  bi-softmax + cosine scores, distractor removal, optional centre-distance gate.
* :class:`MasaBDDTracker` / :class:`BddTrackerConfig`: the QDTrack-style tracker of the BDD100K
  configs; bi-softmax (or softmax / cosine) scores, duplicate removal, backdrops, ``-2``
  suppression, optional class-aware matching.

Beyond the paper, :class:`FusedTracker` / :class:`FusedTrackerConfig` (``fused.py``, the default
of ``masa track``) fuses the appearance with a vectorised Kalman filter (``kalman.py``), matches
confident then weak detections, keeps lost tracks' embedding galleries for long-term
re-identification (``fused_bank.py``) and optionally compensates camera motion
(``camera_motion.py``, the only module that sees pixels, through ``observe_frame``).

All expose ``update(detections, frame_index) -> Tracks`` and ``reset()``. ``detections`` holds
boxes ``float32[N, 4]`` xyxy in original-image pixels, scores, labels and ``embeddings
float32[N, D]``; ``frame_index`` is 0-based and non-decreasing. The result keeps the input rows
that got an id, with ``det_index`` pointing back at them. This package imports only torch,
``masa.structures`` and ``masa.ops``: embeddings arrive as tensors.

Layout: ``base.py`` (the shared frame loop, :class:`~masa.tracking.base.OnlineTracker`),
``tao.py`` / ``bdd.py`` (each tracker's own rules), ``track_bank.py`` (the live tracks),
``backdrops.py`` (the BDD tracker's backdrop record), ``similarity.py`` (match scores, gates,
greedy assignment) and ``validation.py`` (input and config checks). Where the authors' code
differs from the paper (we follow the code), see ``docs/tracker.md``.
"""

from masa.tracking.backdrops import BackdropFrame
from masa.tracking.bdd import BddTrackerConfig, MasaBDDTracker
from masa.tracking.camera_motion import CameraMotionEstimator
from masa.tracking.fused import FusedTracker, FusedTrackerConfig
from masa.tracking.similarity import bisoftmax_cosine_scores, bisoftmax_scores, cosine_scores, softmax_scores
from masa.tracking.tao import MasaTaoTracker, TaoTrackerConfig
from masa.tracking.track_bank import TrackMemory

__all__ = [
    "FusedTrackerConfig",
    "FusedTracker",
    "CameraMotionEstimator",
    "TaoTrackerConfig",
    "MasaTaoTracker",
    "BddTrackerConfig",
    "MasaBDDTracker",
    "bisoftmax_scores",
    "softmax_scores",
    "cosine_scores",
    "bisoftmax_cosine_scores",
    "TrackMemory",
    "BackdropFrame",
]
