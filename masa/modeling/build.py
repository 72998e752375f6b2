"""Builders: appearance models (embedders) from names and checkpoints; device selection."""

from __future__ import annotations

from pathlib import Path

import torch

from masa.modeling.embedder import Embedder

__all__ = ["build_embedder", "resolve_device"]


def resolve_device(spec: str = "auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; otherwise ``torch.device(spec)`` (validated)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError as exc:
        raise ValueError(f"--device: expected auto, cpu, cuda or cuda:N, got {spec!r}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {spec}: CUDA is not available on this machine (use --device cpu)")
    return device


def build_embedder(
    model: Path | None = None,
    appearance: str = "efficientnet_lite0",
    device: torch.device | str = "cpu",
    fp16: bool = False,
) -> Embedder:
    """The appearance model for ``masa track``: a MASA adapter checkpoint, or raw backbone features."""
    from masa.modeling.baseline import build_baseline_embedder

    if model is not None:
        raise ValueError("--model: adapter checkpoints are not supported yet")
    return build_baseline_embedder(appearance, device=device)
