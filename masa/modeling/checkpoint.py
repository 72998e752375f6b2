"""Every checkpoint read and write: safetensors, ``torch.load(weights_only=True)``, never arbitrary pickles.

* :func:`load_state_dict_file` reads any file (``.safetensors``, or a ``.pth/.pt/...`` pickle that
  ``weights_only`` accepts) into a flat ``dict[str, Tensor]``, unwrapping a top-level
  ``state_dict``/``model`` entry (mmengine, Lightning, nanoGPT);
* :func:`strip_prefix` selects a sub-module's entries; :func:`load_strict` loads with
  ``strict=True`` semantics and reports missing/unexpected keys and shape mismatches in one
  readable ``ValueError``;
* :func:`save_masa_checkpoint` / :func:`read_masa_checkpoint`: our own format, a safetensors file
  with the model's tensors (``adapter.*``, optionally ``backbone.*``) and, in its metadata, the
  :class:`~masa.modeling.config.MasaConfig` that built it (``format = "masa/2"``, ``masa_config``
  JSON). Files of the first format (``masa-adapter/1``, a flat adapter config) still load.

The authors' released ``.pth`` files are read here too; their key names are mapped in
:mod:`masa.modeling.official`, original SAM checkpoints in
:func:`masa.modeling.backbones.sam_vit.load_sam_checkpoint`.
"""

from __future__ import annotations

import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from masa.modeling.config import MasaConfig

if TYPE_CHECKING:
    from masa.modeling.adapter import MasaModel

__all__ = [
    "CHECKPOINT_FORMAT",
    "CheckpointError",
    "load_state_dict_file",
    "strip_prefix",
    "load_strict",
    "save_masa_checkpoint",
    "read_masa_checkpoint",
]

CHECKPOINT_FORMAT = "masa/2"
_LEGACY_FORMAT = "masa-adapter/1"

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


def load_strict(module: nn.Module, state: Mapping[str, Tensor], what: str, *, key_names: Callable[[str], str] | None = None) -> None:
    """``module.load_state_dict(state, strict=True)`` with a readable error.

    ``key_names`` maps a module key to the name the user's file uses (e.g. the authors' key of an
    official checkpoint), shown next to missing and unexpected keys.

    Raises:
        ValueError: listing (first 10 of each, plus counts) the missing keys, the unexpected keys
            and the shape mismatches ``name: checkpoint shape vs model shape``.
    """
    expected = module.state_dict()
    named = (lambda k: f"{k} (file: {key_names(k)})") if key_names is not None else (lambda k: k)
    missing = [named(k) for k in expected if k not in state]
    unexpected = [named(k) for k in state if k not in expected]
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


# ---------------------------------------------------------------------------------------------
# Our format


def save_masa_checkpoint(model: MasaModel, config: MasaConfig, path: str | Path, *, include_backbone: bool = False) -> Path:
    """Write ``model`` as safetensors: ``adapter.*`` (+ ``backbone.*``), ``config`` in the metadata.

    Written to a temporary file in the same folder and renamed, so an interrupted write never
    leaves a truncated checkpoint behind. ``include_backbone`` is needed when the backbone's
    weights do not come with the package (SAM, ResNet-50, an official checkpoint's backbone).
    """
    from safetensors.torch import save_file

    state = {f"adapter.{k}": v.detach().cpu().contiguous() for k, v in model.adapter.state_dict().items()}
    if include_backbone:
        state.update({f"backbone.{k}": v.detach().cpu().contiguous() for k, v in model.backbone.state_dict().items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {"format": CHECKPOINT_FORMAT, "masa_config": json.dumps(config.to_dict())}
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def read_masa_checkpoint(path: str | Path) -> tuple[MasaConfig, dict[str, Tensor]]:
    """The config and the tensors of a file written by :func:`save_masa_checkpoint`.

    Raises:
        FileNotFoundError: no such file.
        CheckpointError: not a safetensors file, or not one of ours (no ``masa_config`` metadata),
            or a config this version cannot read (unknown keys are named).
    """
    from safetensors import safe_open

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"MASA checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            state = {k: handle.get_tensor(k) for k in handle.keys()}  # noqa: SIM118 (safe_open has no items())
    except Exception as exc:
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc})") from exc
    fmt = metadata.get("format")
    if fmt not in (CHECKPOINT_FORMAT, _LEGACY_FORMAT) or "masa_config" not in metadata:
        raise CheckpointError(f"{path}: not a masa checkpoint (metadata format {fmt!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        data = json.loads(metadata["masa_config"])
        config = _config_from_legacy(data) if fmt == _LEGACY_FORMAT else MasaConfig.from_dict(data)
    except ValueError as exc:
        raise CheckpointError(f"{path}: cannot read its model config ({exc}); was it written by a newer masa?") from exc
    return config, state


def _config_from_legacy(data: dict[str, Any]) -> MasaConfig:
    """A :class:`MasaConfig` for a ``masa-adapter/1`` file (the flat config of masa 0.1)."""
    from masa.modeling.config import (
        AdapterConfig,
        BackboneConfig,
        DetectionHeadConfig,
        FusionConfig,
        PyramidConfig,
        RoIConfig,
        TrackHeadConfig,
    )
    from masa.modeling.preprocess import PreprocessConfig

    known = {
        "backbone", "backbone_strides", "pyramid", "pyramid_norm", "channels", "num_levels", "fusion", "fusion_blocks",
        "roi_strides", "embed_dim", "fc_channels", "track_convs", "detection_heads", "preprocess",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"unknown keys {unknown} in a masa-adapter/1 config")
    pre = dict(data.get("preprocess") or {})
    if pre.get("max_size") is not None:
        pre["max_size"] = tuple(pre["max_size"])
    name = data.get("backbone", "efficientnet_lite0")
    strides = tuple(data.get("backbone_strides", (8, 16, 32))) if name.startswith("efficientnet_lite") else None
    fc = int(data.get("fc_channels", 1024))
    return MasaConfig(
        backbone=BackboneConfig(name, strides),
        preprocess=PreprocessConfig(**pre),
        adapter=AdapterConfig(
            pyramid=PyramidConfig(
                kind=data.get("pyramid", "fpn"),
                channels=int(data.get("channels", 256)),
                num_levels=int(data.get("num_levels", 5)),
                norm=data.get("pyramid_norm", "none"),
            ),
            fusion=FusionConfig(kind=data.get("fusion", "deform_fusion"), num_blocks=int(data.get("fusion_blocks", 3))),
            roi=RoIConfig(strides=tuple(data.get("roi_strides", (8, 16, 32)))),
            track_head=TrackHeadConfig(
                num_convs=int(data.get("track_convs", 4)), fc_channels=fc, embed_dim=int(data.get("embed_dim", 256))
            ),
            detection=DetectionHeadConfig(fc_channels=fc) if data.get("detection_heads", True) else None,
        ),
    )
