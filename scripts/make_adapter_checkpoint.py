"""Write a MASA adapter checkpoint (safetensors + config) for `masa track --model`.

    python scripts/make_adapter_checkpoint.py --config lite --out runs/adapter-lite.safetensors

``--config`` builds a randomly initialised adapter of a named architecture (``ADAPTER_CONFIGS``):
its embeddings are meaningless until trained, but it exercises the whole path (a trained default
adapter comes with the training issue). The authors' released ``.pth`` files need no conversion:
``masa track --model masa_r50.pth`` reads them directly (``weights_only=True``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from masa.modeling.build import ADAPTER_CONFIGS, build_masa_model, save_masa_checkpoint  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(ADAPTER_CONFIGS), default="lite", help="named architecture (random weights)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    import torch

    torch.manual_seed(args.seed)
    config = ADAPTER_CONFIGS[args.config]
    save_masa_checkpoint(build_masa_model(config), config, args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
