"""Training samples: still images with instance proposals -> pairs of views, in a reproducible order.

* :func:`load_proposal_images` reads ``masa segment`` output (COCO JSON: boxes are used, masks
  are not, as the authors train on the bbox-only file), resolves each ``file_name`` against the
  image folders given, drops degenerate boxes, thins nested proposals by box NMS and caps their
  number. Images without proposals are left out (counted).
* :class:`ViewPairDataset` turns sample ``(position, index)`` into two views
  (:func:`masa.data.views.make_view_pair`) with a mix-in image chosen by the same generator.
  Everything random about a sample derives from ``(seed, position)``, so the stream is the same
  with any number of loader workers and after a resume.
* :func:`sample_order` says which image is at each position of the stream (a fresh permutation
  per epoch); rank ``r`` of ``n`` processes takes positions ``r, r + n, ...`` of each global batch.

Images are ``uint8[H, W, 3]`` RGB; boxes ``float32[N, 4]`` ``(x1, y1, x2, y2)`` px.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torchvision.ops import nms

from masa.data.coco_proposals import read_image_rgb
from masa.data.views import ViewConfig, make_view_pair

__all__ = ["ProposalImage", "ProposalSet", "load_proposal_images", "ViewPairDataset", "sample_order"]


@dataclass
class ProposalImage:
    path: Path
    boxes: np.ndarray  # float32[N, 4] xyxy px
    ids: np.ndarray  # int64[N], >= 0


@dataclass
class ProposalSet:
    images: list[ProposalImage]
    without_proposals: int = 0  # images of the files with no usable proposal (left out)
    missing: list[str] = field(default_factory=list)  # file_names found in no image folder


def load_proposal_images(
    proposal_files: Sequence[str | Path], image_dirs: Sequence[str | Path], *, nms_iou: float = 0.5, max_per_image: int = 100
) -> ProposalSet:
    """Every image of ``proposal_files`` (COCO JSON from ``masa segment``) with usable proposals.

    ``file_name`` is looked up in each of ``image_dirs`` in turn. Boxes with w or h < 1 are
    skipped (as the authors' ``MASADataset``); the rest are thinned by NMS at ``nms_iou`` in
    score order and capped at ``max_per_image``.
    """
    dirs = [Path(d) for d in image_dirs]
    out = ProposalSet(images=[])
    for file in proposal_files:
        file = Path(file)
        try:
            data = json.loads(file.read_text())
            records = {int(im["id"]): im for im in data["images"]}
            per_image: dict[int, list[dict]] = {k: [] for k in records}
            for ann in data["annotations"]:
                per_image[int(ann["image_id"])].append(ann)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{file}: not a COCO proposal file from `masa segment` ({exc})") from exc
        for image_id in sorted(records):
            record = records[image_id]
            path = next((d / record["file_name"] for d in dirs if (d / record["file_name"]).is_file()), None)
            if path is None:
                out.missing.append(record["file_name"])
                continue
            anns = per_image[image_id]
            boxes = np.array([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
            scores = np.array([a.get("score", 1.0) for a in anns], dtype=np.float32)
            keep = (boxes[:, 2] >= 1) & (boxes[:, 3] >= 1)
            boxes, scores = boxes[keep], scores[keep]
            boxes[:, 2:] += boxes[:, :2]
            if len(boxes) == 0:
                out.without_proposals += 1
                continue
            order = nms(torch.from_numpy(boxes), torch.from_numpy(scores), nms_iou)[:max_per_image].numpy()
            boxes = boxes[np.sort(order)]
            out.images.append(ProposalImage(path=path, boxes=boxes, ids=np.arange(len(boxes), dtype=np.int64)))
    return out


def sample_order(position: int, num_images: int, seed: int) -> int:
    """The image index at ``position`` of the sample stream (a permutation of all images per epoch)."""
    epoch, offset = divmod(int(position), num_images)
    return int(np.random.default_rng([seed, 1, epoch]).permutation(num_images)[offset])


class ViewPairDataset(torch.utils.data.Dataset):
    """``dataset[position]`` -> ``dict`` with ``key``/``ref`` views (:class:`~masa.data.views.View`),
    ``position`` and ``path``; or ``{"skip": reason, ...}`` when the image (or its mix-in) cannot be
    read or a view keeps no instance. Indexed by stream position (any non-negative integer)."""

    def __init__(self, images: Sequence[ProposalImage], view_config: ViewConfig, *, seed: int) -> None:
        if not images:
            raise ValueError("no training images with proposals")
        self.images = list(images)
        self.view_config = view_config
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, position: int) -> dict:
        index = sample_order(position, len(self.images), self.seed)
        item = self.images[index]
        rng = np.random.default_rng([self.seed, 2, int(position)])
        mix_index = int(rng.integers(len(self.images) - 1)) if len(self.images) > 1 else 0
        mix_index += int(mix_index >= index and len(self.images) > 1)
        base = {"position": int(position), "path": str(item.path)}
        image = read_image_rgb(item.path)
        if image is None:
            return {**base, "skip": "unreadable"}
        mix = self.images[mix_index]
        mix_image = read_image_rgb(mix.path) if self.view_config.mixup else None
        mixin = None if mix_image is None else (mix_image, mix.boxes)
        key, ref = make_view_pair(image, item.boxes, item.ids, mixin=mixin, rng=rng, config=self.view_config)
        if len(key.ids) == 0 or len(ref.ids) == 0 or not np.isin(key.ids, ref.ids).any():
            return {**base, "skip": "no shared instance"}
        return {**base, "key": key, "ref": ref}


def collate(items: list[dict]) -> list[dict]:
    """Keep a batch as a list (views differ in box counts)."""
    return items
