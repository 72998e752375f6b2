"""Shared test fixtures: the location of ../shared/data and a skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MASA_SHARED_DATA", REPO.parent / "shared" / "data"))

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$MASA_SHARED_DATA``); skips the test when it is absent."""
    if not (SHARED_DATA / "mot15").is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA} (set MASA_SHARED_DATA to its location)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tud_campus(shared_data: Path) -> Path:
    """The MOT15 TUD-Campus sequence folder (71 frames, 640x480)."""
    path = shared_data / "mot15" / "TUD-Campus"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path
