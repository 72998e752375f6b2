"""The periodic tracking check of a training run: track MOTChallenge sequences, score HOTA / AssA / IDF1.

Protocol "gt" of ``benchmarks/mot_benchmark.py`` in small: the sequence's ground-truth boxes are
the detections (score 1, rows shuffled), the model under training gives the embeddings, the default tracker of
:class:`~masa.pipeline.PipelineConfig` links them, and :func:`~masa.eval.mot_metrics.evaluate_mot`
scores the result (combined over the sequences). ``frame_step > 1`` keeps every n-th frame (the
low-frame-rate protocol).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from masa.eval.mot_metrics import evaluate_mot
from masa.io import MotSequenceSource
from masa.modeling.predictor import MasaPredictor
from masa.pipeline import PipelineConfig, build_pipeline, load_detections

__all__ = ["track_eval"]


def track_eval(predictor: MasaPredictor, sequences: Sequence[str | Path], *, frame_step: int = 1) -> dict[str, float]:
    """``{"HOTA", "AssA", "IDF1"}`` in percent, combined over ``sequences`` (MOTChallenge folders with ``gt/gt.txt``)."""
    gt, pred, lengths = {}, {}, {}
    for folder in sequences:
        source = MotSequenceSource(folder)
        if source.gt_path is None:
            raise ValueError(f"{folder}: no gt/gt.txt to evaluate against")
        detections = load_detections(source.gt_path)
        rng = np.random.default_rng(0)  # gt rows come sorted by id: shuffle so that row order tells nothing
        kept = {f: d[torch.from_numpy(rng.permutation(len(d)))] for f, d in detections.items() if f % frame_step == 0}
        rows = []
        pipeline = build_pipeline(PipelineConfig(), detections=kept, predictor=predictor)
        frames = (frame for frame in source if frame.index % frame_step == 0)
        for result in pipeline.run(frames):
            tracks = result.tracks
            boxes = tracks.boxes.numpy()
            for i in range(len(tracks)):
                x1, y1, x2, y2 = boxes[i]
                rows.append([result.frame.index + 1, int(tracks.ids[i]) + 1, x1, y1, x2 - x1, y2 - y1, 1, -1, -1])
        gt_rows = np.loadtxt(source.gt_path, delimiter=",", ndmin=2)
        gt_rows = gt_rows[(gt_rows[:, 0] - 1) % frame_step == 0]
        name = source.name
        gt[name] = gt_rows
        pred[name] = np.asarray(rows, dtype=np.float64).reshape(-1, 9)
        lengths[name] = source.num_frames
    result = evaluate_mot(gt, pred, metrics=("HOTA", "Identity"), num_frames=lengths)
    return {key: 100.0 * float(result.combined[key]) for key in ("HOTA", "AssA", "IDF1")}
