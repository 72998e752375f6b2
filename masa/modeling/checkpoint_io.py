"""Safe state-dict loading: safetensors or ``torch.load(weights_only=True)``, never arbitrary pickles.

``load_state_dict_file(path)`` returns a flat ``dict[str, Tensor]``; ``strip_prefix`` selects a
sub-module's entries; ``load_strict(module, state, what)`` loads with ``strict=True`` semantics
but reports missing/unexpected keys and shape mismatches in one readable ``ValueError``.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["CheckpointError", "load_state_dict_file", "strip_prefix", "load_strict"]

_TORCH_SUFFIXES = (".pth", ".pt", ".bin", ".ckpt", ".pkl", ".tar")
_WRAPPER_KEYS = ("state_dict", "model")


class CheckpointError(ValueError):
    """A file that cannot be read as a state dict (garbage, refused pickle, wrong structure)."""


def _unwrap(obj: Any, path: Path) -> dict[str, Tensor]:
    """Return the flat ``{name: tensor}`` mapping, unwrapping a top-level 'state_dict'/'model'."""
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a state dict (a mapping of names to tensors), got {type(obj).__name__}")
    for key in _WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
            obj = inner
            break
    state = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if not state:
        raise CheckpointError(
            f"{path}: no tensors found at the top level or under {list(_WRAPPER_KEYS)} "
            f"(top-level keys: {list(obj.keys())[:10]})"
        )
    return state


def _unpickler_detail(message: str) -> tuple[bool, str]:
    """``(refused_a_global, useful line)`` from torch's weights-only error message.

    A pickle that names a Python callable/class (opcode GLOBAL: ``__main__.Foo``, ``posix.system``,
    numpy reconstructors, ...) is refused on purpose; anything else is a file it cannot parse.
    """
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    for line in lines:
        if "GLOBAL" in line:
            line = line.split("WeightsUnpickler error:")[-1].split(" was not an allowed global")[0]
            return True, line.strip()[:200]
    for index, line in enumerate(lines):
        if "WeightsUnpickler error:" in line:
            rest = line.split("WeightsUnpickler error:", 1)[1].strip()
            return False, (rest or (lines[index + 1] if index + 1 < len(lines) else ""))[:200]
    return False, (lines[0][:200] if lines else "unreadable pickle")


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat ``dict[str, Tensor]`` on the CPU.

    ``.safetensors`` files are read with ``safetensors.torch.load_file``; anything else
    (``.pth/.pt/.bin``...) with ``torch.load(map_location="cpu", weights_only=True)``, which only
    rebuilds tensors and plain containers. A top-level ``'state_dict'`` (mmengine, Lightning) or
    ``'model'`` (nanoGPT, detectron2) entry is unwrapped; non-tensor entries are dropped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: the file is not a checkpoint, holds no tensors, or is a pickle that
            ``weights_only`` refused (it contains arbitrary Python objects; refused for safety).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint path is not a file: {path}")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a valid safetensors file ({error})") from error
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        refused, detail = _unpickler_detail(str(error))
        if refused:
            raise CheckpointError(
                f"{path}: refused for safety: the pickle references Python objects other than tensors and "
                f"plain containers, and unpickling them could execute arbitrary code, so "
                f"torch.load(weights_only=True) refused it ({detail}). If you trust the file, re-save only "
                f"its tensors (e.g. torch.save(obj['state_dict'], ...)) or convert it to .safetensors."
            ) from error
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (the safe unpickler rejected it: {detail})") from error
    except (EOFError, KeyError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, AttributeError) as error:
        raise CheckpointError(f"{path}: not a PyTorch checkpoint ({type(error).__name__}: {error})") from error
    return _unwrap(obj, path)


def strip_prefix(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """The entries of ``state`` whose key starts with ``prefix``, with the prefix removed."""
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def _key_list(keys: list[str], limit: int = 10) -> str:
    shown = ", ".join(keys[:limit])
    return f"{len(keys)} [{shown}{', ...' if len(keys) > limit else ''}]"


def load_strict(module: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """``module.load_state_dict(state, strict=True)`` with a readable error.

    Raises:
        ValueError: listing (first 10 of each, plus counts) the missing keys, the unexpected keys
            and the shape mismatches ``name: checkpoint shape vs model shape``.
    """
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or mismatched:
        parts = [f"cannot load {what} into {type(module).__name__}:"]
        if missing:
            parts.append(f"missing keys {_key_list(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {_key_list(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches (checkpoint vs model) {_key_list(mismatched)}")
        raise ValueError("; ".join(parts))
    module.load_state_dict(dict(state), strict=True)
