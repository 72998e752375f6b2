"""Rebuild assets/tud-campus/ from a MOTChallenge sequence (how the shipped sample was made).

    python scripts/make_sample_clip.py ../shared/data/mot15/TUD-Campus assets/tud-campus
    python scripts/make_sample_clip.py --faststart assets/tud-campus/video.mp4

Encodes ``img1/*.jpg`` as H.264 mp4 (libx264, CRF 18, yuv420p, the sequence's frame rate) and
copies the public detections and the ground truth next to it. The mp4 carries its index (the
``moov`` atom) at the front ("faststart"), so it streams from a server without range requests.
``--faststart VIDEO`` re-muxes an existing mp4 that way in place (a stream copy: the same packets,
so the decoded frames are identical; checked before the file is replaced).
"""

from __future__ import annotations

import argparse
import configparser
import hashlib
import shutil
import sys
from pathlib import Path

import av
import cv2

FASTSTART = {"movflags": "+faststart"}


def frame_digests(path: Path) -> list[str]:
    """SHA-1 of every decoded frame (rgb24), to check that a re-mux kept the frames."""
    with av.open(str(path)) as container:
        return [hashlib.sha1(f.to_ndarray(format="rgb24").tobytes()).hexdigest() for f in container.decode(video=0)]


def faststart(path: Path) -> None:
    """Re-mux ``path`` in place with its ``moov`` atom first (stream copy; frames checked identical)."""
    tmp = path.with_name(path.stem + ".faststart" + path.suffix)
    with av.open(str(path)) as src, av.open(str(tmp), "w", options=FASTSTART) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:  # the demuxer's final flush packet
                continue
            packet.stream = stream
            dst.mux(packet)
    before, after = frame_digests(path), frame_digests(tmp)
    if before != after:
        tmp.unlink()
        sys.exit(f"{path}: the re-muxed file decodes differently ({len(before)} vs {len(after)} frames); left unchanged")
    tmp.replace(path)
    print(f"{path}: re-muxed with faststart, {len(after)} identical frames")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--faststart":
        faststart(Path(sys.argv[2]))
        return
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sequence", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--crf", type=int, default=18)
    args = parser.parse_args()
    info = configparser.ConfigParser()
    info.read(args.sequence / "seqinfo.ini")
    seq = info["Sequence"]
    fps = int(seq["frameRate"])
    args.out.mkdir(parents=True, exist_ok=True)
    frames = sorted((args.sequence / seq.get("imDir", "img1")).glob("*.jpg"))
    with av.open(str(args.out / "video.mp4"), "w", options=FASTSTART) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = int(seq["imWidth"]), int(seq["imHeight"])
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(args.crf), "preset": "slow"}
        for path in frames:
            rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    shutil.copyfile(args.sequence / "det" / "det.txt", args.out / "det.txt")
    shutil.copyfile(args.sequence / "gt" / "gt.txt", args.out / "gt.txt")
    print(f"wrote {len(frames)} frames at {fps} fps to {args.out}")


if __name__ == "__main__":
    main()
