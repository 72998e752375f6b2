"""Drawing: stable colours, boxes, labels and masks on a copy."""

from __future__ import annotations

import numpy as np
import torch

from masa import Detections, Tracks
from masa.io import draw_tracks, id_color


def test_id_color_stable_and_distinct():
    assert id_color(3) == id_color(3)
    colors = {id_color(i) for i in range(20)}
    assert len(colors) == 20
    assert all(0 <= c <= 255 for color in colors for c in color)


def test_draw_tracks_boxes_and_masks():
    image = np.zeros((100, 120, 3), np.uint8)
    masks = torch.zeros(2, 100, 120, dtype=torch.bool)
    masks[0, 70:80, 30:40] = True
    tracks = Tracks(
        boxes=[[10, 40, 60, 90], [90, 0, 110, 15]], scores=[0.87, 0.5], ids=[11, 0], masks=masks
    )
    out = draw_tracks(image, tracks)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert image.sum() == 0  # input untouched
    color = np.asarray(id_color(12))  # drawn id = id + 1
    assert np.abs(out[65, 10].astype(int) - color).max() <= 2  # left edge of the first box
    blended = out[75, 35].astype(int)
    assert blended.sum() > 0 and np.abs(blended - color).max() > 20  # semi-transparent mask
    no_mask = draw_tracks(image, tracks, draw_masks=False)
    assert no_mask[75, 35].sum() == 0


def test_draw_empty_and_detections():
    image = np.full((20, 20, 3), 7, np.uint8)
    assert (draw_tracks(image, Tracks.empty()) == image).all()
    out = draw_tracks(image, Detections(boxes=[[2, 2, 10, 10]]))
    assert (out != image).any()
