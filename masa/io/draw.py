"""Draw tracks on RGB frames: coloured boxes, ``"id score"`` labels and semi-transparent masks.

The drawn id is ``id + 1``, the id written to MOTChallenge and JSON results (see
:mod:`masa.io.mot`), and its colour is :func:`id_color` of that drawn id, so a user can match
objects between the video and the result files.
"""

from __future__ import annotations

import colorsys

import numpy as np
import torch

from masa.structures import Detections, Tracks

__all__ = ["draw_tracks", "id_color"]

_GOLDEN = 0.618033988749895
_DETECTION_COLOR = (255, 255, 255)


def id_color(track_id: int) -> tuple[int, int, int]:
    """A bright RGB colour, the same for an id on every call and every run (golden-ratio hue steps)."""
    hue = (int(track_id) * _GOLDEN) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 0.95)
    return int(round(r * 255)), int(round(g * 255)), int(round(b * 255))


def _text_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * color[0] + 0.587 * color[1] + 0.114 * color[2]
    return (0, 0, 0) if luminance > 140 else (255, 255, 255)


def draw_tracks(
    image: np.ndarray,
    tracks: Tracks | Detections,
    *,
    draw_masks: bool = True,
    line_width: int = 2,
    mask_alpha: float = 0.45,
) -> np.ndarray:
    """Draw ``tracks`` on a copy of ``image`` (``uint8[H, W, 3]`` RGB) and return it.

    Each row gets a box in :func:`id_color` of its drawn id, a label ``"<id+1> <score>"`` (e.g.
    ``"12 0.87"``) on a filled background above the box (inside it at the top edge), and, when
    ``draw_masks`` and ``tracks.masks`` is set, its mask blended with ``mask_alpha`` opacity (masks
    of another size than the image are resized, nearest neighbour). Plain :class:`Detections` are
    drawn in white with the score only.
    """
    import cv2

    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"draw_tracks: expected a uint8[H, W, 3] RGB image, got {image.dtype}{list(image.shape)}")
    out = np.ascontiguousarray(image).copy()
    n = len(tracks)
    if n == 0:
        return out
    height, width = out.shape[:2]
    line_width = max(1, int(line_width))
    boxes = tracks.boxes.detach().cpu().numpy()
    scores = tracks.scores.detach().cpu().numpy()
    ids = tracks.ids.detach().cpu().numpy() + 1 if isinstance(tracks, Tracks) else None
    colors = [id_color(int(ids[i])) if ids is not None else _DETECTION_COLOR for i in range(n)]

    if draw_masks and tracks.masks is not None:
        masks = tracks.masks.detach().cpu()
        if tuple(masks.shape[1:]) != (height, width):
            masks = torch.nn.functional.interpolate(masks[None].float(), size=(height, width), mode="nearest")[0] > 0.5
        masks = masks.numpy()
        blended = out.astype(np.float32)
        for i in range(n):
            m = masks[i]
            if m.any():
                blended[m] = blended[m] * (1.0 - mask_alpha) + np.asarray(colors[i], np.float32) * mask_alpha
        out = np.clip(np.rint(blended), 0, 255).astype(np.uint8)

    font = cv2.FONT_HERSHEY_SIMPLEX
    font_scale = 0.25 * line_width + 0.15
    thickness = max(1, line_width // 2)
    for i in range(n):
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        color = colors[i]
        cv2.rectangle(out, (x1, y1), (x2, y2), color, line_width, cv2.LINE_AA)
        text = f"{scores[i]:.2f}" if ids is None else f"{int(ids[i])} {scores[i]:.2f}"
        (tw, th), baseline = cv2.getTextSize(text, font, font_scale, thickness)
        pad = 2
        label_h = th + baseline + 2 * pad
        lx = min(max(x1, 0), max(width - tw - 2 * pad, 0))
        ly = y1 - label_h if y1 - label_h >= 0 else max(y1, 0)  # above the box, else inside it
        ly = min(ly, max(height - label_h, 0))
        cv2.rectangle(out, (lx, ly), (lx + tw + 2 * pad, ly + label_h), color, cv2.FILLED)
        cv2.putText(out, text, (lx + pad, ly + pad + th), font, font_scale, _text_color(color), thickness, cv2.LINE_AA)
    return out
