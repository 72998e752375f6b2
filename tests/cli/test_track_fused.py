"""The fused tracker behind ``masa track``: ``PipelineConfig`` -> ``build_tracker`` / ``build_pipeline``, and the CLI flags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from masa.cli import main
from masa.pipeline import ASSUMED_FPS, PipelineConfig, build_pipeline, build_tracker, describe_tracker
from masa.tracking import FusedTracker, MasaTaoTracker, TaoTrackerConfig

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "assets" / "tud-campus"


class _NoModel:
    """Stands in for a ``MasaPredictor`` where only the pipeline's wiring is tested (nothing is embedded)."""

    has_detector = False


# -- build_tracker / build_pipeline --------------------------------------------------------------


def test_build_tracker_defaults_to_the_fused_tracker_at_the_sources_fps() -> None:
    tracker = build_tracker(PipelineConfig())
    assert isinstance(tracker, FusedTracker)
    assert tracker.fps == ASSUMED_FPS  # no frame rate anywhere
    assert build_tracker(PipelineConfig(), fps=12.5).fps == 12.5
    assert build_tracker(PipelineConfig(fps=7), fps=12.5).fps == 7  # config.fps overrides the source's
    assert build_tracker(PipelineConfig(fps=7)).fps == 7


def test_build_tracker_applies_the_fused_overrides() -> None:
    config = PipelineConfig(reid_seconds=3, lost_seconds=1, cmc="sparse-flow", class_aware=True, match_thresh=0.45, init_thresh=0.6)
    tracker = build_tracker(config, fps=25)
    assert isinstance(tracker, FusedTracker) and tracker.needs_frames
    c = tracker.config
    assert (c.reid_seconds, c.lost_seconds, c.cmc, c.class_aware) == (3, 1, "sparse-flow", True)
    assert (c.match_thresh, c.new_track_thresh) == (0.45, 0.6)
    assert c.high_score_thresh == 0.4  # a higher --init-thresh leaves the confident bar
    low = build_tracker(PipelineConfig(init_thresh=0.2)).config
    assert (low.new_track_thresh, low.high_score_thresh, low.low_score_thresh) == (0.2, 0.2, 0.1)  # lowered with it
    assert build_tracker(PipelineConfig(init_thresh=0.05)).config.low_score_thresh == 0.05
    defaults = build_tracker(PipelineConfig()).config
    assert (defaults.cmc, defaults.class_aware, defaults.reid_seconds, defaults.lost_seconds) == ("off", False, 30.0, 1.5)


def test_build_pipeline_notes_the_assumed_fps() -> None:
    pipeline = build_pipeline(PipelineConfig(), detections={}, predictor=_NoModel())
    assert isinstance(pipeline.tracker, FusedTracker) and pipeline.tracker.fps == ASSUMED_FPS
    notes = [n for n in pipeline.notes if "fps" in n]
    assert len(notes) == 1 and f"{ASSUMED_FPS:g} fps" in notes[0] and "--fps" in notes[0]
    for config, fps in ((PipelineConfig(), 25.0), (PipelineConfig(fps=7), None)):
        pipeline = build_pipeline(config, detections={}, predictor=_NoModel(), fps=fps)
        assert not [n for n in pipeline.notes if "fps" in n]
        assert pipeline.tracker.fps == (fps or config.fps)
    # The authors' trackers count frames: no note.
    pipeline = build_pipeline(PipelineConfig(tracker="plug-and-play"), detections={}, predictor=_NoModel())
    assert isinstance(pipeline.tracker, MasaTaoTracker) and not [n for n in pipeline.notes if "fps" in n]


# -- PipelineConfig checks -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"tracker": "fused", "memory_frames": 5}, "--reid-seconds"),
        ({"tracker": "tao", "cmc": "ecc"}, "--cmc"),
        ({"tracker": "tao", "reid_seconds": 3}, "--reid-seconds"),
        ({"tracker": "bdd", "lost_seconds": 1}, "--lost-seconds"),
        ({"tracker": "plug-and-play", "class_aware": True}, "--class-aware"),
        ({"fps": 0}, "--fps"),
        ({"fps": -25}, "--fps"),
        ({"fps": float("nan")}, "--fps"),
    ],
)
def test_pipeline_config_rejects_settings_of_the_other_tracker(kwargs, flag: str) -> None:
    with pytest.raises(ValueError, match=flag):
        PipelineConfig(**kwargs)


def test_memory_frames_still_works_for_the_authors_trackers() -> None:
    tracker = build_tracker(PipelineConfig(tracker="tao", memory_frames=5))
    assert isinstance(tracker, MasaTaoTracker) and tracker.config.memory_frames == 5


def test_describe_tracker() -> None:
    fused = FusedTracker(fps=25)
    assert describe_tracker(fused) == fused.describe()
    assert describe_tracker(fused).startswith("fused tracker") and "25 fps" in describe_tracker(fused)
    tao = MasaTaoTracker(TaoTrackerConfig.plug_and_play())
    text = describe_tracker(tao)
    assert text.startswith("MasaTaoTracker(TaoTrackerConfig(") and "memory_frames=10" in text


# -- masa track ----------------------------------------------------------------------------------
# Each run embeds every frame with the default model (~1 s a frame on 2 shared cores): few runs, few frames.


def _track(tmp_path: Path, capsys, *extra: str, frames: int = 2) -> tuple[int, str, Path]:
    out = tmp_path / "run"
    argv = ["track", str(SAMPLE / "video.mp4"), "--detections", str(SAMPLE / "det.txt"), "--out", str(out),
            "--max-frames", str(frames), "--no-video", "--no-progress", *extra]  # fmt: skip
    code = main(argv)
    return code, capsys.readouterr().err, out


def test_cli_default_is_the_fused_tracker_with_camera_motion(tmp_path, capsys) -> None:
    """No ``--tracker``: the fused one, described on stderr; ``--cmc sparse-flow`` feeds it the frames
    (3 frames: two camera-motion estimates; frame 1 has no confident box, frames 2 and 3 have)."""
    code, err, out = _track(tmp_path, capsys, "--cmc", "sparse-flow", frames=3)
    assert code == 0, err
    line = next(x for x in err.splitlines() if x.startswith("masa track: tracker: "))
    assert line.startswith("masa track: tracker: fused tracker")
    assert "camera motion sparse-flow" in line and "25 fps" in line  # the sample clip's own frame rate
    rows = np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2)
    assert len(rows) > 0 and rows[:, 0].max() <= 3


def test_cli_plug_and_play_still_works(tmp_path, capsys) -> None:
    code, err, out = _track(tmp_path, capsys, "--tracker", "plug-and-play")
    assert code == 0, err
    assert "masa track: tracker: MasaTaoTracker(TaoTrackerConfig(" in err and "fused tracker" not in err
    assert np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2).shape[0] > 0


def test_cli_rejects_fused_flags_with_another_tracker(tmp_path, capsys) -> None:
    code, err, _ = _track(tmp_path, capsys, "--tracker", "tao", "--reid-seconds", "3")
    assert code == 2
    assert "--reid-seconds" in err and "--tracker fused" in err and "Traceback" not in err
