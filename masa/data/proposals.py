"""Instance proposals for self-supervised MASA training (``masa segment``).

Every source has one method, ``propose(image, path=None) -> list[Proposal]``: ``image`` is
``uint8[H, W, 3]`` RGB, ``path`` the image file (only :class:`AnnotationProposals` uses it) and a
:data:`Proposal` is ``(mask bool[H, W] or None, box float32[4] xyxy pixels, score)``.

- :class:`SamProposals`: SAM automatic mask generation with the paper's settings (the
  ``segment-anything`` package's own generator, the user's checkpoint read with
  ``weights_only`` rules).
- :class:`GraphProposals`: weight-free, runs anywhere: multi-scale Felzenszwalb graph segmentation
  (scikit-image) + size filters + box NMS (measurements in docs/training.md).
- :class:`AnnotationProposals`: existing YOLO-seg polygon files (``class x1 y1 x2 y2 ...``,
  normalised), as an ablation; classes are ignored.

The COCO-style writer/reader lives in :mod:`masa.data.coco_proposals`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

__all__ = [
    "Proposal",
    "ProposalSource",
    "GraphProposals",
    "SamProposals",
    "AnnotationProposals",
    "SAM_PAPER_SETTINGS",
    "box_nms",
]

Proposal = tuple["np.ndarray | None", np.ndarray, float]

# MASA (paper, Sec. 3.2/4.1) runs SAM's automatic generator: a 32x32 point grid, predicted-IoU
# 0.88, stability 0.95, small-region removal and box NMS 0.7.
SAM_PAPER_SETTINGS: dict[str, float | int] = {
    "points_per_side": 32,
    "pred_iou_thresh": 0.88,
    "stability_score_thresh": 0.95,
    "min_mask_region_area": 100,
    "box_nms_thresh": 0.7,
}


class ProposalSource(Protocol):
    name: str

    def propose(self, image: np.ndarray, path: str | Path | None = None) -> list[Proposal]: ...

    def settings(self) -> dict: ...


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image: expected uint8[H, W, 3] RGB, got {image.dtype}{list(image.shape)}")
    return image


def box_nms(boxes: np.ndarray, scores: np.ndarray, iou_thresh: float) -> np.ndarray:
    """Indices kept by greedy box NMS (highest score first), as torchvision's ``nms``."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    import torch
    from torchvision.ops import nms

    keep = nms(torch.as_tensor(boxes, dtype=torch.float32), torch.as_tensor(scores, dtype=torch.float32), float(iou_thresh))
    return keep.numpy()


def _hierarchy(labels: np.ndarray, image: np.ndarray, bins: int = 25) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Selective-search-like greedy grouping of the segments ``labels`` (0..n-1) of ``image``.

    Adjacent regions merge, most similar first (colour-histogram intersection + small size + fill
    of the joint box, as Uijlings et al.); returns every region of the hierarchy (the ``n`` segments
    then each merge) as ``(members, boxes xyxy, sizes)``, ``members[k]`` the segment labels of region k.
    """
    import heapq

    height, width = labels.shape
    n = int(labels.max()) + 1
    flat = labels.ravel()
    total = float(height * width)
    sizes = np.bincount(flat, minlength=n).astype(np.float64)
    quant = np.minimum(image.reshape(-1, 3).astype(np.int64) * bins // 256, bins - 1)
    hist = np.zeros((n, 3 * bins))
    for c in range(3):
        hist[:, c * bins : (c + 1) * bins] = np.bincount(flat * bins + quant[:, c], minlength=n * bins).reshape(n, bins)
    hist /= np.maximum(hist.sum(axis=1, keepdims=True), 1)
    ys, xs = np.divmod(np.arange(flat.size), width)
    boxes = np.stack(
        [
            np.full(n, width, np.float64),
            np.full(n, height, np.float64),
            np.zeros(n),
            np.zeros(n),
        ],
        axis=1,
    )
    np.minimum.at(boxes[:, 0], flat, xs)
    np.minimum.at(boxes[:, 1], flat, ys)
    np.maximum.at(boxes[:, 2], flat, xs + 1)
    np.maximum.at(boxes[:, 3], flat, ys + 1)
    pairs = np.concatenate(
        [
            np.stack([labels[:, :-1].ravel(), labels[:, 1:].ravel()], axis=1),
            np.stack([labels[:-1, :].ravel(), labels[1:, :].ravel()], axis=1),
        ]
    )
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs = np.unique(np.sort(pairs, axis=1), axis=0)

    hist_l, box_l, size_l = list(hist), list(boxes), list(sizes)
    members: list[np.ndarray] = [np.array([k]) for k in range(n)]
    neighbours: list[set[int]] = [set() for _ in range(n)]
    for a, b in pairs:
        neighbours[a].add(int(b))
        neighbours[b].add(int(a))

    def similarity(a: int, b: int) -> float:
        box_a, box_b = box_l[a], box_l[b]
        joint = (max(box_a[2], box_b[2]) - min(box_a[0], box_b[0])) * (max(box_a[3], box_b[3]) - min(box_a[1], box_b[1]))
        colour = float(np.minimum(hist_l[a], hist_l[b]).sum()) / 3
        size = 1 - (size_l[a] + size_l[b]) / total
        fill = 1 - (joint - size_l[a] - size_l[b]) / total
        return colour + size + fill

    heap = [(-similarity(int(a), int(b)), int(a), int(b)) for a, b in pairs]
    heapq.heapify(heap)
    alive = [True] * n
    while heap:
        _, a, b = heapq.heappop(heap)
        if not (alive[a] and alive[b]):
            continue
        k = len(members)
        alive[a] = alive[b] = False
        alive.append(True)
        sa, sb = size_l[a], size_l[b]
        size_l.append(sa + sb)
        hist_l.append((hist_l[a] * sa + hist_l[b] * sb) / (sa + sb))
        box_l.append(np.concatenate([np.minimum(box_l[a][:2], box_l[b][:2]), np.maximum(box_l[a][2:], box_l[b][2:])]))
        members.append(np.concatenate([members[a], members[b]]))
        around = (neighbours[a] | neighbours[b]) - {a, b}
        neighbours.append(around)
        for m in around:
            neighbours[m].discard(a)
            neighbours[m].discard(b)
            neighbours[m].add(k)
            heapq.heappush(heap, (-similarity(k, m), k, m))
    return members, np.asarray(box_l, dtype=np.float32), np.asarray(size_l)


class GraphProposals:
    """Weight-free proposals: Felzenszwalb graph segmentation, grouped into a region hierarchy.

    The image, resized to ``max_side`` pixels (longest side), is over-segmented by scikit-image's
    ``felzenszwalb`` at each of ``scales``. With ``hierarchy`` (the default) adjacent segments are
    then merged greedily, most similar first (colour histograms, size, fill: selective search's
    grouping), and every region of the hierarchy is a candidate; without it only the segments are.
    Candidates smaller than ``min_area`` or larger than ``max_area`` (fractions of the image) are
    dropped; the score is the region's fill of its box (compact regions first); box NMS at
    ``nms_thresh`` removes duplicates; at most ``max_proposals`` are kept. Masks and boxes are
    scaled back to the image. Measured choices: docs/training.md ("Proposals").
    """

    name = "graph"

    def __init__(
        self,
        scales: Sequence[float] = (100,),
        sigma: float = 0.8,
        min_size: int = 20,
        hierarchy: bool = True,
        min_area: float = 0.002,
        max_area: float = 0.9,
        nms_thresh: float = 0.7,
        max_proposals: int = 300,
        max_side: int | None = 320,
    ) -> None:
        if not scales:
            raise ValueError("scales: expected at least one Felzenszwalb scale")
        self.scales = tuple(float(s) for s in scales)
        self.sigma = float(sigma)
        self.min_size = int(min_size)
        self.hierarchy = bool(hierarchy)
        self.min_area = float(min_area)
        self.max_area = float(max_area)
        self.nms_thresh = float(nms_thresh)
        self.max_proposals = int(max_proposals)
        self.max_side = max_side

    def settings(self) -> dict:
        return {
            "source": self.name,
            "scales": list(self.scales),
            "sigma": self.sigma,
            "min_size": self.min_size,
            "hierarchy": self.hierarchy,
            "min_area": self.min_area,
            "max_area": self.max_area,
            "nms_thresh": self.nms_thresh,
            "max_proposals": self.max_proposals,
            "max_side": self.max_side,
        }

    def propose(self, image: np.ndarray, path: str | Path | None = None) -> list[Proposal]:
        import cv2
        from skimage.segmentation import felzenszwalb

        image = _check_image(image)
        height, width = image.shape[:2]
        small = image
        if self.max_side and max(height, width) > self.max_side:
            factor = self.max_side / max(height, width)
            small = cv2.resize(image, (max(1, round(width * factor)), max(1, round(height * factor))), interpolation=cv2.INTER_AREA)
        sh, sw = small.shape[:2]
        total = float(sh * sw)

        label_maps: list[np.ndarray] = []
        refs: list[tuple[int, np.ndarray]] = []
        boxes: list[np.ndarray] = []
        scores: list[np.ndarray] = []
        for level, scale in enumerate(self.scales):
            labels = felzenszwalb(small, scale=scale, sigma=self.sigma, min_size=self.min_size)
            label_maps.append(labels)
            if self.hierarchy:
                members, level_boxes, sizes = _hierarchy(labels, small)
            else:
                members, level_boxes, sizes = _segments(labels)
            box_areas = (level_boxes[:, 2] - level_boxes[:, 0]) * (level_boxes[:, 3] - level_boxes[:, 1])
            ok = (sizes >= self.min_area * total) & (sizes <= self.max_area * total)
            for k in np.nonzero(ok)[0]:
                refs.append((level, members[k]))
            boxes.append(level_boxes[ok])
            scores.append((sizes / np.maximum(box_areas, 1))[ok])
        boxes_np = np.concatenate(boxes).astype(np.float32)
        scores_np = np.concatenate(scores).astype(np.float32)
        if not len(boxes_np):
            return []
        keep = box_nms(boxes_np, scores_np, self.nms_thresh)[: self.max_proposals]

        proposals: list[Proposal] = []
        for k in keep:
            level, members = refs[k]
            small_mask = np.isin(label_maps[level], members).astype(np.uint8)
            if small is not image:
                mask = cv2.resize(small_mask, (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
            else:
                mask = small_mask.astype(bool)
            rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
            if len(rows) == 0:
                continue
            box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)
            proposals.append((mask, box, float(scores_np[k])))
        return proposals


def _segments(labels: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """The segments of ``labels`` alone, in :func:`_hierarchy`'s format."""
    from scipy import ndimage

    n = int(labels.max()) + 1
    sizes = np.bincount(labels.ravel(), minlength=n).astype(np.float64)
    boxes = np.zeros((n, 4), dtype=np.float32)
    for index, region in enumerate(ndimage.find_objects(labels + 1)):
        if region is not None:
            ys, xs = region
            boxes[index] = (xs.start, ys.start, xs.stop, ys.stop)
    return [np.array([k]) for k in range(n)], boxes, sizes


class SamProposals:
    """SAM automatic mask generation (``segment_anything.SamAutomaticMaskGenerator``).

    ``checkpoint`` is an original SAM file (``sam_vit_b_01ec64.pth`` ...) or a ``.safetensors``
    conversion, read by :func:`masa.modeling.checkpoint.load_state_dict_file` (no unpickling) and
    loaded strictly. ``overrides`` replace entries of :data:`SAM_PAPER_SETTINGS` (e.g. a small
    ``points_per_side`` for tests); other generator keywords pass through too. The score is SAM's
    predicted IoU.
    """

    name = "sam"

    def __init__(self, checkpoint: str | Path, model_type: str = "vit_b", device: str = "cpu", **overrides) -> None:
        try:
            from segment_anything import SamAutomaticMaskGenerator, sam_model_registry
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ImportError("--source sam needs the segment-anything package; expected `pip install masa-tracker[sam]`") from error
        from masa.modeling.checkpoint import load_state_dict_file, load_strict

        if model_type not in ("vit_b", "vit_l", "vit_h"):
            raise ValueError(f"model_type: expected vit_b, vit_l or vit_h, got {model_type!r}")
        state = load_state_dict_file(checkpoint)
        sam = sam_model_registry[model_type]()
        load_strict(sam, state, f"SAM {model_type} ({Path(checkpoint).name})")
        sam.to(device).eval()
        self.model_type = model_type
        self.checkpoint = str(checkpoint)
        self.options = {**SAM_PAPER_SETTINGS, **overrides}
        self.generator = SamAutomaticMaskGenerator(sam, output_mode="binary_mask", **self.options)

    def settings(self) -> dict:
        return {"source": self.name, "model_type": self.model_type, "checkpoint": Path(self.checkpoint).name, **self.options}

    def propose(self, image: np.ndarray, path: str | Path | None = None) -> list[Proposal]:
        import torch

        image = _check_image(image)
        with torch.inference_mode():
            records = self.generator.generate(image)
        proposals: list[Proposal] = []
        for record in records:
            x, y, w, h = (float(v) for v in record["bbox"])
            box = np.array([x, y, x + w, y + h], dtype=np.float32)
            proposals.append((np.asarray(record["segmentation"], dtype=bool), box, float(record["predicted_iou"])))
        return proposals


class AnnotationProposals:
    """Existing instance annotations as proposals: YOLO-seg polygon files under ``root``.

    The label of ``.../<split>/<name>.jpg`` is ``root/<split>/<name>.txt`` or ``root/<name>.txt``;
    each line is ``class x1 y1 x2 y2 ...`` (normalised coordinates), rasterised with
    ``cv2.fillPoly``; the class is ignored (category 1). An image without a label file has no
    instances (the YOLO convention) and is counted in :attr:`missing`.
    """

    name = "annotations"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"--annotations: folder not found: {self.root}")
        self.missing = 0

    def settings(self) -> dict:
        return {"source": self.name, "root": str(self.root)}

    def label_file(self, path: str | Path) -> Path | None:
        path = Path(path)
        for candidate in (self.root / path.parent.name / f"{path.stem}.txt", self.root / f"{path.stem}.txt"):
            if candidate.is_file():
                return candidate
        return None

    def propose(self, image: np.ndarray, path: str | Path | None = None) -> list[Proposal]:
        import cv2

        from masa.io.errors import InputError

        if path is None:
            raise ValueError("AnnotationProposals.propose: expected the image path (its label file is looked up by name)")
        image = _check_image(image)
        height, width = image.shape[:2]
        label = self.label_file(path)
        if label is None:
            self.missing += 1
            return []
        proposals: list[Proposal] = []
        for number, line in enumerate(label.read_text().splitlines(), start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                coords = np.asarray([float(v) for v in fields[1:]], dtype=np.float64)
            except ValueError:
                raise InputError.at(label, number, "not a number", "class x1 y1 x2 y2 ... (normalised)") from None
            if len(coords) < 6 or len(coords) % 2:
                raise InputError.at(label, number, f"{len(coords)} coordinates", "a class and at least 3 x y pairs")
            points = coords.reshape(-1, 2) * [width, height]
            mask = np.zeros((height, width), dtype=np.uint8)
            cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
            x1, y1 = np.clip(points.min(axis=0), 0, [width, height])
            x2, y2 = np.clip(points.max(axis=0), 0, [width, height])
            if x2 <= x1 or y2 <= y1:
                continue
            proposals.append((mask.astype(bool), np.array([x1, y1, x2, y2], dtype=np.float32), 1.0))
        return proposals
