"""Training samples: reading `masa segment` files, the view-pair dataset and the sample order."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from masa.data.views import ViewConfig
from masa.training.data import ViewPairDataset, load_proposal_images, sample_order


def write(root: Path, images: list[dict], annotations: list[dict], files: dict[str, bytes | None]) -> Path:
    folder = root / "images"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name, content in files.items():
        if content is None:
            image = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
            image[10:40, 10:50] = (200, 30, 30)
            cv2.imwrite(str(folder / name), image)
        else:
            (folder / name).write_bytes(content)
    path = root / "proposals.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}))
    return path


def ann(image_id: int, bbox: list[float], score: float = 0.9) -> dict:
    return {"image_id": image_id, "bbox": bbox, "score": score, "category_id": 1}


def test_load_proposal_images(tmp_path):
    images = [
        {"id": 3, "file_name": "c.png", "height": 60, "width": 80},
        {"id": 1, "file_name": "a.png", "height": 60, "width": 80},
        {"id": 2, "file_name": "b.png", "height": 60, "width": 80},
        {"id": 4, "file_name": "gone.png", "height": 60, "width": 80},
    ]
    annotations = [
        ann(1, [10, 10, 40, 30], 0.9),
        ann(1, [11, 10, 40, 30], 0.8),  # IoU ~0.95 with the first: removed by NMS
        ann(1, [0, 0, 0.5, 20]),  # narrower than 1 px: dropped
        ann(1, [50, 5, 20, 20], 0.95),
        ann(2, [5, 5, 0, 0]),  # b.png: only a degenerate box -> no usable proposal
        ann(3, [1, 2, 3, 4]),
        ann(4, [1, 2, 3, 4]),
    ]
    path = write(tmp_path, images, annotations, {"a.png": None, "b.png": None, "c.png": None})
    found = load_proposal_images([path], [tmp_path / "elsewhere", tmp_path / "images"])
    assert [im.path.name for im in found.images] == ["a.png", "c.png"]  # by image id
    assert found.without_proposals == 1 and found.missing == ["gone.png"]
    a = found.images[0]
    assert a.path == tmp_path / "images" / "a.png"
    np.testing.assert_allclose(a.boxes, [[10, 10, 50, 40], [50, 5, 70, 25]])  # xyxy, in file order
    assert a.boxes.dtype == np.float32 and a.ids.tolist() == [0, 1]
    capped = load_proposal_images([path], [tmp_path / "images"], max_per_image=1)
    np.testing.assert_allclose(capped.images[0].boxes, [[50, 5, 70, 25]])  # the best-scored one
    loose = load_proposal_images([path], [tmp_path / "images"], nms_iou=0.99)
    assert len(loose.images[0].boxes) == 3


def test_load_proposal_images_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [{"id": 1}]')
    with pytest.raises(ValueError, match="bad.json"):
        load_proposal_images([bad], [tmp_path])
    bad.write_text('{"annotations": []}')
    with pytest.raises(ValueError, match="bad.json"):
        load_proposal_images([bad], [tmp_path])


def test_sample_order_is_a_permutation_per_epoch():
    n = 7
    for epoch in range(3):
        order = [sample_order(epoch * n + k, n, seed=5) for k in range(n)]
        assert sorted(order) == list(range(n))
    first, second = ([sample_order(e * n + k, n, seed=5) for k in range(n)] for e in (0, 1))
    assert first != second  # a fresh permutation each epoch
    assert [sample_order(k, n, seed=5) for k in range(n)] == first  # a function of (position, seed)
    assert [sample_order(k, n, seed=6) for k in range(n)] != first


def test_view_pair_dataset_is_a_function_of_position(tmp_path):
    images = [{"id": i + 1, "file_name": f"{c}.png", "height": 60, "width": 80} for i, c in enumerate("abc")]
    annotations = [ann(i + 1, [10, 10, 40, 30]) for i in range(3)] + [ann(i + 1, [50, 35, 25, 20]) for i in range(3)]
    path = write(tmp_path, images, annotations, {"a.png": None, "b.png": None, "c.png": b"not an image"})
    found = load_proposal_images([path], [tmp_path / "images"])
    config = ViewConfig(output_size=(64, 64))
    one, two = ViewPairDataset(found.images, config, seed=1), ViewPairDataset(found.images, config, seed=1)
    usable = 0
    for position in (0, 1, 2, 4, 11, 2):
        a, b = one[position], two[position]
        assert a["position"] == position and a["path"] == b["path"]
        assert a["path"].endswith(["a.png", "b.png", "c.png"][sample_order(position, 3, 1)])
        if a["path"].endswith("c.png"):
            assert a["skip"] == "unreadable" and b["skip"] == "unreadable"
            continue
        if "skip" in a:
            assert a["skip"] == b["skip"] == "no shared instance"
            continue
        for view in ("key", "ref"):
            assert np.array_equal(a[view].image, b[view].image)
            assert np.array_equal(a[view].boxes, b[view].boxes) and np.array_equal(a[view].ids, b[view].ids)
            assert a[view].image.shape == (64, 64, 3)
        usable += 1
    assert usable >= 3
    with pytest.raises(ValueError, match="no training images"):
        ViewPairDataset([], config, seed=0)
