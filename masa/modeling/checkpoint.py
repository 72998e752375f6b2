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
import warnings
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


_CONVERT_HINT = (
    "to convert a trusted file, run in a trusted environment obj = torch.load(path, weights_only=False), then "
    "torch.save(obj['state_dict'], 'weights.pth') or safetensors.torch.save_file(obj['state_dict'], 'weights.safetensors')"
)
# Globals of an ordinary torch.save file (skipped when naming what a plain pickle refers to).
_TORCH_GLOBAL_PREFIXES = ("torch.", "collections.OrderedDict", "builtins.")


def _file_kind(path: Path) -> str:
    """``"empty"``, ``"zip"`` (the format of ``torch.save``), ``"pickle"`` (protocol 2-5, the legacy
    format and plain ``pickle.dump``), ``"safetensors"`` or ``"unknown"``, from the first bytes."""
    with open(path, "rb") as handle:
        head = handle.read(10)
    if not head:
        return "empty"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) == 10 and head[8:10] == b'{"':
        return "safetensors"
    return "unknown"


def _pickle_global(path: Path, max_pickles: int = 8) -> str | None:
    """The first non-torch global a plain pickle file references, found without unpickling
    (:mod:`pickletools` only reads the opcodes); ``None`` when there is none or the file is unreadable."""
    import pickletools

    strings: list[str] = []  # string constants pushed so far (STACK_GLOBAL takes the last two)
    memo: dict[int, str] = {}
    with open(path, "rb") as handle:
        for _ in range(max_pickles):  # the legacy torch.save format is several pickles in a row
            try:
                for opcode, arg, _pos in pickletools.genops(handle):
                    name = opcode.name
                    if name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"):
                        strings.append(arg)
                    elif name == "MEMOIZE" and strings:
                        memo[len(memo)] = strings[-1]
                    elif name in ("BINPUT", "LONG_BINPUT", "PUT") and strings:
                        memo[int(arg)] = strings[-1]
                    elif name in ("BINGET", "LONG_BINGET", "GET") and int(arg) in memo:
                        strings.append(memo[int(arg)])
                    elif name in ("GLOBAL", "INST") or (name == "STACK_GLOBAL" and len(strings) >= 2):
                        found = str(arg).replace(" ", ".") if name != "STACK_GLOBAL" else f"{strings[-2]}.{strings[-1]}"
                        if not found.startswith(_TORCH_GLOBAL_PREFIXES):
                            return found
            except Exception:  # not a pickle (any more): stop looking
                return None
    return None


def _unpickler_detail(message: str) -> tuple[str, str]:
    """What torch's weights-only error message says, without its advice: ``("global", "__main__.Foo")``
    for a refused global, ``("opcode", "FRAME (149)")`` for an opcode it does not support, else
    ``("other", <first line of the reason>)``."""
    import pickletools
    import re

    refused = re.search(r"\bGLOBAL ([\w.]+)", message)  # "GLOBAL a.B was not an allowed global", "GLOBAL posix.f whose module"
    if refused:
        return "global", refused.group(1)
    opcode = re.search(r"Unsupported operand (\d+)", message)
    if opcode:
        code = int(opcode.group(1))
        op = pickletools.code2op.get(chr(code)) if code < 256 else None
        return "opcode", f"{op.name} ({code})" if op is not None else str(code)
    reason = message.split("WeightsUnpickler error:", 1)[-1]
    lines = [line.strip() for line in reason.splitlines() if line.strip() and "torch.load" not in line]
    return "other", (lines[0] if lines else "unreadable pickle")[:200]


def _first_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split())
    text = text.split(". ", 1)[0].rstrip(".")
    return (text or type(error).__name__)[:200]


def _zip_problem(path: Path) -> str:
    """Why a zip file is not a readable ``torch.save`` archive."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return "truncated or corrupted PyTorch checkpoint (its zip archive is incomplete); copy or download the file again"
    if not any(n.endswith("/data.pkl") for n in names):
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        return f"not a PyTorch checkpoint (a zip archive without <name>/data.pkl: {shown or 'empty'})"
    return "corrupted PyTorch checkpoint"


def _torch_load_error(path: Path, error: BaseException) -> CheckpointError:
    """One line for a file ``torch.load(weights_only=True)`` could not read."""
    kind = _file_kind(path)
    if isinstance(error, pickle.UnpicklingError):
        what, detail = _unpickler_detail(str(error))
        if what == "opcode" and kind == "pickle":
            name = _pickle_global(path)
            if name is not None:
                what, detail = "global", name
        if what == "global":
            return CheckpointError(
                f"{path}: not a tensor-only checkpoint: refused for safety by torch.load(weights_only=True) because "
                f"its pickle references {detail} (unpickling it could run arbitrary code); {_CONVERT_HINT}"
            )
        if what == "opcode" and kind == "pickle":
            return CheckpointError(
                f"{path}: not a tensor-only checkpoint: a pickle torch.load(weights_only=True) cannot read "
                f"(pickle opcode {detail}; torch.save writes a zip archive); {_CONVERT_HINT}"
            )
        if what == "other" and kind in ("zip", "pickle"):
            return CheckpointError(f"{path}: not a readable PyTorch checkpoint (the safe unpickler stopped: {detail})")
    if isinstance(error, OSError) and not isinstance(error, zipfile.BadZipFile) and error.strerror:
        return CheckpointError(f"{path}: cannot read the file ({error.strerror.lower()})")
    if kind == "zip":
        return CheckpointError(f"{path}: {_zip_problem(path)}")
    if kind == "pickle":
        return CheckpointError(f"{path}: truncated or corrupted PyTorch checkpoint ({_first_sentence(error)})")
    if kind == "safetensors":
        return CheckpointError(f"{path}: a safetensors file with the suffix {path.suffix!r}; rename it to .safetensors")
    return CheckpointError(
        f"{path}: not a PyTorch checkpoint (not a zip or pickle file); expected a file written by torch.save or a .safetensors file"
    )


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a checkpoint file into a flat ``dict[str, Tensor]`` on the CPU.

    ``.safetensors`` files are read with ``safetensors.torch.load_file``; anything else
    (``.pth/.pt/.bin``...) with ``torch.load(map_location="cpu", weights_only=True)``, which only
    rebuilds tensors and plain containers. A top-level ``'state_dict'`` (mmengine, Lightning) or
    ``'model'`` (nanoGPT, detectron2) entry is unwrapped; non-tensor entries are dropped.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        CheckpointError: one line ``<file>: <what is wrong>``: an empty file, not a checkpoint (not
            a zip or pickle file), a truncated one, no tensors, or a pickle that ``weights_only``
            refused (it references Python objects beyond tensors: the message names the first and
            how to convert a trusted file).
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise CheckpointError(f"{path}: expected a checkpoint file, found a directory" if path.is_dir() else f"{path}: not a regular file")
    try:
        if path.stat().st_size == 0:
            raise CheckpointError(f"{path}: empty file (0 bytes); expected a PyTorch checkpoint or a .safetensors file")
    except OSError as error:
        raise CheckpointError(f"{path}: cannot read the file ({(error.strerror or type(error).__name__).lower()})") from error
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except (SafetensorError, OSError, ValueError) as error:
            raise CheckpointError(f"{path}: not a valid safetensors file ({_first_sentence(error)})") from error
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, EOFError, KeyError, RuntimeError, zipfile.BadZipFile, ValueError, OSError, AttributeError) as error:
        raise _torch_load_error(path, error) from error
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
