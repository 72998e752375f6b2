"""COCO-style proposal files: resumable, shardable generation and the final JSON.

A run writes one JSON line per finished image to ``<out>.parts/shard-<i>-of-<n>.jsonl`` (flushed
per image, so a crash keeps everything done), then assembles ``<out>`` from all parts present::

    {"images": [{"id", "file_name", "height", "width"}],
     "annotations": [{"id", "image_id", "category_id": 1, "bbox": [x, y, w, h], "area",
                      "segmentation": RLE (counts as str), "score"}],
     "categories": [{"id": 1, "name": "object"}]}

which ``pycocotools.coco.COCO(out)`` loads. Image ids are the 1-based position in the sorted list
of all images of the run (the same in every shard); a rerun skips images already in the parts.
``<out>.parts/settings.json`` records the source's settings: a rerun with other settings is refused.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masa.data.proposals import Proposal, ProposalSource

__all__ = [
    "IMAGE_SUFFIXES",
    "find_images",
    "select_shard",
    "parse_shard",
    "encode_mask",
    "proposal_record",
    "read_parts",
    "assemble",
    "SegmentReport",
    "run_proposals",
    "read_image_rgb",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def find_images(inputs: Sequence[str | Path]) -> list[tuple[Path, str]]:
    """``(path, file_name)`` of every image given (files, or folders searched recursively), sorted
    by ``file_name``, the path relative to the folder given (or the file's name)."""
    found: dict[str, Path] = {}
    for item in inputs:
        item = Path(item)
        if item.is_dir():
            for path in sorted(item.rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    found.setdefault(path.relative_to(item).as_posix(), path)
        elif item.is_file():
            found.setdefault(item.name, item)
        else:
            raise FileNotFoundError(f"{item}: no such file or folder; expected images (jpg/png) or folders of them")
    if not found:
        raise ValueError(f"{', '.join(map(str, inputs))}: no images found; expected .jpg/.png files or folders of them")
    return [(found[name], name) for name in sorted(found)]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        index, count = (int(v) for v in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard: expected i/n (e.g. 0/4), got {text!r}") from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard: expected i/n with 0 <= i < n, got {text!r}")
    return index, count


def select_shard(items: Sequence, index: int, count: int) -> list:
    """Every ``count``-th item starting at ``index`` (0-based)."""
    return list(items[index::count])


def encode_mask(mask: np.ndarray) -> dict:
    """COCO RLE of a ``bool[H, W]`` mask, ``counts`` as str (JSON-ready)."""
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def proposal_record(proposal: Proposal) -> dict:
    """One instance as stored in the parts (no ids yet): ``bbox`` xywh, ``area``, RLE, ``score``."""
    mask, box, score = proposal
    x1, y1, x2, y2 = (float(v) for v in box)
    record = {"bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)], "score": round(float(score), 4)}
    if mask is not None:
        record["area"] = int(mask.sum())
        record["segmentation"] = encode_mask(mask)
    else:
        record["area"] = round((x2 - x1) * (y2 - y1), 2)
    return record


def read_parts(parts_dir: Path) -> dict[str, dict]:
    """Finished images of all parts files, by ``file_name``; a truncated last line (a run killed
    while writing) is ignored, so that image is done again."""
    done: dict[str, dict] = {}
    if not parts_dir.is_dir():
        return done
    for part in sorted(parts_dir.glob("shard-*.jsonl")):
        for line in part.read_text().splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and "file_name" in record:
                done[record["file_name"]] = record
    return done


def assemble(out: Path, image_names: Sequence[str], done: dict[str, dict]) -> tuple[int, int]:
    """Write the COCO JSON ``out`` (atomically) from the finished images; returns
    ``(images, annotations)`` written. ``image_names`` (all images of the run) fixes the ids."""
    images, annotations = [], []
    for image_id, name in enumerate(image_names, start=1):
        record = done.get(name)
        if record is None:
            continue
        images.append({"id": image_id, "file_name": name, "height": record["height"], "width": record["width"]})
        for instance in record["instances"]:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": 1, "iscrowd": 0, **instance})
    data = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, out)
    return len(images), len(annotations)


def read_image_rgb(path: Path) -> np.ndarray | None:
    """``uint8[H, W, 3]`` RGB, or ``None`` when the file cannot be decoded."""
    import cv2

    data = np.fromfile(str(path), dtype=np.uint8) if path.is_file() else np.zeros(0, np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        return None
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@dataclass
class SegmentReport:
    total: int = 0  # images of the run (all shards)
    shard: int = 0  # images of this shard
    skipped: int = 0  # already in the parts (resumed)
    processed: int = 0  # segmented by this run
    unreadable: list[str] = field(default_factory=list)
    instances: int = 0  # proposals found by this run
    written_images: int = 0  # images in the assembled JSON (all shards finished so far)
    written_annotations: int = 0


def _check_settings(parts_dir: Path, settings: dict) -> None:
    path = parts_dir / "settings.json"
    settings = json.loads(json.dumps(settings))
    if path.is_file():
        previous = json.loads(path.read_text())
        if previous != settings:
            raise ValueError(
                f"{parts_dir}: made with other settings ({previous}); expected the same source and settings "
                f"({settings}) to resume, or delete that folder (or choose another --out) to start over"
            )
    else:
        parts_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(settings, indent=1))


def run_proposals(
    source: ProposalSource,
    images: Sequence[tuple[Path, str]],
    out: str | Path,
    *,
    shard: tuple[int, int] = (0, 1),
    progress: bool = False,
    progress_iter=None,
) -> SegmentReport:
    """Propose instances for this shard's images not done yet, append them to the parts, assemble ``out``.

    Unreadable images are warned about (``RuntimeWarning``), counted and not recorded (a rerun
    tries them again). ``progress_iter(iterable, total)`` wraps the loop (default: tqdm when
    ``progress``)."""
    out = Path(out)
    parts_dir = out.with_name(out.name + ".parts")
    _check_settings(parts_dir, source.settings())
    index, count = shard
    names = [name for _, name in images]
    mine = select_shard(list(images), index, count)
    done = read_parts(parts_dir)
    todo = [(path, name) for path, name in mine if name not in done]
    report = SegmentReport(total=len(images), shard=len(mine), skipped=len(mine) - len(todo))

    iterable: Iterable = todo
    if progress_iter is not None:
        iterable = progress_iter(todo, len(todo))
    elif progress:
        import sys

        from tqdm import tqdm

        iterable = tqdm(todo, total=len(todo), unit="image", desc="masa segment", file=sys.stderr)
    part = parts_dir / f"shard-{index}-of-{count}.jsonl"
    if part.is_file() and part.stat().st_size and not part.read_bytes().endswith(b"\n"):
        with part.open("a") as stream:  # a run killed mid-line: end that line, it is ignored
            stream.write("\n")
    with part.open("a") as stream:
        for path, name in iterable:
            image = read_image_rgb(path)
            if image is None:
                report.unreadable.append(name)
                warnings.warn(f"{path}: cannot decode the image; expected a JPEG/PNG file (skipped)", RuntimeWarning, stacklevel=2)
                continue
            instances = [proposal_record(p) for p in source.propose(image, path)]
            record = {"file_name": name, "height": int(image.shape[0]), "width": int(image.shape[1]), "instances": instances}
            stream.write(json.dumps(record) + "\n")
            stream.flush()
            report.processed += 1
            report.instances += len(instances)
    report.written_images, report.written_annotations = assemble(out, names, read_parts(parts_dir))
    return report
