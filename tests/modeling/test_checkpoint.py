"""One-line messages of load_state_dict_file for files that are not tensor-only checkpoints."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from masa.modeling.checkpoint import CheckpointError, load_state_dict_file

CONVERT = (
    "to convert a trusted file, run in a trusted environment obj = torch.load(path, weights_only=False), then "
    "torch.save(obj['state_dict'], 'weights.pth') or safetensors.torch.save_file(obj['state_dict'], 'weights.safetensors')"
)


class Custom:
    """A class of this test module: torch.load(weights_only=True) refuses it."""

    def __init__(self) -> None:
        self.value = 3


def _message(path: Path) -> str:
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    text = str(info.value)
    assert "\n" not in text and "weights_only=False` will likely succeed" not in text and "Errno" not in text
    return text


def test_random_bytes_and_text_are_not_checkpoints(tmp_path: Path) -> None:
    expected = "not a PyTorch checkpoint (not a zip or pickle file); expected a file written by torch.save or a .safetensors file"
    random = tmp_path / "random.pth"
    random.write_bytes(b"\x01" + os.urandom(4095))  # never the 0x80 of a pickle header
    assert _message(random) == f"{random}: {expected}"
    text = tmp_path / "notes.pth"
    text.write_text("hello world\n")
    assert _message(text) == f"{text}: {expected}"


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    assert _message(empty) == f"{empty}: empty file (0 bytes); expected a PyTorch checkpoint or a .safetensors file"


def test_zip_that_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "archive.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hi")
    assert _message(path) == f"{path}: not a PyTorch checkpoint (a zip archive without <name>/data.pkl: readme.txt)"


def test_pickle_with_a_custom_class_names_it_and_how_to_convert(tmp_path: Path) -> None:
    name = f"{__name__}.Custom"
    path = tmp_path / "custom.pth"
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": Custom()}, path)  # the zip format of torch.save
    expected = (
        f"{path}: not a tensor-only checkpoint: refused for safety by torch.load(weights_only=True) because its "
        f"pickle references {name} (unpickling it could run arbitrary code); {CONVERT}"
    )
    assert _message(path) == expected
    # the legacy format, and a plain pickle.dump (protocol 4, which torch reports only as an opcode)
    torch.save({"meta": Custom()}, path, _use_new_zipfile_serialization=False)
    assert _message(path) == expected
    with open(path, "wb") as handle:
        pickle.dump({"w": torch.ones(2), "meta": Custom()}, handle, protocol=4)
    assert _message(path) == expected


class CallsAFunction:
    """Unpickling this would call ``os.getpid()`` (torch blocks the module ``posix`` itself)."""

    def __reduce__(self):
        return (os.getpid, ())


def test_pickle_calling_a_function_names_it(tmp_path: Path) -> None:
    path = tmp_path / "call.pth"
    torch.save({"w": torch.ones(2), "call": CallsAFunction()}, path)
    text = _message(path)
    assert text.startswith(f"{path}: not a tensor-only checkpoint: refused for safety by torch.load(weights_only=True) because ")
    assert f"its pickle references {os.getpid.__module__}.getpid (" in text and text.endswith(CONVERT)


def test_plain_pickle_of_tensors_only_says_what_torch_cannot_read(tmp_path: Path) -> None:
    path = tmp_path / "plain.pkl"
    with open(path, "wb") as handle:
        pickle.dump({"w": [1.0, 2.0]}, handle, protocol=4)
    assert _message(path) == (
        f"{path}: not a tensor-only checkpoint: a pickle torch.load(weights_only=True) cannot read "
        f"(pickle opcode FRAME (149); torch.save writes a zip archive); {CONVERT}"
    )


def test_truncated_torch_save_file(tmp_path: Path) -> None:
    full = tmp_path / "full.pth"
    torch.save({"w": torch.ones(1000)}, full)
    assert set(load_state_dict_file(full)) == {"w"}
    cut = tmp_path / "cut.pth"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    expected = "truncated or corrupted PyTorch checkpoint (its zip archive is incomplete); copy or download the file again"
    assert _message(cut) == f"{cut}: {expected}"
    torch.save({"w": torch.ones(3)}, full, _use_new_zipfile_serialization=False)
    cut.write_bytes(full.read_bytes()[:-20])
    assert _message(cut).startswith(f"{cut}: truncated or corrupted PyTorch checkpoint (")


def test_safetensors_under_another_suffix(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    path = tmp_path / "weights.pth"
    save_file({"w": torch.ones(2)}, str(path))
    assert _message(path) == f"{path}: a safetensors file with the suffix '.pth'; rename it to .safetensors"


def test_directory_is_not_a_checkpoint(tmp_path: Path) -> None:
    assert _message(tmp_path) == f"{tmp_path}: expected a checkpoint file, found a directory"
