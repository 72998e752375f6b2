"""Per-frame ``update()`` wall time of the MASA, fused and ``trackers``-package trackers on synthetic videos.

Each video has ``N`` objects that drift a few pixels per frame, with a fixed random appearance
(D=256) plus per-frame noise, random scores in [0.2, 1] and a few objects missing per frame.
Embeddings are precomputed, so only the tracker is timed. Single thread, CPU.

    .venv/bin/python benchmarks/tracker_speed.py            # 200 timed frames per case
    .venv/bin/python benchmarks/tracker_speed.py --quick    # 30 timed frames per case

Timed on the same videos: the MASA trackers (``CASES``); the fused tracker
(``FusedTracker(FusedTrackerConfig(), fps=30.0)``, camera-motion compensation off; skipped with a
note when ``masa.tracking`` has none); and SORT, ByteTrack, OC-SORT, BoT-SORT
(``enable_cmc=False``: there are no images) and C-BIoU from the ``trackers`` package (package
defaults, ``frame_rate=30``), whose ``supervision.Detections`` are built for every frame before
timing, so that only ``tracker.update(...)`` is timed. Two derived lines follow the table: the
fused / ByteTrack ratio at 10 boxes (target <= 2x) and the fused tracker's ms at 200 boxes
(target < 10 ms). The output is printed only (docs/benchmarks.md is edited by hand).

Before/after a change of ``masa/tracking``, side by side in one process (both versions use this
checkout's ``masa.structures`` and ``masa.ops``; only the tracker code differs)::

    git worktree add /tmp/masa_before HEAD          # the committed code, read-only
    .venv/bin/python benchmarks/tracker_speed.py --compare-with /tmp/masa_before --rounds 5

Each round runs every case with one tracker of each version side by side: every frame goes to
both, back to back, which one first alternating between frames, so that load from other jobs hits
both alike. Medians are over the timed frames of all rounds; the last column is the median of the
per-frame ratios. Before timing, the two versions' outputs (ids, ``det_index``) are checked to be
identical on every benchmark video. The fused tracker is part of the comparison only when both
versions of ``masa.tracking`` have it; the ``trackers`` peers are not (they do not change).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import torch

import masa
import masa.tracking
from masa.structures import Detections, Tracks

EMBED_DIM = 256
IMAGE_SIZE = (1280.0, 720.0)


class Tracker(Protocol):
    """What is timed: either tracker, of either version."""

    def update(self, detections: Detections, frame_index: int) -> Tracks: ...


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


# Timed cases: name -> tracker factory, given the ``masa.tracking`` module to build it from.
CASES: dict[str, Callable[[ModuleType], Tracker]] = {
    "MasaTaoTracker (default)": lambda m: m.MasaTaoTracker(m.TaoTrackerConfig()),
    "MasaTaoTracker (plug_and_play, gate on)": lambda m: m.MasaTaoTracker(m.TaoTrackerConfig.plug_and_play()),
    "MasaBDDTracker (default)": lambda m: m.MasaBDDTracker(m.BddTrackerConfig()),
}
FUSED = "FusedTracker (default, fps 30)"
#: the box trackers of the ``trackers`` package: (row label, class name, keyword arguments besides
#: ``frame_rate=30``). Package defaults otherwise; BoT-SORT without CMC (no images here).
PEERS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("SORT", "SORTTracker", {}),
    ("ByteTrack", "ByteTrackTracker", {}),
    ("OC-SORT", "OCSORTTracker", {}),
    ("BoT-SORT (enable_cmc=False)", "BoTSORTTracker", {"enable_cmc": False}),
    ("C-BIoU", "CBIoUTracker", {}),
)
BYTETRACK = "ByteTrack"
RATIO_AT, RATIO_TARGET = 10, 2.0  # fused / ByteTrack at 10 boxes: <= 2x
MS_AT, MS_TARGET = 200, 10.0  # fused at 200 boxes: < 10 ms


def fused_case(m: ModuleType) -> Tracker:
    """The fused tracker of ``m``: default configuration (camera-motion compensation off), 30 fps."""
    return m.FusedTracker(m.FusedTrackerConfig(), fps=30.0)


def has_fused(*modules: ModuleType) -> bool:
    """Whether every given version of ``masa.tracking`` has the fused tracker."""
    return all(hasattr(m, "FusedTracker") and hasattr(m, "FusedTrackerConfig") for m in modules)


def cases_for(*modules: ModuleType) -> dict[str, Callable[[ModuleType], Tracker]]:
    """``CASES``, plus the fused tracker when every version has it."""
    if has_fused(*modules):
        return {**CASES, FUSED: fused_case}
    print("note: FusedTracker is not in every timed version of masa.tracking; its rows are skipped", file=sys.stderr)
    return dict(CASES)


def peer_factories() -> dict[str, Callable[[], Any]]:
    """Row label -> constructor of each ``trackers`` peer (empty, with a note, without the package)."""
    try:
        import trackers as package
    except ImportError:
        print("note: the 'trackers' package is not installed; its trackers are skipped", file=sys.stderr)
        return {}
    return {
        label: (lambda cls=getattr(package, class_name), kwargs=kwargs: cls(frame_rate=30.0, **kwargs))
        for label, class_name, kwargs in PEERS
    }


def to_supervision(frames: list[Detections]) -> list[Any]:
    """The same frames as ``supervision.Detections`` (xyxy, confidence, class 0), built before timing."""
    import supervision as sv

    return [
        sv.Detections(
            xyxy=d.boxes.numpy().astype(np.float32).reshape(-1, 4),
            confidence=d.scores.numpy().astype(np.float32),
            class_id=np.zeros(len(d), dtype=int),
        )
        for d in frames
    ]


def load_tracking_from(root: Path) -> ModuleType:
    """Import ``root/masa/tracking`` as a second, independent copy of ``masa.tracking``.

    The copy's own ``from masa.tracking.x import ...`` lines resolve inside ``root`` while it
    loads; ``masa.structures`` and ``masa.ops`` stay this checkout's. Afterwards ``sys.modules``
    and ``masa.tracking`` point at this checkout's package again.
    """
    package_dir = root / "masa" / "tracking"
    if not (package_dir / "__init__.py").is_file():
        raise SystemExit(f"--compare-with: no masa/tracking/__init__.py under {root}")

    def ours(name: str) -> bool:
        return name == "masa.tracking" or name.startswith("masa.tracking.")

    saved = {name: module for name, module in sys.modules.items() if ours(name)}
    for name in saved:
        del sys.modules[name]
    try:
        spec = importlib.util.spec_from_file_location(
            "masa.tracking", package_dir / "__init__.py", submodule_search_locations=[str(package_dir)]
        )
        assert spec is not None and spec.loader is not None
        other = importlib.util.module_from_spec(spec)
        sys.modules["masa.tracking"] = other
        spec.loader.exec_module(other)
    finally:
        for name in [name for name in sys.modules if ours(name)]:
            del sys.modules[name]
        sys.modules.update(saved)
        masa.tracking = saved["masa.tracking"]
    assert other is not masa.tracking and Path(other.__file__).resolve().is_relative_to(root.resolve())
    return other


def time_tracker(make: Callable[[], Tracker], frames: list[Detections], warmup: int) -> list[float]:
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


def time_peer(make: Callable[[], Any], frames: list[Any], warmup: int) -> list[float]:
    """Seconds per ``tracker.update(detections)`` call (prebuilt ``supervision.Detections``) after ``warmup``."""
    tracker = make()
    times = []
    for index, detections in enumerate(frames):
        start = time.perf_counter()
        tracker.update(detections)
        elapsed = time.perf_counter() - start
        if index >= warmup:
            times.append(elapsed)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def same_outputs(a: Tracker, b: Tracker, frames: list[Detections]) -> bool:
    """Whether two trackers give the same ids and ``det_index`` on every frame."""
    for index, detections in enumerate(frames):
        x, y = a.update(detections, index), b.update(detections, index)
        if not (torch.equal(x.ids, y.ids) and torch.equal(x.det_index, y.det_index)):
            return False
    return True


def print_machine(warmup: int, timed: int) -> None:
    print(f"platform: {platform.platform()} | python {platform.python_version()} | "
          f"cpu count {os.cpu_count()} | torch {torch.__version__} | threads {torch.get_num_threads()}")
    print(f"processor: {platform.processor() or platform.machine()}")
    print(f"frames: {warmup} warm-up + {timed} timed per case, D={EMBED_DIM}\n")


def run_single(sizes: list[int], warmup: int, timed: int) -> None:
    cases, peers = cases_for(masa.tracking), peer_factories()
    medians: dict[tuple[str, int], float] = {}  # (tracker, N) -> median ms

    def row(name: str, n: int, times: list[float]) -> None:
        medians[(name, n)] = 1e3 * statistics.median(times)
        print(f"| {name} | {n} | {medians[(name, n)]:.2f} | {1e3 * percentile(times, 0.9):.2f} |", flush=True)

    print("| tracker | N dets/frame | median ms | p90 ms |")
    print("|---|---:|---:|---:|")
    for n in sizes:
        frames = synthetic_video(n, warmup + timed, seed=n)
        for name, make in cases.items():
            row(name, n, time_tracker(lambda make=make: make(masa.tracking), frames, warmup))
        sv_frames = to_supervision(frames) if peers else []
        for name, make in peers.items():
            row(name, n, time_peer(make, sv_frames, warmup))
    print()
    if (FUSED, RATIO_AT) in medians and (BYTETRACK, RATIO_AT) in medians:
        ratio = medians[(FUSED, RATIO_AT)] / medians[(BYTETRACK, RATIO_AT)]
        verdict = "met" if ratio <= RATIO_TARGET else "missed"
        print(f"fused / ByteTrack at {RATIO_AT} boxes: {ratio:.2f}x (target <= {RATIO_TARGET:g}x: {verdict})")
    else:
        print(f"fused / ByteTrack at {RATIO_AT} boxes: not measured (needs both trackers and --sizes {RATIO_AT})")
    if (FUSED, MS_AT) in medians:
        ms = medians[(FUSED, MS_AT)]
        print(f"fused at {MS_AT} boxes: {ms:.2f} ms (target < {MS_TARGET:g} ms: {'met' if ms < MS_TARGET else 'missed'})")
    else:
        print(f"fused at {MS_AT} boxes: not measured (needs the fused tracker and --sizes {MS_AT})")


def run_compare(other_root: Path, sizes: list[int], warmup: int, timed: int, rounds: int) -> None:
    before = load_tracking_from(other_root)
    versions = {"before": before, "after": masa.tracking}
    cases = cases_for(before, masa.tracking)
    print(f"before: {Path(before.__file__).parent} | after: {Path(masa.tracking.__file__).parent}")
    print(f"rounds: {rounds}; every frame timed with both versions back to back, order alternating\n")
    videos = {n: synthetic_video(n, warmup + timed, seed=n) for n in sizes}
    for n, frames in videos.items():
        for name, make in cases.items():
            if not same_outputs(make(before), make(masa.tracking), frames):
                raise SystemExit(f"outputs differ: {name}, N={n}")
    print("outputs (ids, det_index) identical on every benchmark video\n")
    times: dict[tuple[str, int, str], list[float]] = {}
    for r in range(rounds):
        for n, frames in videos.items():
            for name, make in cases.items():
                trackers = {version: make(module) for version, module in versions.items()}
                for index, detections in enumerate(frames):
                    # Both versions see the same frame back to back, first one then the other.
                    order = ("before", "after") if (r + index) % 2 == 0 else ("after", "before")
                    for version in order:
                        start = time.perf_counter()
                        trackers[version].update(detections, index)
                        elapsed = time.perf_counter() - start
                        if index >= warmup:
                            times.setdefault((name, n, version), []).append(elapsed)
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    print("| tracker | N dets/frame | before median ms | after median ms | after / before | median per-frame ratio |")
    print("|---|---:|---:|---:|---:|---:|")
    for n in sizes:
        for name in cases:
            old, new = times[(name, n, "before")], times[(name, n, "after")]  # same frames, same order
            paired = statistics.median(b / a for a, b in zip(old, new))
            old_ms, new_ms = 1e3 * statistics.median(old), 1e3 * statistics.median(new)
            print(f"| {name} | {n} | {old_ms:.2f} | {new_ms:.2f} | {new_ms / old_ms:.3f} | {paired:.3f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 timed frames per case instead of 200")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200], help="detections per frame")
    parser.add_argument("--compare-with", type=Path, metavar="PATH",
                        help="a checkout (e.g. a git worktree) whose masa/tracking is timed against this one")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds with --compare-with")
    args = parser.parse_args()

    torch.set_num_threads(1)
    warmup, timed = (5, 30) if args.quick else (20, 200)
    print_machine(warmup, timed)
    if args.compare_with is None:
        run_single(args.sizes, warmup, timed)
    else:
        run_compare(args.compare_with, args.sizes, warmup, timed, args.rounds)


if __name__ == "__main__":
    main()
