"""``masa train``: self-supervised MASA training from raw images, in one readable loop.

One step, per process (``B`` = ``batch_size`` view pairs)::

    stream positions -> ViewPairDataset -> B (key, ref) views of the same image + a shared mix-in
    frozen backbone (no autograd) -> adapter.fuse -> features of the 2B views
    per view: candidates (instances, jittered copies, random boxes) -> IoU assignment (0.7 / 0.3)
              -> instance-balanced sampling; key positives and all ref samples are embedded
    loss = loss_track (+ loss_track_aux) (+ RPN / RoI-head losses when the adapter has them)
    backward -> clip grad norm (35) -> SGD (momentum 0.9, wd 1e-4), lr = warm-up x step decay

* Determinism: every random draw of a sample derives from ``(seed, stream position)``, every
  draw of a step from ``(seed, step, rank)``, and the learning rate is a function of the step. A
  checkpoint holds the step, the adapter, the optimizer and the RNG state, so ``--resume``
  continues exactly (bit-identical weights on CPU, tested by killing a run).
* Checkpoints: ``<out>/checkpoint.pt`` (written to a temporary file, then renamed, so a crash or
  a full disk never leaves a broken one) every ``checkpoint_every`` steps and at the end, plus
  ``<out>/model.safetensors`` (what ``masa track --model`` loads). Loaded with ``weights_only=True``.
* Logs: ``<out>/log.jsonl`` (one line per ``log_every`` steps: losses, lr, samples/s, skipped
  images) and ``<out>/loss.png``; ``<out>/eval.jsonl`` from the tracking check
  (:func:`masa.training.evaluate.track_eval`) every ``eval_every`` steps.
* Distributed: under ``torchrun`` each process takes its share of every global batch, gradients
  are averaged by ``DistributedDataParallel`` (gloo on CPU, NCCL on GPUs), rank 0 writes files.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from masa.data.views import View, ViewConfig
from masa.modeling.adapter import MasaModel
from masa.modeling.build import build_masa, load_masa, resolve_device
from masa.modeling.checkpoint import save_masa_checkpoint
from masa.modeling.config import MasaConfig, get_config
from masa.training.data import ViewPairDataset, collate, load_proposal_images
from masa.training.losses import pair_targets, track_losses
from masa.training.sampling import SamplingConfig, assign_by_iou, candidate_boxes, sample_boxes

__all__ = ["TrainConfig", "TrainError", "train", "learning_rate"]

CHECKPOINT_FORMAT = "masa-train/1"
#: TrainConfig fields that may differ when resuming (they do not change what is computed).
_RESUMABLE_CHANGES = {"out", "steps", "checkpoint_every", "log_every", "eval_every", "eval_sequences", "workers", "device", "progress"}


class TrainError(ValueError):
    """A training run that cannot start or continue (one line, naming the file)."""


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Saved in every checkpoint; ``--resume`` refuses another configuration.

    out: run folder. proposals / images: COCO proposal files (``masa segment``) and the image
        folders their ``file_name`` entries are relative to.
    model: architecture (a registry name, e.g. ``masa_lite0``); init: a checkpoint to start from
        (domain adaptation; its architecture is used and ``model`` is ignored).
    steps, batch_size (view pairs per process), lr, momentum, weight_decay, warmup_steps,
    warmup_factor, decay_steps (``()``: at 8/12 and 11/12 of ``steps``, the authors' 12-epoch
    schedule), gamma, clip_grad.
    loss: ``unbiased`` (the authors' code) or ``paper``; negatives: ``image`` or ``batch``;
    track_weight, aux_weight, det_weight, temperature (``paper`` only).
    view_size: side of the square views (the authors: 1024); photometric: the App. E set;
    mixup: the MixUp step (the authors: on); resize_range: large-scale-jitter range (the authors: 0.1-2.0).
    proposal_nms, max_proposals: thinning of the proposals per image.
    detections: a video's detections file (MOTChallenge ``det.txt`` or JSON): train on tracklets of
        the frames in ``images[0]`` instead of proposals (:mod:`masa.training.tracklets`);
        tracklet_offset: the largest frame distance of a pair.
    """

    out: str
    proposals: tuple[str, ...]
    images: tuple[str, ...]
    model: str = "masa_lite0"
    init: str | None = None
    steps: int = 3000
    batch_size: int = 8
    lr: float = 0.02
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    warmup_factor: float = 0.001
    decay_steps: tuple[int, ...] = ()
    gamma: float = 0.1
    clip_grad: float = 35.0
    loss: str = "unbiased"
    negatives: str = "image"
    track_weight: float = 0.25
    aux_weight: float = 1.0
    det_weight: float = 1.0
    temperature: float = 0.07
    view_size: int = 512
    photometric: bool = False
    mixup: bool = True
    resize_range: tuple[float, float] = (0.1, 2.0)
    proposal_nms: float = 0.5
    max_proposals: int = 100
    detections: str | None = None
    tracklet_offset: int = 10
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    seed: int = 0
    workers: int = 1
    device: str = "auto"
    amp: bool = False
    checkpoint_every: int = 50
    log_every: int = 10
    eval_every: int = 0
    eval_sequences: tuple[str, ...] = ()
    progress: bool = True

    def __post_init__(self) -> None:
        if (not self.proposals and self.detections is None) or len(self.images) == 0:
            raise ValueError("--proposals (or --detections) and --images: expected a proposal file and an image folder")
        for name in ("steps", "batch_size", "checkpoint_every", "log_every", "view_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')}: expected >= 1, got {getattr(self, name)}")
        if self.loss not in ("unbiased", "paper"):
            raise ValueError(f"--loss: expected unbiased or paper, got {self.loss!r}")
        if self.negatives not in ("image", "batch"):
            raise ValueError(f"--negatives: expected image or batch, got {self.negatives!r}")
        if self.eval_every and not self.eval_sequences:
            raise ValueError("--eval-every needs --eval-sequence (a MOTChallenge folder with gt/gt.txt)")

    def schedule(self) -> tuple[int, ...]:
        return self.decay_steps or (int(self.steps * 8 / 12), int(self.steps * 11 / 12))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["sampling"] = SamplingConfig(**data.get("sampling", {}))
        for key in ("proposals", "images", "decay_steps", "eval_sequences", "resize_range"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up from ``lr * warmup_factor`` over ``warmup_steps``, then x ``gamma`` at each decay step."""
    factor = 1.0
    if step < config.warmup_steps:
        factor = config.warmup_factor + (1 - config.warmup_factor) * step / config.warmup_steps
    decays = sum(step >= s for s in config.schedule())
    return config.lr * factor * config.gamma**decays


# ---------------------------------------------------------------------------------------------
# Distributed set-up


@dataclass(frozen=True)
class _World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _init_world(device: torch.device) -> _World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return _World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return _World(rank=dist.get_rank(), size=dist.get_world_size())


# ---------------------------------------------------------------------------------------------
# The model's loss


class TrainStep(nn.Module):
    """Loss of one batch: ``forward(images (2B, 3, S, S), key_rois, ref_rois, targets, valid, det_boxes)``.

    A module so that ``DistributedDataParallel`` can wrap it (it hooks ``forward``).
    """

    def __init__(self, model: MasaModel, config: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.config = config

    def forward(self, images: Tensor, key_rois: Tensor, ref_rois: Tensor, targets: Tensor, valid: Tensor,
                det_boxes: list[Tensor] | None) -> dict[str, Tensor]:  # fmt: skip
        cfg = self.config
        adapter = self.model.adapter
        features = self.model.forward_features(images)
        embeddings = adapter.embed(features, torch.cat([key_rois, ref_rois]))
        key_emb, ref_emb = embeddings[: len(key_rois)], embeddings[len(key_rois) :]
        losses = track_losses(
            key_emb, ref_emb, targets.to(key_emb.device), valid.to(key_emb.device), variant=cfg.loss,
            weight=cfg.track_weight, aux_weight=cfg.aux_weight, temperature=cfg.temperature,
        )  # fmt: skip
        if det_boxes is not None and cfg.det_weight > 0 and getattr(adapter, "has_detection_heads", False):
            batch = len(det_boxes)
            size = (images.shape[-2], images.shape[-1])
            key_features = [f[:batch] for f in features]
            det = adapter.detection_losses(key_features, [b.to(images.device) for b in det_boxes], [size] * batch)
            losses.update({k: v * cfg.det_weight for k, v in det.items()})
        return losses


def _placeholder_pair(size: int) -> dict:
    """A blank view pair with one shared box: what a DDP rank with no usable sample computes (its loss x 0)."""
    view = View(image=np.full((size, size, 3), 114, np.uint8), boxes=np.array([[0, 0, size / 2, size / 2]], np.float32),
                ids=np.zeros(1, np.int64))  # fmt: skip
    return {"key": view, "ref": view}


def _prepare(items: list[dict], config: TrainConfig, generator: torch.Generator, device: torch.device) -> dict[str, Any]:
    """Stack the views and choose the boxes of the track loss (module docstring)."""
    batch = len(items)
    scfg = config.sampling
    cap = max(1, scfg.max_instances // batch)
    images, key_rois, ref_rois = [], [], []
    key_ids, ref_ids, key_img, ref_img, det_boxes = [], [], [], [], []
    for b, item in enumerate(items):
        key, ref = item["key"], item["ref"]
        images.append(torch.from_numpy(key.image))
        size = key.image.shape[:2]
        shared = np.flatnonzero(np.isin(key.ids, ref.ids))
        if len(shared) > cap:
            shared = np.sort(shared[torch.randperm(len(shared), generator=generator)[:cap].numpy()])
        k_boxes = torch.from_numpy(key.boxes[shared])
        k_ids = torch.from_numpy(key.ids[shared])
        k = sample_boxes(
            cand := candidate_boxes(k_boxes, size, scfg, generator), assign_by_iou(cand, k_boxes, scfg), scfg, generator
        )
        pos = k.labels >= 0
        key_rois.append(torch.cat([torch.full((int(pos.sum()), 1), float(b)), k.boxes[pos]], dim=1))
        key_ids.append(k_ids[k.labels[pos]])
        key_img.append(torch.full((int(pos.sum()),), b))
        r_boxes = torch.from_numpy(ref.boxes)
        r = sample_boxes(
            cand := candidate_boxes(r_boxes, size, scfg, generator), assign_by_iou(cand, r_boxes, scfg), scfg, generator
        )
        ids = torch.where(r.labels >= 0, torch.from_numpy(ref.ids)[r.labels.clamp(min=0)], torch.full_like(r.labels, -(1 << 40)))
        ref_rois.append(torch.cat([torch.full((len(r.boxes), 1), float(batch + b)), r.boxes], dim=1))
        ref_ids.append(ids)
        ref_img.append(torch.full((len(r.boxes),), b))
        det_boxes.append(torch.from_numpy(key.boxes))
    for item in items:
        images.append(torch.from_numpy(item["ref"].image))
    stacked = torch.stack(images).permute(0, 3, 1, 2).float().to(device)  # (2B, 3, S, S) RGB 0..255
    # Background samples get a sentinel id below every instance id (mix-in ids are -1 - k).
    kid, rid = torch.cat(key_ids), torch.cat(ref_ids)
    targets, valid = pair_targets(kid + (1 << 41), rid + (1 << 41), torch.cat(key_img), torch.cat(ref_img), config.negatives)
    return {
        "images": stacked,
        "key_rois": torch.cat(key_rois),
        "ref_rois": torch.cat(ref_rois),
        "targets": targets,
        "valid": valid,
        "det_boxes": det_boxes,
        "instances": int(targets.sum(dim=1).gt(0).sum()),
    }


# ---------------------------------------------------------------------------------------------
# Checkpoints


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state()}


def _read_checkpoint(path: Path, config: TrainConfig) -> dict[str, Any]:
    if not path.is_file():
        raise TrainError(f"{path}: no checkpoint to resume from")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported the same way
        first = (str(exc).strip().splitlines() or [""])[0]  # one line (torch's weights_only messages run to several)
        reason = "refused by weights_only=True" if first.startswith("Weights only load failed") else first[:160]
        raise TrainError(f"{path}: not a readable masa training checkpoint ({type(exc).__name__}: {reason})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise TrainError(f"{path}: not a masa training checkpoint (expected format {CHECKPOINT_FORMAT})")
    stored = state["train_config"]
    current = config.to_dict()
    differ = sorted(k for k in set(stored) | set(current) if k not in _RESUMABLE_CHANGES and stored.get(k) != current.get(k))
    if differ:
        detail = ", ".join(f"{k}: {stored.get(k)!r} -> {current.get(k)!r}" for k in differ[:4])
        raise TrainError(f"{path}: written by another training configuration ({detail}); use another --out or the same settings")
    old_schedule, new_schedule = TrainConfig.from_dict(stored).schedule(), config.schedule()
    if old_schedule != new_schedule:  # --steps moves the default decay steps: another learning-rate schedule
        raise TrainError(
            f"{path}: --steps {stored['steps']} -> {config.steps} moves the learning-rate decay steps {list(old_schedule)} -> "
            f"{list(new_schedule)}; resume with --steps {stored['steps']} (runs started with --decay-steps may change --steps)"
        )
    return state


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines of steps after ``step`` (written after the checkpoint a run resumes from)."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line)
        except (ValueError, KeyError):
            continue
    path.write_text("".join(f"{line}\n" for line in kept))


def plot_log(log: Path, png: Path) -> None:
    """Losses against steps from ``log.jsonl`` to ``png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    if not rows:
        return
    keys = sorted({k for r in rows for k in r if k.startswith("loss")})
    fig, ax = plt.subplots(figsize=(7, 4))
    for key in keys:
        ax.plot([r["step"] for r in rows if key in r], [r[key] for r in rows if key in r], label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=90)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# The loop


class _Positions(torch.utils.data.Sampler):
    """Batches of stream positions for this rank, from ``start`` to ``stop`` steps."""

    def __init__(self, start: int, stop: int, batch: int, world: _World) -> None:
        self.start, self.stop, self.batch, self.world = start, stop, batch, world

    def __iter__(self) -> Iterator[list[int]]:
        per_step = self.batch * self.world.size
        for step in range(self.start, self.stop):
            yield [step * per_step + self.world.rank + self.world.size * k for k in range(self.batch)]

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


def _dataset(config: TrainConfig) -> tuple[torch.utils.data.Dataset, str]:
    """Still images with proposals (the paper), or a video's frames with tracklets from its detections."""
    size = (config.view_size, config.view_size)
    if config.detections is not None:
        from masa.pipeline import load_detections
        from masa.training.tracklets import TrackletConfig, TrackletPairDataset, frame_paths, link_tracklets

        tracklet_config = TrackletConfig(max_offset=config.tracklet_offset)
        tracklets = link_tracklets(load_detections(config.detections), tracklet_config)
        view_config = ViewConfig(output_size=size, photometric=config.photometric, mixup=False, resize_ratio_range=config.resize_range)
        dataset = TrackletPairDataset(
            frame_paths(config.images), tracklets, view_config, seed=config.seed, max_offset=config.tracklet_offset
        )
        return dataset, f"{len(dataset)} key frames with tracklets ({len(tracklets.spans)} tracklets from {config.detections})"
    proposal_set = load_proposal_images(config.proposals, config.images, nms_iou=config.proposal_nms, max_per_image=config.max_proposals)
    view_config = ViewConfig(output_size=size, photometric=config.photometric, mixup=config.mixup, resize_ratio_range=config.resize_range)
    dataset = ViewPairDataset(proposal_set.images, view_config, seed=config.seed)
    note = f"{len(dataset)} images with proposals ({proposal_set.without_proposals} without, {len(proposal_set.missing)} not found)"
    return dataset, note


def _build_model(config: TrainConfig) -> tuple[MasaModel, MasaConfig]:
    if config.init:
        try:
            return load_masa(config.init)
        except (OSError, ValueError, RuntimeError) as exc:
            raise TrainError(f"--init {config.init}: {exc}") from exc
    if config.model.endswith(".json"):  # a MasaConfig written as JSON (MasaConfig.to_dict)
        try:
            model_config = MasaConfig.from_dict(json.loads(Path(config.model).read_text()))
        except (OSError, ValueError) as exc:
            raise TrainError(f"--model {config.model}: not a readable MASA config ({exc})") from exc
    else:
        model_config = get_config(config.model)
    return build_masa(model_config), model_config


def train(config: TrainConfig, *, resume: bool = False, on_step: Callable[[int], None] | None = None) -> Path:
    """Run (or, with ``resume``, continue) training; returns the path of ``model.safetensors``.

    ``on_step(step)`` is called after every finished optimizer step (tests use it to kill a run).
    """
    device = resolve_device(config.device)
    world = _init_world(device)
    out = Path(config.out)
    ckpt_path, log_path, eval_path = out / "checkpoint.pt", out / "log.jsonl", out / "eval.jsonl"
    state = _read_checkpoint(ckpt_path, config) if resume else None
    if not resume and world.main and ckpt_path.exists():
        raise TrainError(f"{ckpt_path}: a run is already there; pass --resume to continue it or choose another --out")
    if world.main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    torch.manual_seed(config.seed)
    model, model_config = _build_model(config)
    if state is not None:
        model.adapter.load_state_dict(state["adapter"])
    if getattr(model.backbone, "frozen", False) and hasattr(model.backbone, "fold_batchnorm"):
        model.backbone.fold_batchnorm()  # eval-mode BatchNorm folded into the convs: same maps, ~2x faster on CPU
    model.to(device)
    model.adapter.train()
    params = [p for p in model.adapter.parameters() if p.requires_grad]
    if not params:
        raise TrainError(f"model {model_config.name or config.model}: has no trainable parameters (the raw baseline cannot be trained)")
    optimizer = torch.optim.SGD(params, lr=learning_rate(config, 0), momentum=config.momentum, weight_decay=config.weight_decay)
    start = 0
    counters = {"skipped_unreadable": 0, "skipped_no_instance": 0, "pairs": 0}
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        start = int(state["step"])
        counters.update(state["counters"])
        if world.main:
            _truncate_log(log_path, start)
    step_module: nn.Module = TrainStep(model, config)
    if world.size > 1:
        step_module = nn.parallel.DistributedDataParallel(step_module, find_unused_parameters=False)

    dataset, note = _dataset(config)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=_Positions(start, config.steps, config.batch_size, world), num_workers=config.workers,
        collate_fn=collate, persistent_workers=False,
    )  # fmt: skip
    batches = iter(loader)  # draws the loader's base seed from the global RNG, so restore that RNG after it
    if state is not None:
        torch.set_rng_state(state["rng"]["torch"])
    if world.main and start == 0:
        with log_path.open("w") as fh:  # a new run: drop the rows of a run that died before its first checkpoint
            fh.write(json.dumps({"step": 0, "note": note}) + "\n")

    progress = None
    if world.main and config.progress:
        from tqdm import tqdm

        progress = tqdm(total=config.steps, initial=start, desc="masa train", unit="step", dynamic_ncols=True)
    window: dict[str, list[float]] = {}
    window_start, window_pairs = time.perf_counter(), 0
    amp = torch.autocast(device.type, dtype=torch.float16, enabled=config.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp and device.type == "cuda")
    step = start
    for step, items in enumerate(batches, start=start):
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([config.seed, 3, step, world.rank]).generate_state(1)[0]))
        usable = [it for it in items if "skip" not in it]
        counters["skipped_unreadable"] += sum(it.get("skip") == "unreadable" for it in items)
        counters["skipped_no_instance"] += sum(it.get("skip") == "no shared instance" for it in items)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(config, step)
        optimizer.zero_grad(set_to_none=True)
        if usable or world.size > 1:
            # nothing usable on this rank under DDP: a stand-in pair whose loss x 0 still runs DDP's forward and reduction
            batch = _prepare(usable or [_placeholder_pair(config.view_size)], config, generator, device)
            with amp:
                losses = step_module(batch["images"], batch["key_rois"], batch["ref_rois"], batch["targets"], batch["valid"],
                                     batch["det_boxes"])  # fmt: skip
            total = sum(losses.values())
            if not usable:
                losses, total = {}, total * 0.0
        else:  # nothing usable (single process): a zero loss
            losses = {}
            total = sum(p.sum() * 0.0 for p in params)
        scaler.scale(total).backward()
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, config.clip_grad)
        scaler.step(optimizer)
        scaler.update()
        counters["pairs"] += len(usable) * world.size
        window_pairs += len(usable) * world.size
        for key, value in losses.items():
            window.setdefault(key, []).append(float(value.detach()))
        window.setdefault("grad_norm", []).append(float(grad_norm))
        done = step + 1
        if progress is not None:
            progress.update(1)
            progress.set_postfix({k: f"{np.mean(v):.3f}" for k, v in window.items() if k.startswith("loss")})
        if world.main and (done % config.log_every == 0 or done == config.steps):
            elapsed = time.perf_counter() - window_start
            row = {"step": done, "lr": learning_rate(config, step), **{k: float(np.mean(v)) for k, v in window.items()}}
            row.update(samples_per_s=window_pairs / max(elapsed, 1e-9), **counters)
            if hasattr(model.adapter, "log_scale"):
                row["embedding_norm"] = float(model.adapter.log_scale.detach().exp())
            with log_path.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            window, window_start, window_pairs = {}, time.perf_counter(), 0
        if done % config.checkpoint_every == 0 or done == config.steps:
            _checkpoint(model, model_config, optimizer, config, done, counters, world, out)
        if config.eval_every and (done % config.eval_every == 0 or done == config.steps) and world.main:
            _evaluate(model, model_config, config, done, device, eval_path)
            model.adapter.train()
        if on_step is not None:
            on_step(done)
    if progress is not None:
        progress.close()
    if start >= config.steps and world.main:  # already finished: make sure the exported model exists
        _checkpoint(model, model_config, optimizer, config, start, counters, world, out)
    return out / "model.safetensors"


def _checkpoint(model: MasaModel, model_config: MasaConfig, optimizer: torch.optim.Optimizer, config: TrainConfig,
                step: int, counters: dict, world: _World, out: Path) -> None:  # fmt: skip
    if world.main:
        state = {
            "format": CHECKPOINT_FORMAT,
            "step": step,
            "train_config": config.to_dict(),
            "model_config": model_config.to_dict(),
            "adapter": {k: v.detach().cpu() for k, v in model.adapter.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "rng": _rng_state(),
            "counters": dict(counters),
        }
        _atomic_save(state, out / "checkpoint.pt")
        save_masa_checkpoint(model, model_config, out / "model.safetensors")
        if (out / "log.jsonl").is_file():
            try:
                plot_log(out / "log.jsonl", out / "loss.png")
            except Exception as exc:  # noqa: BLE001 - a plot must never stop training
                print(f"masa train: warning: could not plot the loss log ({exc})")
    if world.size > 1:
        dist.barrier()


def _evaluate(model: MasaModel, model_config: MasaConfig, config: TrainConfig, step: int, device: torch.device, path: Path) -> None:
    from masa.modeling.predictor import MasaPredictor
    from masa.training.evaluate import track_eval

    model.adapter.eval()
    predictor = MasaPredictor(model, model_config, device=device)
    scores = track_eval(predictor, config.eval_sequences)
    with path.open("a") as fh:
        fh.write(json.dumps({"step": step, **scores}) + "\n")


def read_log(path: str | Path) -> list[dict]:
    """The rows of a run's ``log.jsonl`` (notes included)."""
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]

