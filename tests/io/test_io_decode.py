"""Decoding damaged videos: frame indices from timestamps, lost / concealed frames reported, early ends, faststart.

The clips are generated here: each frame shows its own number as a barcode (8 bits and their
complement, in 16x16 blocks that survive compression), so a test can check ``index == content``.
"""

from __future__ import annotations

import functools
import http.server
import struct
import threading
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from masa.io import InputError, StreamSource, VideoFileSource, VideoWriter

H, W, B = 64, 96, 16
N = 30
SAMPLE = Path(__file__).resolve().parents[2] / "assets" / "tud-campus" / "video.mp4"


def _image(number: int) -> np.ndarray:
    image = np.zeros((H, W, 3), np.uint8)
    bits = [(number >> k) & 1 for k in range(8)] + [1 - ((number >> k) & 1) for k in range(8)]
    for n, bit in enumerate(bits):
        r, c = divmod(n, 6)
        image[r * B : (r + 1) * B, c * B : (c + 1) * B] = 255 * bit
    image[48:] = np.random.default_rng(number).integers(0, 256, (H - 48, W, 3), dtype=np.uint8)  # texture
    return image


def _number(image: np.ndarray) -> int | None:
    """The number a frame shows, ``None`` when the barcode is unreadable (a damaged image)."""
    bits = []
    for n in range(16):
        r, c = divmod(n, 6)
        bits.append(image[r * B + 3 : (r + 1) * B - 3, c * B + 3 : (c + 1) * B - 3].mean() > 128)
    if any(bits[k] == bits[8 + k] for k in range(8)):
        return None
    return sum(int(b) << k for k, b in enumerate(bits[:8]))


def _make_clip(path: Path, *, bframes: bool, n: int = N, pts: list[int] | None = None, faststart: bool = True) -> Path:
    """Intra-only (every frame a keyframe) or with B-frames (``bf=2``, GOP 12). ``pts`` in 1/1000 s."""
    gop = 12 if bframes else 1
    options = {"movflags": "+faststart"} if faststart else {}
    with av.open(str(path), "w", options=options) as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = {
            "g": str(gop), "keyint_min": str(gop), "sc_threshold": "0", "bf": "2" if bframes else "0",
            "preset": "veryfast", "crf": "23",
        }
        if pts is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(_image(i), format="rgb24")
            frame.pts, frame.time_base = (i, Fraction(1, 25)) if pts is None else (pts[i], Fraction(1, 1000))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def _packets(path: Path) -> list[tuple[int, int, int]]:
    """``(pts, pos, size)`` of the video packets in decode order."""
    with av.open(str(path)) as container:
        return [(p.pts, p.pos, p.size) for p in container.demux(video=0) if p.size]


def _display_index(path: Path, pts: int) -> int:
    return sorted(p for p, _, _ in _packets(path)).index(pts)


def _corrupt(path: Path, out: Path, packet: int, start: float = 0.0) -> int:
    """Overwrite the ``packet``-th packet (decode order) from ``start`` (fraction) on; its display index."""
    pts, pos, size = _packets(path)[packet]
    data = bytearray(path.read_bytes())
    begin = pos + max(4, int(size * start))  # keep the 4-byte NAL length
    data[begin : pos + size] = np.random.default_rng(packet).integers(0, 256, pos + size - begin, dtype=np.uint8).tobytes()
    out.write_bytes(bytes(data))
    return _display_index(path, pts)


def _read(source) -> tuple[list, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with source:
            frames = list(source)
    return frames, [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def _check_content(source, frames) -> None:
    """Every delivered frame not reported damaged shows its own index."""
    damaged = {i for i, _ in source.corrupt}
    wrong = [(f.index, _number(f.image)) for f in frames if f.index not in damaged and _number(f.image) != f.index]
    assert not wrong, f"(index, content) of unreported wrong frames: {wrong}"
    indices = [f.index for f in frames]
    assert indices == sorted(set(indices))
    assert {i for i, _ in source.skipped}.isdisjoint(indices)


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("clips")
    return {
        "intra": _make_clip(root / "intra.mp4", bframes=False),
        "bframes": _make_clip(root / "bframes.mp4", bframes=True),
    }


@pytest.mark.parametrize("kind", ["intra", "bframes"])
def test_clean_clip_indices_match_content(clips, kind):
    source = VideoFileSource(clips[kind])
    frames, messages = _read(source)
    assert [f.index for f in frames] == list(range(N))
    assert [_number(f.image) for f in frames] == list(range(N))
    assert not messages and not source.skipped and not source.corrupt
    assert source.delivered == N and source.expected == N and source.ended_early is None
    if kind == "bframes":  # the clip really has B-frames: decode order != display order
        pts = [p for p, _, _ in _packets(clips[kind])]
        assert pts != sorted(pts)


@pytest.mark.parametrize("kind", ["intra", "bframes"])
@pytest.mark.parametrize("packet", [1, 5, 13, 20, 29])
def test_corrupted_packet_keeps_indices(clips, kind, packet, tmp_path):
    broken = tmp_path / "broken.mp4"
    lost = _corrupt(clips[kind], broken, packet)
    source = VideoFileSource(broken)
    frames, messages = _read(source)
    _check_content(source, frames)
    assert [i for i, _ in source.skipped] == [lost]
    assert "cannot decode packet" in source.skipped[0][1]
    assert any(m.startswith(f"broken.mp4: skipping frame {lost}: ") for m in messages)
    assert len(frames) == N - 1 and frames[-1].index == (N - 2 if lost == N - 1 else N - 1)
    if kind == "intra":  # nothing depends on the lost frame
        assert not source.corrupt
    else:  # frames predicted from it are delivered but reported
        assert all("predicted from frame" in reason for _, reason in source.corrupt)
        assert all(lost < i < 24 or i in (lost - 1, lost - 2) for i, _ in source.corrupt)
    assert source.ended_early is None


@pytest.mark.parametrize("kind", ["intra", "bframes"])
def test_two_corrupted_packets(clips, kind, tmp_path):
    once, twice = tmp_path / "once.mp4", tmp_path / "twice.mp4"
    first = _corrupt(clips[kind], once, 7)
    second = _corrupt(once, twice, 16)
    source = VideoFileSource(twice)
    frames, _ = _read(source)
    _check_content(source, frames)
    assert [i for i, _ in source.skipped] == sorted([first, second])
    assert len(frames) == N - 2


def test_concealed_frame_is_reported(clips, tmp_path):
    broken = tmp_path / "concealed.mp4"
    index = _corrupt(clips["intra"], broken, 10, start=0.02)  # damaged slice data: the decoder conceals it
    source = VideoFileSource(broken)
    frames, messages = _read(source)
    _check_content(source, frames)
    assert [f.index for f in frames] == list(range(N))
    assert source.corrupt == [(index, "the decoder concealed errors in its data (frame.is_corrupt)")]
    assert any(m.startswith(f"concealed.mp4: frame {index} may be damaged: the decoder concealed") for m in messages)


def test_propagated_damage_is_reported_once(clips, tmp_path):
    broken = tmp_path / "gop.mp4"
    lost = _corrupt(clips["bframes"], broken, 13)  # a P-frame of the second GOP
    source = VideoFileSource(broken)
    frames, messages = _read(source)
    _check_content(source, frames)
    damaged = [i for i, _ in source.corrupt]
    assert damaged and all(12 < i < 24 for i in damaged)  # within the GOP, none after the next keyframe
    assert source.corrupt[0][1] == f"it is predicted from frame {lost}, which was lost"
    assert len([m for m in messages if "may be damaged" in m]) == 1
    assert "up to the next keyframe" in next(m for m in messages if "may be damaged" in m)


@pytest.mark.parametrize("kind", ["intra", "bframes"])
def test_variable_frame_rate(kind, tmp_path):
    rng = np.random.default_rng(1)
    pts = np.cumsum(rng.choice([20, 33, 40, 80, 200], size=N)).tolist()  # irregular gaps, in ms
    path = _make_clip(tmp_path / "vfr.mp4", bframes=kind == "bframes", pts=pts)
    source = VideoFileSource(path)
    frames, messages = _read(source)
    assert [_number(f.image) for f in frames] == [f.index for f in frames] == list(range(N))
    assert not messages
    broken = tmp_path / "vfr_broken.mp4"
    lost = _corrupt(path, broken, 9)
    source = VideoFileSource(broken)
    frames, _ = _read(source)
    _check_content(source, frames)
    assert [i for i, _ in source.skipped] == [lost] and len(frames) == N - 1


@pytest.mark.parametrize("kind", ["intra", "bframes"])
def test_truncated_clip_says_how_far_it_got(clips, kind, tmp_path):
    path = clips[kind]
    data = path.read_bytes()
    packets = _packets(path)
    cut_file = tmp_path / "cut.mp4"
    for cut_at in (packets[4][1], packets[12][1] + 20, packets[21][1], packets[26][1] + 10):
        cut_file.write_bytes(data[:cut_at])
        source = VideoFileSource(cut_file)
        frames, messages = _read(source)
        _check_content(source, frames)
        reached = 1 + max(_display_index(path, pts) for pts, pos, _ in packets if pos < cut_at)
        message = f"cut.mp4: the stream ended after {reached} of {N} frames (declared length)"
        assert source.ended_early is not None and source.ended_early.startswith(message)
        assert any(m.startswith(message) for m in messages)
        assert len(frames) + len(source.skipped) == reached
        assert {f.index for f in frames} | {i for i, _ in source.skipped} == set(range(reached))
        if source.skipped:
            assert f"; {len(frames)} delivered, {len(source.skipped)} skipped" in source.ended_early


def test_no_frame_at_all_is_an_error(clips, tmp_path):
    path = clips["bframes"]
    first = _packets(path)[0]
    data = path.read_bytes()
    empty = tmp_path / "index_only.mp4"
    empty.write_bytes(data[: first[1]])  # the index (faststart) but no frame data
    with pytest.raises(InputError, match=r"index_only\.mp4: no frame could be read: the video file contains no frames"):
        _read(VideoFileSource(empty))
    garbage = tmp_path / "garbage.mp4"
    raw = bytearray(data)
    for _pts, pos, size in _packets(path):
        raw[pos + 4 : pos + size] = bytes(size - 4)
    garbage.write_bytes(bytes(raw))
    with pytest.raises(InputError, match=r"garbage\.mp4: no frame could be read: none of its 30 packets could be decoded"):
        _read(VideoFileSource(garbage))
    with VideoFileSource(garbage, max_frames=0) as source:  # nothing asked for: no error
        assert list(source) == []


def _boxes(path: Path) -> list[str]:
    data, pos, names = path.read_bytes(), 0, []
    while pos + 8 <= len(data):
        size, name = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        names.append(name.decode("latin-1"))
        if size < 8:
            break
        pos += size
    return names


def test_written_videos_and_sample_clip_are_faststart(tmp_path):
    path = tmp_path / "out.mp4"
    with VideoWriter(path, fps=10) as writer:
        for i in range(3):
            writer.write(_image(i))
    for video in (path, SAMPLE):
        boxes = _boxes(video)
        assert "moov" in boxes and "mdat" in boxes and boxes.index("moov") < boxes.index("mdat"), (video, boxes)


class _NoRangeHandler(http.server.SimpleHTTPRequestHandler):
    """Plain HTTP without range requests (SimpleHTTPRequestHandler ignores ``Range``)."""

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def http_root(tmp_path):
    handler = functools.partial(_NoRangeHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield tmp_path, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _remux(src: Path, dst: Path, *, faststart: bool) -> None:
    with av.open(str(src)) as inp, av.open(str(dst), "w", options={"movflags": "+faststart"} if faststart else {}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)


def test_http_stream_needs_the_index_first(http_root):
    root, url = http_root
    _remux(SAMPLE, root / "end.mp4", faststart=False)  # the sample clip as it was: index after the data
    (root / "front.mp4").write_bytes(SAMPLE.read_bytes())
    assert _boxes(root / "end.mp4").index("moov") > _boxes(root / "end.mp4").index("mdat")
    frames, messages = _read(StreamSource(f"{url}/front.mp4", timeout=5))
    assert [f.index for f in frames] == list(range(71)) and not messages
    with pytest.raises(InputError, match=r"end\.mp4: no frame could be read: .*'moov' atom.*-movflags \+faststart"):
        _read(StreamSource(f"{url}/end.mp4", timeout=5))


def test_masa_track_on_a_corrupted_clip_end_to_end(clips, tmp_path, capsys):
    """The CLI: tracks keep the frame numbers of the images, the lost frame is named, a frameless file is an error."""
    from masa.cli import main

    broken = tmp_path / "broken.mp4"
    lost = _corrupt(clips["bframes"], broken, 5)
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{f},-1,60,4,30,40,0.9\n" for f in range(1, N + 1)))  # one box per frame
    out = tmp_path / "out"
    code = main(["track", str(broken), "--detections", str(det), "--out", str(out), "--no-video", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 0
    assert f"warning: broken.mp4: skipping frame {lost}: cannot decode packet" in err
    frames = np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2)[:, 0].astype(int).tolist()
    assert frames == [f for f in range(1, N + 1) if f != lost + 1]  # 1-based, the lost frame absent
    assert f"warning: 1 detection rows on 1 frames were never used: frames {lost + 1} (1-based) (line {lost + 1})" in err
    empty = tmp_path / "index_only.mp4"
    empty.write_bytes(clips["bframes"].read_bytes()[: _packets(clips["bframes"])[0][1]])
    code = main(["track", str(empty), "--detections", str(det), "--out", str(tmp_path / "o2"), "--no-video", "--no-progress"])
    assert code == 2 and "no frame could be read: the video file contains no frames" in capsys.readouterr().err
