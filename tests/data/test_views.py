"""Two views with instance correspondence (masa.data.views)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from masa.data.views import View, ViewConfig, make_view, make_view_pair

SIZE = (192, 256)  # small output keeps the tests fast
# distinct, saturated colours (nearest-colour classification survives the HSV jitter)
PALETTE = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255)], np.uint8)
BACKGROUNDS = np.array([(0, 0, 0), (114, 114, 114), (255, 255, 255)], np.uint8)
# aspect <= 2 so that a rotated rectangle still fills most of its enclosing box
RECTS = np.array([[10, 10, 70, 50], [100, 20, 150, 80], [180, 30, 240, 90],
                  [20, 110, 80, 170], [110, 120, 170, 160], [190, 120, 250, 180]], np.float32)
IDS = np.array([5, 11, 2, 40, 7, 9], np.int64)
NO_GEOMETRY = dict(max_rotate_degree=0.0, max_translate_ratio=0.0, scaling_ratio_range=(1.0, 1.0), max_shear_degree=0.0,
                   hue_delta=0, saturation_delta=0, value_delta=0, flip_prob=0.0, resize_ratio_range=(1.0, 1.0))


def scene(h: int = 200, w: int = 260) -> tuple[np.ndarray, np.ndarray]:
    image = np.zeros((h, w, 3), np.uint8)
    masks = np.zeros((len(RECTS), h, w), bool)
    for k, (x1, y1, x2, y2) in enumerate(RECTS.astype(int)):
        image[y1:y2, x1:x2] = PALETTE[k]
        masks[k, y1:y2, x1:x2] = True
    return image, masks


def nearest_colour(pixels: np.ndarray) -> np.ndarray:
    """Index into PALETTE of each pixel's nearest colour, -1 when a background colour is nearer."""
    ref = np.concatenate([PALETTE, BACKGROUNDS]).astype(np.int32)
    d = ((pixels.reshape(-1, 1, 3).astype(np.int32) - ref[None]) ** 2).sum(-1)
    idx = d.argmin(1)
    return np.where(idx < len(PALETTE), idx, -1)


def check_colours(view: View, *, min_fraction: float) -> int:
    """Each surviving box (at least 4x4 px) holds mostly its rectangle's colour; returns how many were checked.

    Boxes touching the frame are skipped: without masks, the enclosing box of a rotated rectangle that the frame
    cuts is clipped as a box (as the authors do), so it may hold mostly background.
    """
    checked = 0
    h, w = view.image.shape[:2]
    for box, i in zip(view.boxes, view.ids):
        if box[0] <= 0 or box[1] <= 0 or box[2] >= w or box[3] >= h:
            continue
        k = int(np.flatnonzero(IDS == i)[0])
        x1, y1, x2, y2 = np.round(box).astype(int)
        if x2 - x1 < 4 or y2 - y1 < 4:
            continue
        region = view.image[y1:y2, x1:x2]
        assert (nearest_colour(region) == k).mean() >= min_fraction, (i, box)
        checked += 1
    return checked


def check_view(view: View, config: ViewConfig) -> None:
    h, w = config.output_size
    assert view.image.shape == (h, w, 3) and view.image.dtype == np.uint8
    assert view.boxes.dtype == np.float32 and view.boxes.shape == (len(view.ids), 4)
    assert view.ids.dtype == np.int64 and len(np.unique(view.ids)) == len(view.ids)
    b = view.boxes
    assert (b[:, 0] >= 0).all() and (b[:, 1] >= 0).all() and (b[:, 2] <= w).all() and (b[:, 3] <= h).all()
    assert ((b[:, 2] - b[:, 0]) >= 1).all() and ((b[:, 3] - b[:, 1]) >= 1).all()


def test_boxes_follow_the_rectangles_through_both_views():
    image, _ = scene()
    config = ViewConfig(output_size=SIZE)
    checked = 0
    for seed in range(8):
        key, ref = make_view_pair(image, RECTS, IDS, rng=np.random.default_rng(seed), config=config)
        for view in (key, ref):
            check_view(view, config)
            assert set(view.ids) <= set(IDS)
            checked += check_colours(view, min_fraction=0.55)
    assert checked >= 20


def test_masks_stay_inside_their_boxes_and_cover_their_rectangle():
    image, masks = scene()
    config = ViewConfig(output_size=SIZE)
    for seed in range(4):
        for view in make_view_pair(image, RECTS, IDS, masks=masks, rng=np.random.default_rng(seed), config=config):
            check_view(view, config)
            assert view.masks is not None and view.masks.shape == (len(view.ids), *SIZE)
            for m, box, i in zip(view.masks, view.boxes, view.ids):
                ys, xs = np.nonzero(m)
                assert len(xs) > 0
                assert xs.min() >= np.floor(box[0]) and xs.max() < np.ceil(box[2])
                assert ys.min() >= np.floor(box[1]) and ys.max() < np.ceil(box[3])
                k = int(np.flatnonzero(IDS == i)[0])
                if m.sum() >= 100:  # small masks are mostly antialiased edge
                    assert (nearest_colour(view.image[m]) == k).mean() > 0.8


def test_exact_geometry_without_randomness():
    image, masks = scene(SIZE[0], SIZE[1])
    boxes, ids = RECTS[[0, 1, 3, 4]], IDS[[0, 1, 3, 4]]
    same = make_view(image, boxes, ids, masks=masks[[0, 1, 3, 4]], rng=np.random.default_rng(0),
                     config=ViewConfig(output_size=SIZE, **NO_GEOMETRY))
    np.testing.assert_array_equal(same.image, image)
    np.testing.assert_allclose(same.boxes, boxes)
    np.testing.assert_array_equal(same.ids, ids)
    flipped = make_view(image, boxes, ids, rng=np.random.default_rng(0),
                        config=ViewConfig(output_size=SIZE, **{**NO_GEOMETRY, "flip_prob": 1.0}))
    np.testing.assert_allclose(flipped.boxes, np.stack([SIZE[1] - boxes[:, 2], boxes[:, 1], SIZE[1] - boxes[:, 0],
                                                        boxes[:, 3]], 1))
    half = make_view(image, boxes, ids, rng=np.random.default_rng(0),
                     config=ViewConfig(output_size=SIZE, **{**NO_GEOMETRY, "resize_ratio_range": (0.5, 0.5)}))
    np.testing.assert_allclose(half.boxes, boxes / 2)
    assert (half.image[SIZE[0] // 2:, :] == 114).all()  # padded bottom/right with 114


def test_same_seed_same_views_numpy_and_torch_generators():
    image, masks = scene()
    mixin = (image[::-1].copy(), RECTS[:3])
    config = ViewConfig(output_size=SIZE, photometric=True, photometric_prob=1.0)
    for make_rng in (lambda: np.random.default_rng(3), lambda: torch.Generator().manual_seed(3)):
        a = make_view_pair(image, RECTS, IDS, masks=masks, mixin=mixin, rng=make_rng(), config=config)
        b = make_view_pair(image, RECTS, IDS, masks=masks, mixin=mixin, rng=make_rng(), config=config)
        for va, vb in zip(a, b):
            np.testing.assert_array_equal(va.image, vb.image)
            np.testing.assert_array_equal(va.boxes, vb.boxes)
            np.testing.assert_array_equal(va.ids, vb.ids)
            np.testing.assert_array_equal(va.masks, vb.masks)
    k, r = make_view_pair(image, RECTS, IDS, rng=np.random.default_rng(3), config=config)
    assert not np.array_equal(k.image, r.image)  # the two views are independent draws


def test_mixin_instances_get_negative_ids_shared_by_both_views():
    image, masks = scene()
    mix_image = np.full((120, 160, 3), 200, np.uint8)
    mix_boxes = np.array([[10, 10, 60, 60], [80, 40, 150, 110]], np.float32)
    config = ViewConfig(output_size=SIZE)
    seen = set()
    for seed in range(3):
        for view in make_view_pair(image, RECTS, IDS, masks=masks, mixin=(mix_image, mix_boxes),
                                   rng=np.random.default_rng(seed), config=config):
            check_view(view, config)
            assert set(view.ids) <= set(IDS) | {-1, -2}
            assert view.masks is not None and len(view.masks) == len(view.ids)
            seen |= set(view.ids[view.ids < 0].tolist())
    assert seen  # the mix-in instances do take part
    with pytest.raises(ValueError, match="ids"):
        make_view(image, RECTS, -IDS, mixin=(mix_image, mix_boxes), rng=np.random.default_rng(0), config=config)


def test_boxes_pushed_out_of_the_frame_are_dropped():
    image, _ = scene()
    boxes = np.concatenate([RECTS[:2], [[-80, -40, -10, -5], [300, 10, 340, 40], [30, 100, 30.5, 100.5]]]).astype(np.float32)
    ids = np.array([1, 2, 3, 4, 5], np.int64)
    config = ViewConfig(output_size=SIZE, **{**NO_GEOMETRY, "max_translate_ratio": 0.6})
    kept = []
    for seed in range(6):
        view = make_view(image, boxes, ids, rng=np.random.default_rng(seed), config=config)
        check_view(view, config)
        assert not set(view.ids) & {3, 4, 5}  # outside the input frame, or below 1 px
        kept.append(len(view.ids))
    assert min(kept) < 2 <= max(kept)  # a strong translation pushes boxes out in some draws, not in all
    strict = ViewConfig(output_size=SIZE, **{**NO_GEOMETRY, "max_translate_ratio": 0.6, "min_visible_fraction": 0.9})
    for seed in range(6):
        view = make_view(image, boxes, ids, rng=np.random.default_rng(seed), config=strict)
        for box, i in zip(view.boxes, view.ids):
            x1, y1, x2, y2 = boxes[int(i) - 1]
            assert (box[2] - box[0]) * (box[3] - box[1]) >= 0.9 * (x2 - x1) * (y2 - y1) - 1e-3


@pytest.mark.parametrize("with_masks", [False, True])
def test_empty_input(with_masks):
    image, _ = scene()
    masks = np.zeros((0, *image.shape[:2]), bool) if with_masks else None
    config = ViewConfig(output_size=SIZE)
    for view in make_view_pair(image, np.zeros((0, 4), np.float32), np.zeros(0, np.int64), masks=masks,
                               rng=np.random.default_rng(0), config=config):
        check_view(view, config)
        assert view.boxes.shape == (0, 4) and view.ids.shape == (0,)
        assert (view.masks is None) == (not with_masks)
        if with_masks:
            assert view.masks.shape == (0, *SIZE)


def test_bad_input_is_rejected():
    image, _ = scene()
    with pytest.raises(ValueError, match="image"):
        make_view(image[..., 0], RECTS, IDS, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="ids"):
        make_view(image, RECTS, IDS[:2], rng=np.random.default_rng(0))
    with pytest.raises(TypeError, match="rng"):
        make_view(image, RECTS, IDS, rng=0)
