"""`masa track` never ends with a wrong or empty result without a word: warnings and clear errors."""

from __future__ import annotations

import errno
from pathlib import Path

import cv2
import numpy as np
import pytest

from masa.cli import main
from masa.io.errors import OutputError

SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "tud-campus"


def _folder(tmp_path: Path, sizes: list[tuple[int, int]]) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(sizes):
        cv2.imwrite(str(folder / f"{i + 1:06d}.png"), rng.integers(0, 255, (h, w, 3), dtype=np.uint8))
    return folder


def _run(tmp_path: Path, source: Path, det_text: str, *extra: str) -> tuple[int, Path]:
    det = tmp_path / "det.txt"
    det.write_text(det_text)
    out = tmp_path / "out"
    code = main(["track", str(source), "--detections", str(det), "--out", str(out), "--no-progress", *extra])
    return code, out


def test_detections_past_the_end_and_nothing_tracked(tmp_path, capsys):
    folder = _folder(tmp_path, [(64, 96)] * 3)
    code, out = _run(
        tmp_path, folder, "1,-1,10,10,20,20,0.9\n7,-1,10,10,20,20,0.9\n8,-1,10,10,20,20,0.9\n", "--no-video", "--init-thresh", "0.99"
    )
    err = capsys.readouterr().err
    assert code == 0
    assert "warning: 2 detection rows on 2 frames were never used: frames 7, 8 (1-based) (line 2, line 3)" in err
    assert "past the last frame read (3)" in err
    assert "warning: no box was tracked in 3 frames" in err
    assert (out / "tracks.txt").read_text() == ""


def test_boxes_outside_the_frame_are_reported(tmp_path, capsys):
    folder = _folder(tmp_path, [(64, 96)] * 2)
    code, _ = _run(tmp_path, folder, "1,-1,10,10,20,20,0.9\n2,-1,500,500,20,20,0.9\n2,-1,10,10,20,20,0.9\n", "--no-video")
    err = capsys.readouterr().err
    assert code == 0 and "warning: 1 detection boxes lie entirely outside the frame and were dropped (line 2)" in err
    assert "no box was tracked" not in err


def test_empty_detection_file_says_so(tmp_path, capsys):
    folder = _folder(tmp_path, [(64, 96)] * 2)
    code, _ = _run(tmp_path, folder, "", "--no-video")
    err = capsys.readouterr().err
    assert code == 0 and "warning: the detections hold no rows at all" in err


def test_out_naming_a_file_is_a_clear_error(tmp_path, capsys):
    folder = _folder(tmp_path, [(64, 96)])
    (tmp_path / "out").write_text("not a folder")
    code, _ = _run(tmp_path, folder, "1,-1,10,10,20,20,0.9\n")
    err = capsys.readouterr().err
    assert code == 2
    assert "out: is a file; expected a folder for tracks.txt, tracks.json and video.mp4" in err and "Errno" not in err


def test_mixed_frame_sizes_keep_a_valid_video(tmp_path, capsys):
    import av

    folder = _folder(tmp_path, [(64, 96), (64, 96), (80, 120)])
    code, out = _run(tmp_path, folder, "1,-1,10,10,20,20,0.9\n3,-1,10,10,20,20,0.9\n")
    err = capsys.readouterr().err
    assert code == 0 and "000003.png: frame size 120x80 differs from the first frame's 96x64" in err
    with av.open(str(out / "video.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 3
    assert np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2)[:, 0].tolist() == [1.0, 3.0]


def test_a_full_disk_names_the_file():
    from masa.pipeline import _WriterSink

    class Full:
        path = "runs/x/tracks.txt"

        def write(self, *args):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            raise OSError(errno.ENOSPC, "No space left on device")

    sink = _WriterSink(Full())
    with pytest.raises(OutputError, match=r"^runs/x/tracks.txt: cannot write: no space left on device$"):
        sink._write(0, None)
    with pytest.raises(OutputError, match="cannot finish writing"):
        sink.close()


def test_os_errors_read_as_words():
    from masa.cli import user_message

    assert user_message(FileExistsError(17, "File exists", "runs/x")) == "runs/x: file exists"
    assert user_message(OSError(28, "No space left on device")) == "no space left on device"
    assert user_message(OutputError("a.txt", "cannot write: disk full")) == "a.txt: cannot write: disk full"
    assert user_message(ValueError("--device: expected auto")) == "--device: expected auto"
