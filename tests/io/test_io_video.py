"""VideoWriter -> VideoFileSource round trips, odd sizes, corrupt packets, valid files after errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from masa.io import VideoFileSource, VideoWriter, open_source


def _smooth(height: int, width: int, t: int) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    r = (xx * 255 // max(width - 1, 1) + 4 * t) % 256
    g = yy * 255 // max(height - 1, 1)
    b = np.full_like(xx, 100 + t)
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def test_write_then_read_odd_size(tmp_path):
    path = tmp_path / "sub" / "out.mp4"
    frames = [_smooth(45, 63, t) for t in range(8)]
    with VideoWriter(path, fps=25) as writer:
        for image in frames:
            writer.write(image)
        with pytest.raises(ValueError, match="expected"):
            writer.write(np.zeros((44, 63, 3), np.uint8))
    assert writer.frames_written == 8
    source = open_source(path)
    assert isinstance(source, VideoFileSource)
    with source:
        assert source.fps == pytest.approx(25.0)
        assert source.size == (46, 64)  # padded to even
        assert source.num_frames in (8, None)
        decoded = list(source)
    assert [f.index for f in decoded] == list(range(8))
    for original, frame in zip(frames, decoded):
        assert frame.image.dtype == np.uint8 and frame.image.flags["C_CONTIGUOUS"]
        diff = np.abs(frame.image[:45, :63].astype(int) - original.astype(int)).mean()
        assert diff < 10


def test_max_frames_and_reiteration(tmp_path):
    path = tmp_path / "v.mp4"
    with VideoWriter(path, fps=10, size=(32, 32)) as writer:
        for t in range(6):
            writer.write(_smooth(32, 32, t))
    with VideoFileSource(path, max_frames=4) as source:
        assert source.num_frames in (4, None)
        assert [f.index for f in source] == [0, 1, 2, 3]
        assert [f.index for f in source] == [0, 1, 2, 3]  # iterating again starts over


def test_video_valid_after_exception(tmp_path):
    path = tmp_path / "crash.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with VideoWriter(path, fps=30) as writer:
            for t in range(5):
                writer.write(_smooth(24, 32, t))
            raise RuntimeError("boom")
    with VideoFileSource(path) as source:
        assert len(list(source)) == 5


def test_no_frames_no_file(tmp_path):
    with VideoWriter(tmp_path / "none.mp4", fps=5):
        pass
    assert not (tmp_path / "none.mp4").exists()
    with pytest.raises(ValueError, match="fps"):
        VideoWriter(tmp_path / "a.mp4", fps=0)


def test_corrupt_packet_is_skipped(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "noise.mp4"
    with VideoWriter(path, fps=25) as writer:
        for _ in range(20):
            writer.write(rng.integers(0, 256, (48, 48, 3), dtype=np.uint8))
    data = bytearray(path.read_bytes())
    middle = len(data) // 2  # +faststart: the index is at the start, frame data after it
    data[middle : middle + 2000] = rng.integers(0, 256, 2000, dtype=np.uint8).tobytes()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(bytes(data))
    with warnings.catch_warnings(record=True), VideoFileSource(broken) as source:
        warnings.simplefilter("always")
        frames = list(source)
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices)) and indices[0] == 0
    assert len(frames) + len(source.skipped) >= 15  # the rest of the video was still read
    assert {i for i, _ in source.skipped}.isdisjoint(indices)


def test_file_url_opens_as_stream(tmp_path):
    from masa.io import StreamSource

    path = tmp_path / "s.mp4"
    with VideoWriter(path, fps=5) as writer:
        for t in range(3):
            writer.write(_smooth(16, 16, t))
    with open_source(f"file:{path}") as source:
        assert isinstance(source, StreamSource) and source.num_frames is None
        assert [f.index for f in source] == [0, 1, 2]
