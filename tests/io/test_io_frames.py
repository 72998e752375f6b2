"""Frame sources: image folders, MOT sequences, dispatch and error messages."""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from masa.io import (
    CameraSource,
    FrameSource,
    ImageFolderSource,
    InputError,
    InputNotFoundError,
    MotSequenceSource,
    StreamSource,
    VideoFileSource,
    natural_sort_key,
    open_source,
    read_image,
    to_rgb8,
)


def _write(path: Path, image: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), image)
    return path


def _frames(source: FrameSource) -> list:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return list(source)


def test_natural_sort():
    names = ["frame10.png", "frame2.png", "Frame1.png", "frame2b.png", "frame", "frame1"]
    assert sorted(names, key=natural_sort_key) == [
        "frame", "frame1", "Frame1.png", "frame2.png", "frame2b.png", "frame10.png"
    ]


def test_to_rgb8_conversions():
    gray16 = np.full((4, 5), 65535, np.uint16)
    out = to_rgb8(gray16)
    assert out.dtype == np.uint8 and out.shape == (4, 5, 3) and (out == 255).all()
    bgra = np.zeros((2, 3, 4), np.uint8)
    bgra[..., 0] = 200  # blue in OpenCV order
    rgb = to_rgb8(bgra)
    assert rgb.shape == (2, 3, 3) and (rgb[..., 2] == 200).all() and (rgb[..., 0] == 0).all()
    assert to_rgb8(np.ones((2, 2), np.float32)).max() == 255
    with pytest.raises(ValueError):
        to_rgb8(np.zeros((2, 2, 5), np.uint8))


def test_image_folder_converts_to_rgb_and_sorts(tmp_path):
    color = np.zeros((6, 8, 3), np.uint8)
    color[..., 2] = 255  # BGR red
    _write(tmp_path / "frame10.png", color)
    _write(tmp_path / "frame2.png", np.full((6, 8), 77, np.uint8))  # grayscale
    rgba = np.zeros((6, 8, 4), np.uint8)
    rgba[..., 1] = 50
    rgba[..., 3] = 128
    _write(tmp_path / "frame1.png", rgba)  # BGRA
    _write(tmp_path / "frame3.png", np.full((6, 8), 4096, np.uint16))  # 16-bit gray
    (tmp_path / "notes.txt").write_text("not an image")
    with ImageFolderSource(tmp_path) as source:
        assert source.num_frames == 4 and source.size == (6, 8) and source.fps is None
        frames = list(source)
    assert [f.name for f in frames] == ["frame1.png", "frame2.png", "frame3.png", "frame10.png"]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (6, 8, 3) and f.image.flags["C_CONTIGUOUS"]
    assert (frames[0].image == [0, 50, 0]).all()
    assert (frames[1].image == 77).all()
    assert (frames[2].image == 16).all()  # 4096 / 257 ~ 16
    assert (frames[3].image == [255, 0, 0]).all()  # RGB red


def test_unreadable_image_is_skipped_and_index_kept(tmp_path):
    for i in (1, 3):
        _write(tmp_path / f"img{i}.jpg", np.full((4, 4, 3), 10 * i, np.uint8))
    (tmp_path / "img2.jpg").write_bytes(b"this is not a jpeg")
    source = ImageFolderSource(tmp_path)
    with pytest.warns(RuntimeWarning, match="img2.jpg"):
        frames = list(source)
    assert [f.index for f in frames] == [0, 2]
    assert [f.name for f in frames] == ["img1.jpg", "img3.jpg"]
    assert len(source.skipped) == 1 and source.skipped[0][0] == 1 and "img2.jpg" in source.skipped[0][1]


def test_image_folder_errors(tmp_path):
    with pytest.raises(InputError, match="no images found"):
        ImageFolderSource(tmp_path)
    with pytest.raises(FileNotFoundError, match="missing"):
        ImageFolderSource(tmp_path / "missing")
    with pytest.raises(InputError, match="not a readable image"):
        (tmp_path / "x.png").write_bytes(b"garbage")
        read_image(tmp_path / "x.png")


def test_max_frames(tmp_path):
    for i in range(5):
        _write(tmp_path / f"{i}.png", np.zeros((2, 2, 3), np.uint8))
    source = open_source(tmp_path, max_frames=3)
    assert isinstance(source, ImageFolderSource) and source.num_frames == 3
    assert [f.index for f in source] == [0, 1, 2]
    with pytest.raises(InputError, match="max_frames"):
        open_source(tmp_path, max_frames=-1)


def _make_sequence(root: Path, seqinfo: bool = True) -> Path:
    (root / "img1").mkdir(parents=True)
    for i in (1, 2, 4):
        _write(root / "img1" / f"{i:06d}.jpg", np.full((10, 12, 3), 20 * i, np.uint8))
    if seqinfo:
        (root / "seqinfo.ini").write_text(
            "[Sequence]\nname=Toy\nimDir=img1\nframeRate=30\nseqLength=4\nimWidth=12\nimHeight=10\nimExt=.jpg\n"
        )
    (root / "det").mkdir()
    (root / "det" / "det.txt").write_text("1,-1,1,1,3,3,0.9\n")
    return root


def test_mot_sequence_synthetic(tmp_path):
    seq = _make_sequence(tmp_path / "Toy-01")
    source = open_source(seq)
    assert isinstance(source, MotSequenceSource)
    assert source.name == "Toy" and source.fps == 30.0 and source.size == (10, 12) and source.num_frames == 4
    assert source.det_path == seq / "det" / "det.txt" and source.gt_path is None
    frames = _frames(source)
    assert [f.index for f in frames] == [0, 1, 3]
    assert source.skipped and source.skipped[0][0] == 2


def test_mot_sequence_without_seqinfo(tmp_path):
    seq = _make_sequence(tmp_path / "NoInfo", seqinfo=False)
    source = open_source(seq)
    assert isinstance(source, MotSequenceSource)
    assert source.name == "NoInfo" and source.fps is None and source.num_frames == 4
    assert [f.index for f in _frames(source)] == [0, 1, 3]


def test_bad_seqinfo(tmp_path):
    seq = _make_sequence(tmp_path / "Bad")
    (seq / "seqinfo.ini").write_text("[Sequence]\nframeRate=fast\n")
    with pytest.raises(InputError, match=r"seqinfo\.ini:2: frameRate is 'fast'; expected a positive number$"):
        MotSequenceSource(seq)


def test_mot_sequence_real_tud_campus(tud_campus):
    with MotSequenceSource(tud_campus, max_frames=3) as source:
        assert source.fps == 25.0 and source.size == (480, 640) and source.name == "TUD-Campus"
        assert source.det_path is not None and source.gt_path is not None
        frames = list(source)
    assert [f.index for f in frames] == [0, 1, 2]
    assert frames[0].name == "000001.jpg"
    assert all(f.image.shape == (480, 640, 3) and f.image.dtype == np.uint8 for f in frames)


def test_open_source_dispatch_and_errors(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    _write(images / "a.png", np.zeros((2, 2, 3), np.uint8))
    assert isinstance(open_source(images), ImageFolderSource)
    assert isinstance(open_source(str(images)), ImageFolderSource)
    with pytest.raises(InputNotFoundError) as info:
        open_source(tmp_path / "nope.mp4")
    assert "nope.mp4" in str(info.value) and "camera index" in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, InputError)
    with pytest.raises(InputError, match="expected"):
        open_source(3.5)  # type: ignore[arg-type]


def test_open_source_camera_and_stream_errors():
    with pytest.raises(InputError, match="camera 99"):
        open_source(99)
    with pytest.raises(InputError, match="camera 98"):
        open_source("98")
    with pytest.raises(InputError, match=r"http://127\.0\.0\.1:1/x\.mp4: cannot open stream"):
        open_source("http://127.0.0.1:1/x.mp4")
    assert issubclass(StreamSource, FrameSource) and issubclass(CameraSource, FrameSource)


def test_missing_and_corrupt_video(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        VideoFileSource(tmp_path / "missing.mp4")
    bad = tmp_path / "x.mp4"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(InputError, match="x.mp4: cannot open video file"):
        open_source(bad)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        VideoFileSource(empty)
