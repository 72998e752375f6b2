"""Online trackers of MASA: associate per-frame detections (with embeddings) into tracks.

Two trackers reproduce the authors' code (github.com/siyuanliii/masa, ``masa/models/tracker/``):

* :class:`MasaTaoTracker` / :class:`TaoTrackerConfig`: demos, TAO and open-vocabulary runs;
  bi-softmax + cosine scores, distractor removal, optional centre-distance gate.
* :class:`MasaBDDTracker` / :class:`BddTrackerConfig`: the QDTrack-style tracker of the BDD100K
  configs; bi-softmax (or softmax / cosine) scores, duplicate removal, backdrops, ``-2``
  suppression, optional class-aware matching.

Both expose ``update(detections, frame_index) -> Tracks`` and ``reset()``. ``detections`` holds
boxes ``float32[N, 4]`` xyxy in original-image pixels, scores, labels and ``embeddings
float32[N, D]``; ``frame_index`` is 0-based and non-decreasing. The result keeps the input rows
that got an id, with ``det_index`` pointing back at them. This package imports only torch,
``masa.structures`` and ``masa.ops``: embeddings arrive as tensors.

Paper vs code (we follow the code):

* Algorithm 1 of the paper has no one-track-per-detection rule; the code zeroes a taken track's
  column for all other detections, so a track is continued by at most one detection per frame.
* Eq. 2 (``(bi-softmax + cosine) / 2``) is used only by the TAO tracker; the BDD configs use
  plain bi-softmax. Both work on raw dot products (no normalisation, no temperature).
* The paper's per-track "queue" of embeddings is one momentum-averaged embedding per track,
  ``(1 - 0.8) * old + 0.8 * new`` (the new embedding weighs 0.8).
* The centre-distance gate, backdrops, ``-2`` suppression and the expiry rule
  (``frame_index - last_frame >= memory_frames``) are in the code, not in the paper.
* The BDD tracker's per-track velocity is computed by the authors but never used; it is omitted.
"""

from masa.tracking.bdd import BddTrackerConfig, MasaBDDTracker
from masa.tracking.memory import BackdropFrame, TrackMemory
from masa.tracking.similarity import bisoftmax_cosine_scores, bisoftmax_scores, cosine_scores, softmax_scores
from masa.tracking.tao import MasaTaoTracker, TaoTrackerConfig

__all__ = [
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
