"""Render key/reference view pairs (masa.data.views) of coco128 images, one colour per instance id.

    python scripts/render_view_pairs.py [--data ../shared/data/coco128] [--out docs/img/view_pairs.png]

Instances are the YOLO-seg polygons of coco128 (boxes = polygon extents, masks = filled polygons); each pair
mixes in the next image of the list (its instances have negative ids and thin outlines). A person
checks by eye that the same colour marks the same object in both views.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from masa.data.views import View, ViewConfig, make_view_pair

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "coco128"
NAMES = ["000000000009", "000000000025", "000000000030", "000000000034", "000000000036", "000000000042"]


def load_instances(data: Path, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB image, boxes float32[N, 4] (polygon extents, px) and masks bool[N, H, W] of one coco128 image."""
    image = cv2.cvtColor(cv2.imread(str(data / "images" / "train2017" / f"{name}.jpg")), cv2.COLOR_BGR2RGB)
    h, w = image.shape[:2]
    boxes, masks = [], []
    for line in (data / "polygons" / "train2017" / f"{name}.txt").read_text().splitlines():
        vals = line.split()
        if len(vals) < 7:
            continue
        pts = np.asarray(vals[1:], dtype=np.float64).reshape(-1, 2) * [w, h]
        boxes.append([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
        m = np.zeros((h, w), np.uint8)
        cv2.fillPoly(m, [np.round(pts).astype(np.int32)], 1)
        masks.append(m.astype(bool))
    return image, np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(masks, bool).reshape(-1, h, w)


def colour(instance_id: int) -> tuple[int, int, int]:
    hue = (int(instance_id) * 47) % 180  # OpenCV hue; neighbouring ids get distant hues
    hsv = np.uint8([[[hue, 255, 255 if instance_id >= 0 else 170]]])
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def draw(view: View, size: int) -> np.ndarray:
    img = view.image.copy()
    if view.masks is not None:
        overlay = img.copy()
        for i, m in zip(view.ids, view.masks):
            overlay[m] = colour(i)
        img = cv2.addWeighted(img, 0.55, overlay, 0.45, 0)
    scale = size / max(img.shape[:2])
    img = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA)
    for i, b in zip(view.ids, view.boxes):
        x1, y1, x2, y2 = np.round(b * scale).astype(int)
        cv2.rectangle(img, (x1, y1), (x2, y2), colour(i), 2 if i >= 0 else 1)
        cv2.putText(img, str(int(i)), (x1 + 2, max(y1 + 12, 12)), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour(i), 1)
    return img


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "view_pairs.png")
    ap.add_argument("--pairs", type=int, default=4)
    ap.add_argument("--size", type=int, default=240, help="display size of one view (px)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--photometric", action="store_true", help="add the App. E photometric set")
    args = ap.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    config = ViewConfig(photometric=args.photometric)
    rows = []
    for k in range(args.pairs):
        image, boxes, masks = load_instances(args.data, NAMES[k % len(NAMES)])
        mix_image, mix_boxes, mix_masks = load_instances(args.data, NAMES[(k + 1) % len(NAMES)])
        ids = np.arange(len(boxes), dtype=np.int64)
        key, ref = make_view_pair(image, boxes, ids, masks=masks, mixin=(mix_image, mix_boxes, mix_masks),
                                  rng=rng, config=config)
        gap = np.full((args.size, 6, 3), 255, np.uint8)
        rows.append(np.concatenate([draw(key, args.size), gap, draw(ref, args.size)], axis=1))
        rows.append(np.full((6, rows[-1].shape[1], 3), 255, np.uint8))
    grid = np.concatenate(rows[:-1], axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).quantize(colors=192, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB, {args.pairs} pairs)")


if __name__ == "__main__":
    main()
