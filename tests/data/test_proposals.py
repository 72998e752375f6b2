"""Instance proposals (masa.data) and `masa segment`: sources, COCO file, resume, shards."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from masa.cli import main
from masa.data.coco_proposals import find_images, parse_shard, run_proposals, select_shard
from masa.data.proposals import AnnotationProposals, GraphProposals, SamProposals


def rectangles_image() -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    image = np.full((120, 160, 3), 200, dtype=np.uint8)
    rects = [(10, 10, 60, 50), (90, 20, 150, 70), (30, 75, 100, 110)]
    for (x1, y1, x2, y2), colour in zip(rects, [(220, 30, 30), (30, 200, 40), (20, 40, 210)]):
        image[y1:y2, x1:x2] = colour
    return image, rects


def write_images(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    image, _ = rectangles_image()
    paths = []
    for k in range(count):
        path = folder / f"img{k:02d}.png"
        cv2.imwrite(str(path), np.roll(image, 7 * k, axis=1)[:, :, ::-1])
        paths.append(path)
    return paths


def test_graph_proposals_find_flat_rectangles():
    image, rects = rectangles_image()
    proposals = GraphProposals().propose(image)
    assert proposals
    boxes = np.array([b for _, b, _ in proposals])
    for x1, y1, x2, y2 in rects:
        ious = _iou(np.array([x1, y1, x2, y2], dtype=np.float32), boxes)
        assert ious.max() >= 0.7, (x1, y1, x2, y2, ious.max())  # smoothing (sigma) blurs the edges by a few pixels
    for mask, box, _ in proposals:
        assert mask.shape == image.shape[:2] and mask.dtype == bool
        assert 0 <= box[0] < box[2] <= image.shape[1] and 0 <= box[1] < box[3] <= image.shape[0]


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / (area(box) + area(boxes) - inter)


def test_coco_file_loads_and_round_trips_masks(tmp_path):
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    write_images(tmp_path / "imgs", 2)
    out = tmp_path / "proposals.json"
    source = GraphProposals()
    report = run_proposals(source, find_images([tmp_path / "imgs"]), out)
    assert report.processed == 2 and report.written_images == 2 and report.instances > 0
    coco = COCO(str(out))
    assert sorted(coco.getImgIds()) == [1, 2] and coco.getCatIds() == [1]
    image = cv2.imread(str(tmp_path / "imgs" / "img00.png"))[:, :, ::-1].copy()
    expected = source.propose(image)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == len(expected)
    for ann, (mask, box, _) in zip(anns, expected):
        assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), mask)
        assert ann["area"] == int(mask.sum()) and ann["category_id"] == 1
        assert np.allclose(ann["bbox"], [box[0], box[1], box[2] - box[0], box[3] - box[1]], atol=0.01)


def test_resume_skips_done_images_and_settings_must_match(tmp_path):
    write_images(tmp_path / "imgs", 3)
    out = tmp_path / "p.json"
    images = find_images([tmp_path / "imgs"])
    first = run_proposals(GraphProposals(), images[:2], out)
    assert first.processed == 2
    again = run_proposals(GraphProposals(), images, out)
    assert (again.processed, again.skipped, again.written_images) == (1, 2, 3)
    third = run_proposals(GraphProposals(), images, out)
    assert third.processed == 0 and third.skipped == 3
    # a run killed mid-line: the truncated line is ignored and that image done again
    part = next((tmp_path / "p.json.parts").glob("shard-*.jsonl"))
    lines = part.read_text().splitlines()
    part.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][:20])
    fourth = run_proposals(GraphProposals(), images, out)
    assert fourth.processed == 1 and len(json.loads(out.read_text())["images"]) == 3
    with pytest.raises(ValueError, match="other settings"):
        run_proposals(GraphProposals(max_proposals=5), images, out)


def test_shards_partition_the_images(tmp_path):
    write_images(tmp_path / "imgs", 5)
    images = find_images([tmp_path / "imgs"])
    assert parse_shard("1/3") == (1, 3)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(ValueError, match="--shard"):
            parse_shard(bad)
    parts = [select_shard(images, i, 3) for i in range(3)]
    assert sorted(name for part in parts for _, name in part) == [name for _, name in images]
    out = tmp_path / "p.json"
    source = AnnotationProposals(tmp_path)  # no label files: fast, no instances
    done = [run_proposals(source, images, out, shard=(i, 3)).processed for i in range(3)]
    assert done == [2, 2, 1]
    data = json.loads(out.read_text())
    assert [im["id"] for im in data["images"]] == [1, 2, 3, 4, 5]


def test_unreadable_image_is_reported_and_skipped(tmp_path, capsys):
    write_images(tmp_path / "imgs", 2)
    (tmp_path / "imgs" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "p.json"
    code = main(["segment", str(tmp_path / "imgs"), "--out", str(out), "--no-progress"])
    assert code == 0
    err = capsys.readouterr().err
    assert "broken.jpg: cannot decode" in err and "1 unreadable" in err
    data = json.loads(out.read_text())
    assert [im["file_name"] for im in data["images"]] == ["img00.png", "img01.png"]
    assert main(["segment", str(tmp_path / "imgs"), "--out", str(out), "--no-progress", "--shard", "2/2"]) == 2


def test_annotation_source_reads_yolo_seg(tmp_path):
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train" / "a.txt").write_text("5 0.1 0.1 0.5 0.1 0.5 0.6 0.1 0.6\n\n0 0.6 0.2 0.9 0.2 0.75 0.9\n")
    source = AnnotationProposals(tmp_path / "labels")
    proposals = source.propose(image, tmp_path / "images" / "train" / "a.jpg")
    assert len(proposals) == 2
    mask, box, score = proposals[0]
    assert np.allclose(box, [20, 10, 100, 60]) and score == 1.0
    assert abs(int(mask.sum()) - 81 * 51) < 200
    assert source.propose(image, tmp_path / "b.jpg") == [] and source.missing == 1


@pytest.fixture(scope="module")
def random_sam_checkpoint(tmp_path_factory) -> Path:
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam") / "sam_vit_b_random.pth"
    torch.save(sam_model_registry["vit_b"]().state_dict(), path)
    return path


def test_sam_source_loads_a_vit_b_checkpoint(random_sam_checkpoint):
    source = SamProposals(random_sam_checkpoint, "vit_b")
    assert source.options == {
        "points_per_side": 32,
        "pred_iou_thresh": 0.88,
        "stability_score_thresh": 0.95,
        "min_mask_region_area": 100,
        "box_nms_thresh": 0.7,
    }


def tiny_sam():
    """SAM's architecture at a tiny width/depth: a ViT-B forward takes a minute on 2 busy cores."""
    from segment_anything.build_sam import _build_sam

    return _build_sam(encoder_embed_dim=32, encoder_depth=2, encoder_num_heads=2, encoder_global_attn_indexes=[1])


def test_sam_source_runs_end_to_end_with_random_weights(tmp_path, monkeypatch):
    import segment_anything

    torch.manual_seed(0)
    path = tmp_path / "tiny_sam.pth"
    torch.save(tiny_sam().state_dict(), path)
    monkeypatch.setitem(segment_anything.sam_model_registry, "vit_b", tiny_sam)
    source = SamProposals(path, "vit_b", points_per_side=2, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    image, _ = rectangles_image()
    proposals = source.propose(image)
    for mask, box, score in proposals:
        assert mask.shape == image.shape[:2] and box.shape == (4,) and np.isfinite(score)
    write_images(tmp_path / "imgs", 1)
    report = run_proposals(source, find_images([tmp_path / "imgs"]), tmp_path / "p.json")
    assert report.processed == 1 and report.written_images == 1


@pytest.mark.data
def test_segment_coco128_annotations_load_and_resume(shared_data, tmp_path):
    from pycocotools.coco import COCO

    root = shared_data / "coco128"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    out = tmp_path / "coco128.json"
    args = ["segment", str(root / "images" / "train2017"), "--out", str(out), "--max-images", "4", "--no-progress"]
    assert main([*args, "--source", "annotations", "--annotations", str(root / "polygons")]) == 0
    coco = COCO(str(out))
    assert len(coco.getImgIds()) == 4 and len(coco.getAnnIds()) > 0
    report = run_proposals(AnnotationProposals(root / "polygons"), find_images([root / "images" / "train2017"])[:4], out)
    assert report.processed == 0 and report.skipped == 4
