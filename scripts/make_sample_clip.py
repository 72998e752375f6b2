"""Rebuild assets/tud-campus/ from a MOTChallenge sequence (how the shipped sample was made).

    python scripts/make_sample_clip.py ../shared/data/mot15/TUD-Campus assets/tud-campus

Encodes ``img1/*.jpg`` as H.264 mp4 (libx264, CRF 18, yuv420p, the sequence's frame rate) and
copies the public detections and the ground truth next to it.
"""

from __future__ import annotations

import argparse
import configparser
import shutil
from pathlib import Path

import av
import cv2


def main() -> None:
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
    with av.open(str(args.out / "video.mp4"), "w") as container:
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
