"""What the pipeline needs from an appearance model: embeddings for given boxes of one frame."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from torch import Tensor

__all__ = ["Embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Maps the boxes of one frame to appearance embeddings.

    ``embed(image, boxes)``:
        image: ``uint8[H, W, 3]`` RGB frame (original resolution).
        boxes: ``float32[N, 4]`` xyxy in original-frame pixels.
        returns: ``float32[N, embedding_dim]`` on the CPU, rows in the order of ``boxes``
        (``[0, embedding_dim]`` for ``N == 0``).
    """

    embedding_dim: int

    def embed(self, image: np.ndarray, boxes: Tensor) -> Tensor: ...
