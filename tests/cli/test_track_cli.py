"""`masa track` end to end: outputs, MOT folders, bad input, adapter checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from masa.cli import main

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "assets" / "tud-campus"


def count_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def test_track_sample_clip_writes_all_outputs(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "track",
            str(SAMPLE / "video.mp4"),
            "--detections",
            str(SAMPLE / "det.txt"),
            "--out",
            str(out),
            "--max-frames",
            "6",
            "--no-progress",
        ]
    )
    assert code == 0
    summary = capsys.readouterr().out
    assert "6 frames" in summary and "tracks" in summary and "frames/s" in summary
    rows = np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2)
    assert rows.shape[1] == 10 and rows[:, 0].min() >= 1 and rows[:, 0].max() <= 6  # 1-based frames
    assert rows[:, 1].min() >= 1  # MOTChallenge ids are 1-based
    records = json.loads((out / "tracks.json").read_text())
    assert len(records) == len(rows)
    assert {"video_id", "image_id", "track_id", "bbox", "score", "category_id"} <= set(records[0])
    assert count_frames(out / "video.mp4") == 6


def test_track_mot_sequence_uses_its_public_detections(tud_campus, tmp_path):
    out = tmp_path / "mot"
    assert main(["track", str(tud_campus), "--out", str(out), "--no-video", "--no-progress"]) == 0
    rows = np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2)
    assert not (out / "video.mp4").exists()
    assert len(rows) > 150  # 322 public detections over 71 frames; most get tracked
    frames = rows[:, 0].astype(int)
    assert frames.min() >= 1 and frames.max() <= 71
    for f in np.unique(frames):  # one row per tracked box: ids unique within a frame
        ids = rows[frames == f, 1]
        assert len(np.unique(ids)) == len(ids)


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing.mp4", "--detections", "x.txt"], "missing.mp4"),
        (["{video}", "--detections", "{bad_det}"], "bad_det.txt:2:"),
        (["{video}"], "no detections"),
        (["{video}", "--detections", "{det}", "--max-frames", "0"], "--max-frames"),
        (["{video}", "--detections", "{det}", "--model", "nope.safetensors"], "nope.safetensors"),
        (["{garbage}", "--detections", "{det}"], "garbage.mp4"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, args, message):
    bad_det = tmp_path / "bad_det.txt"
    bad_det.write_text("1,-1,10,10,20,20,0.9\n1,-1,abc,10,20,20,0.9\n")
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    values = {"video": str(SAMPLE / "video.mp4"), "bad_det": str(bad_det), "det": str(SAMPLE / "det.txt"), "garbage": str(garbage)}
    argv = ["track", *[a.format(**values) for a in args], "--out", str(tmp_path / "o"), "--no-progress"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


def test_track_with_adapter_checkpoint(tmp_path):
    from dataclasses import replace

    from masa.modeling.build import build_masa
    from masa.modeling.checkpoint import save_masa_checkpoint
    from masa.modeling.config import MASA_CONFIGS, PyramidConfig, TrackHeadConfig

    lite = MASA_CONFIGS["lite"]
    config = replace(
        lite,
        adapter=replace(
            lite.adapter, pyramid=PyramidConfig(channels=32), track_head=TrackHeadConfig(fc_channels=64, embed_dim=32), detection=None
        ),
    )
    ckpt = save_masa_checkpoint(build_masa(config), config, tmp_path / "adapter.safetensors")
    out = tmp_path / "adapter_run"
    code = main(["track", str(SAMPLE / "video.mp4"), "--detections", str(SAMPLE / "det.txt"), "--model", str(ckpt),
                 "--out", str(out), "--max-frames", "3", "--no-video", "--no-progress"])  # fmt: skip
    assert code == 0
    assert np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2).shape[0] > 0


def test_cli_and_python_pipeline_give_identical_tracks(tmp_path):
    """`masa track` and the README's Python example build the same pipeline."""
    from masa.io import open_source
    from masa.pipeline import PipelineConfig, build_pipeline, output_sinks

    cli_out, py_out = tmp_path / "cli", tmp_path / "py"
    argv = ["track", str(SAMPLE / "video.mp4"), "--detections", str(SAMPLE / "det.txt"), "--out", str(cli_out),
            "--max-frames", "12", "--no-video", "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    config = PipelineConfig(detections=str(SAMPLE / "det.txt"))
    with open_source(str(SAMPLE / "video.mp4"), max_frames=12) as frames, build_pipeline(config) as pipeline:
        for sink in output_sinks(py_out, video_name=frames.name, fps=frames.fps, video=False):
            pipeline.add_sink(sink)
        ids = [result.tracks.ids.tolist() for result in pipeline.run(frames)]
    assert len(ids) == 12 and sum(map(len, ids)) > 0
    assert (cli_out / "tracks.txt").read_text() == (py_out / "tracks.txt").read_text()
    assert (cli_out / "tracks.json").read_text() == (py_out / "tracks.json").read_text()
