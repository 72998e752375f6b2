"""masa: Matching Anything by Segmenting Anything, in plain PyTorch.

Public entry points::

    from masa import Detections, Tracks
"""

from masa.structures import Detections, Tracks

__version__ = "0.1.0"

__all__ = ["Detections", "Tracks", "__version__"]
