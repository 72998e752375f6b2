"""Per-frame ``update()`` wall time of the MASA trackers on synthetic videos.

Each video has ``N`` objects that drift a few pixels per frame, with a fixed random appearance
(D=256) plus per-frame noise, random scores in [0.2, 1] and a few objects missing per frame.
Embeddings are precomputed, so only the tracker is timed. Single thread, CPU.

    .venv/bin/python benchmarks/tracker_speed.py            # 200 timed frames per case
    .venv/bin/python benchmarks/tracker_speed.py --quick    # 30 timed frames per case
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from masa.structures import Detections
from masa.tracking import BddTrackerConfig, MasaBDDTracker, MasaTaoTracker, TaoTrackerConfig

EMBED_DIM = 256
IMAGE_SIZE = (1280.0, 720.0)


def synthetic_video(num_objects: int, num_frames: int, seed: int = 0) -> list[Detections]:
    """``num_frames`` frames of about ``num_objects`` detections (xyxy pixels, D=256 embeddings)."""
    g = torch.Generator().manual_seed(seed)
    appearance = torch.randn(num_objects, EMBED_DIM, generator=g)  # [N, D]
    size = torch.rand(num_objects, 2, generator=g) * 60 + 20  # [N, 2] w, h
    centre = torch.rand(num_objects, 2, generator=g) * torch.tensor(IMAGE_SIZE)  # [N, 2]
    velocity = torch.randn(num_objects, 2, generator=g) * 2  # px / frame
    frames = []
    for _ in range(num_frames):
        centre = centre + velocity + torch.randn(num_objects, 2, generator=g)
        visible = torch.rand(num_objects, generator=g) > 0.05  # ~5 % missed per frame
        c, s = centre[visible], size[visible]
        n = int(visible.sum())
        frames.append(
            Detections(
                boxes=torch.cat([c - s / 2, c + s / 2], dim=1),
                scores=torch.rand(n, generator=g) * 0.8 + 0.2,
                embeddings=appearance[visible] + 0.3 * torch.randn(n, EMBED_DIM, generator=g),
            )
        )
    return frames


def time_tracker(
    make: Callable[[], MasaTaoTracker | MasaBDDTracker], frames: list[Detections], warmup: int
) -> list[float]:
    """Seconds per ``update()`` call for the frames after ``warmup``."""
    tracker = make()
    times = []
    for index, detections in enumerate(frames):
        start = time.perf_counter()
        tracker.update(detections, index)
        elapsed = time.perf_counter() - start
        if index >= warmup:
            times.append(elapsed)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 timed frames per case instead of 200")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200], help="detections per frame")
    args = parser.parse_args()

    torch.set_num_threads(1)
    warmup, timed = (5, 30) if args.quick else (20, 200)
    trackers: dict[str, Callable[[], MasaTaoTracker | MasaBDDTracker]] = {
        "MasaTaoTracker (default)": lambda: MasaTaoTracker(TaoTrackerConfig()),
        "MasaTaoTracker (plug_and_play, gate on)": lambda: MasaTaoTracker(TaoTrackerConfig.plug_and_play()),
        "MasaBDDTracker (default)": lambda: MasaBDDTracker(BddTrackerConfig()),
    }
    print(f"platform: {platform.platform()} | python {platform.python_version()} | "
          f"cpu count {os.cpu_count()} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    print(f"processor: {platform.processor() or platform.machine()}")
    print(f"frames: {warmup} warm-up + {timed} timed per case, D={EMBED_DIM}\n")
    print("| tracker | N dets/frame | median ms | p90 ms |")
    print("|---|---:|---:|---:|")
    for n in args.sizes:
        frames = synthetic_video(n, warmup + timed, seed=n)
        for name, make in trackers.items():
            times = time_tracker(make, frames, warmup)
            print(f"| {name} | {n} | {1e3 * statistics.median(times):.2f} | {1e3 * percentile(times, 0.9):.2f} |",
                  flush=True)


if __name__ == "__main__":
    main()
