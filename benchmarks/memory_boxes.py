"""Peak memory of embedding and tracking N boxes in one frame (one fresh process per case).

    python benchmarks/memory_boxes.py                          # 10 / 1,000 / 10,000 boxes
    python benchmarks/memory_boxes.py --compare-with /tmp/old  # and the same in another checkout

Each case runs in its own Python process: build the default appearance model (EfficientNet-Lite0
raw RoI features), then two 768x576 frames with the same N random boxes, embedded and (stage
``track``) passed to the authors' tracker (plug-and-play preset), so the second frame matches N
detections against N tracks. Reported: the process's peak resident memory (``ru_maxrss``) and the
increase over the peak right after building the model. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

# Uses only names that exist in masa 0.1 too (build_embedder, TaoTrackerConfig), so that
# --compare-with can run it in an older checkout.
_PROBE = """
import resource, json
import numpy as np, torch
torch.set_num_threads(2)
from masa import Detections
from masa.modeling.build import build_embedder
from masa.tracking import MasaTaoTracker, TaoTrackerConfig
n, stage = {n}, {stage!r}
rng = np.random.default_rng(0)
image = rng.integers(0, 255, (576, 768, 3), dtype=np.uint8)
xy = rng.uniform(0, 700, (n, 2)); wh = rng.uniform(10, 80, (n, 2))
boxes = torch.tensor(np.concatenate([xy, xy + wh], 1), dtype=torch.float32)
dets = Detections(boxes=boxes, scores=torch.rand(n, generator=torch.Generator().manual_seed(0)))
embedder = build_embedder(appearance="efficientnet_lite0")
built = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracker = MasaTaoTracker(TaoTrackerConfig.plug_and_play())
for index in range(2):
    frame_dets = dets.replace(embeddings=embedder.embed(image, dets.boxes))
    if stage == "track":
        tracker.update(frame_dets, index)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps([peak / 1024, built / 1024]))
"""


def probe(checkout: Path, n: int, stage: str) -> tuple[float, float]:
    import json

    env = {**os.environ, "PYTHONPATH": str(checkout)}
    code = _PROBE.format(n=n, stage=stage)
    out = subprocess.run([sys.executable, "-c", code], cwd=checkout, env=env, capture_output=True, text=True, check=True)
    peak, built = json.loads(out.stdout.strip().splitlines()[-1])
    return peak, built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--boxes", type=int, nargs="+", default=[10, 1000, 10000])
    parser.add_argument("--compare-with", type=Path, help="another masa checkout, measured the same way")
    args = parser.parse_args()
    here = Path(__file__).resolve().parents[1]
    checkouts = [("this checkout", here)] + ([("other", args.compare_with.resolve())] if args.compare_with else [])
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}\n")
    print("| checkout | boxes | stage | peak MB | over the built model MB |")
    print("|---|---:|---|---:|---:|")
    for label, checkout in checkouts:
        for n in args.boxes:
            for stage in ("embed", "track"):
                peak, built = probe(checkout, n, stage)
                print(f"| {label} | {n} | {stage} | {peak:.0f} | {peak - built:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
