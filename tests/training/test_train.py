"""``masa train`` end to end on tiny synthetic data: outputs, exact resume after SIGKILL, refusals,
unreadable images, atomic checkpoints, two-process DDP, the CLI and ``--init``.

Every run uses 128 px views, 2 pairs per step and a handful of steps (about a second each). Runs
compared for bit-identical weights use one thread in every process.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from masa.cli import main
from masa.modeling.build import build_masa, build_predictor, load_masa
from masa.modeling.config import get_config
from masa.training.data import load_proposal_images, sample_order
from masa.training.train import TrainConfig, TrainError, learning_rate, read_log, train

REPO = Path(__file__).resolve().parents[2]
STEPS = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Bit-identical comparisons across processes: one intra-op thread here and in the subprocesses."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_dataset(root: Path, count: int = 5, corrupt: tuple[int, ...] = (), seed: int = 0) -> tuple[Path, Path]:
    """``count`` 160x120 PNGs with 4 coloured rectangles on noise, and their proposals (COCO JSON, the rectangles).

    Images listed in ``corrupt`` are garbage bytes (with their proposals still in the JSON)."""
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(count):
        name = f"img{i:02d}.png"
        image = rng.integers(0, 50, (120, 160, 3), dtype=np.uint8)
        for _ in range(4):
            w, h = int(rng.integers(30, 70)), int(rng.integers(25, 55))
            x, y = int(rng.integers(0, 160 - w)), int(rng.integers(0, 120 - h))
            image[y : y + h, x : x + w] = rng.integers(70, 256, 3)
            image[y : y + h : 4, x : x + w] //= 2  # some texture
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": 1, "bbox": [x, y, w, h], "score": 0.9})
        if i in corrupt:
            (images_dir / name).write_bytes(os.urandom(300))
        else:
            assert cv2.imwrite(str(images_dir / name), image)
        images.append({"id": i + 1, "file_name": name, "height": 120, "width": 160})
    proposals = root / "proposals.json"
    proposals.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "object"}]}))
    return images_dir, proposals


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    return write_dataset(tmp_path_factory.mktemp("data"))


def make_config(out: Path, data: tuple[Path, Path], **changes) -> TrainConfig:
    images, proposals = data
    base = dict(
        out=str(out), proposals=(str(proposals),), images=(str(images),), steps=STEPS, batch_size=2, view_size=128,
        workers=0, checkpoint_every=2, log_every=1, progress=False, device="cpu",
    )  # fmt: skip
    base.update(changes)
    return TrainConfig(**base)


def load_checkpoint(out: Path) -> dict:
    return torch.load(Path(out) / "checkpoint.pt", map_location="cpu", weights_only=True)


def assert_same_state(a: dict, b: dict) -> None:
    """Adapter, optimizer state, step and counters exactly equal."""
    assert a["step"] == b["step"]
    assert a["counters"] == b["counters"]
    assert a["adapter"].keys() == b["adapter"].keys()
    for key in a["adapter"]:
        assert torch.equal(a["adapter"][key], b["adapter"][key]), key
    for index, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][index]["momentum_buffer"]), index
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])


def loss_rows(out: Path) -> list[dict]:
    return [row for row in read_log(Path(out) / "log.jsonl") if "note" not in row]


def run_python(script: str, *args: str, tmp_path: Path, timeout: float = 180, module: list[str] | None = None) -> tuple[int, str]:
    """Run ``script`` (text) with this interpreter (optionally under ``python -m <module...>``); output goes to a file
    (a pipe would also wait for orphaned loader workers)."""
    path = tmp_path / f"script_{abs(hash(script)) % 10**8}.py"
    path.write_text(textwrap.dedent(script))
    log = tmp_path / f"{path.stem}.log"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    command = [sys.executable, *(["-m", *module] if module else []), str(path), *args]
    with log.open("w") as fh:
        # its own session, so that a hung run (e.g. DDP ranks out of step) is ended with all its processes
        proc = subprocess.Popen(command, cwd=REPO, stdout=fh, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"{' '.join(command[1:3])}... did not finish in {timeout} s:\n{log.read_text()[-3000:]}")
    return code, log.read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data) -> dict:
    """An uninterrupted run of STEPS steps (checkpoints every 2), with the torch RNG state after each
    step: the reference of the resume tests."""
    out = tmp_path_factory.mktemp("run") / "a"
    rng: dict[int, torch.Tensor] = {}
    train(make_config(out, data), on_step=lambda step: rng.__setitem__(step, torch.get_rng_state()))
    return {"out": out, "rng": rng}


@pytest.fixture(scope="module")
def run_a(reference) -> Path:
    return reference["out"]


# -- a whole run --------------------------------------------------------------------------------


def test_run_writes_its_outputs(run_a, data):
    config = make_config(run_a, data)
    for name in ("checkpoint.pt", "model.safetensors", "log.jsonl", "loss.png", "train_config.json"):
        assert (run_a / name).is_file() and (run_a / name).stat().st_size > 0, name
    assert not list(run_a.glob(".*tmp*")), "temporary checkpoint files left behind"
    assert json.loads((run_a / "train_config.json").read_text()) == config.to_dict()

    rows = read_log(run_a / "log.jsonl")
    assert rows[0]["step"] == 0 and "5 images with proposals" in rows[0]["note"]
    rows = rows[1:]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    assert sum("loss_track" in r for r in rows) >= STEPS - 1  # a step whose pairs were all skipped has no loss
    for row in rows:
        for key in ("loss_track", "loss_track_aux", "grad_norm", "embedding_norm", "samples_per_s"):
            assert math.isfinite(row.get(key, 0.0)), (row["step"], key)
        assert row.get("loss_track", 1.0) > 0 and row.get("loss_track_aux", 0.0) >= 0
        assert row["lr"] == pytest.approx(learning_rate(config, row["step"] - 1))
        assert row["skipped_unreadable"] == 0
    assert rows[-1]["pairs"] + rows[-1]["skipped_no_instance"] == 2 * STEPS

    state = load_checkpoint(run_a)
    assert state["format"] == "masa-train/1" and state["step"] == STEPS
    assert state["train_config"] == config.to_dict()
    assert state["model_config"]["name"] == "masa_lite0"
    init = build_masa(get_config("masa_lite0")).adapter.state_dict()
    assert not torch.equal(state["adapter"]["channel_log_weight"], init["channel_log_weight"])  # zero-initialised, trained


def test_exported_model_loads_and_embeds(run_a, data):
    model, config = load_masa(run_a / "model.safetensors")
    assert config.name == "masa_lite0"
    state = load_checkpoint(run_a)["adapter"]
    for key, value in model.adapter.state_dict().items():
        assert torch.equal(value, state[key]), key

    predictor = build_predictor(run_a / "model.safetensors")
    image = cv2.cvtColor(cv2.imread(str(data[0] / "img00.png")), cv2.COLOR_BGR2RGB)
    boxes = np.array([[10, 10, 60, 50], [80, 30, 150, 110], [0, 0, 160, 120]], dtype=np.float32)
    emb = predictor.embed(image, boxes)
    assert emb.shape == (3, predictor.embedding_dim) and torch.isfinite(emb).all()
    norm = float(state["log_scale"].exp())
    assert torch.allclose(emb.norm(dim=1), torch.full((3,), norm), rtol=1e-4)
    assert loss_rows(run_a)[-1]["embedding_norm"] == pytest.approx(norm, rel=1e-6)
    dets = predictor.predict(image, boxes)
    assert torch.allclose(dets.embeddings, emb, atol=1e-5)


# -- resume after SIGKILL -----------------------------------------------------------------------

KILL_SCRIPT = """
    import json, os, signal, sys
    import torch
    torch.set_num_threads(1)
    from masa.training.train import TrainConfig, train

    config = TrainConfig.from_dict(json.loads(sys.argv[1]))
    kill_at = int(sys.argv[2])

    def on_step(step):
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    train(config, on_step=on_step)
    print("not killed")
"""


def test_sigkill_then_resume_is_bit_identical(run_a, data, tmp_path):
    out = tmp_path / "b"
    config = make_config(out, data)
    # step 5 is done after the step-4 checkpoint and before the next one: it is lost and redone
    code, output = run_python(KILL_SCRIPT, json.dumps(config.to_dict()), "5", tmp_path=tmp_path)
    assert code == -signal.SIGKILL, output
    assert load_checkpoint(out)["step"] == 4
    assert [r["step"] for r in loss_rows(out)] == [1, 2, 3, 4, 5]  # step 5 was logged, then lost

    train(config, resume=True)
    assert_same_state(load_checkpoint(run_a), load_checkpoint(out))
    model_a, _ = load_masa(run_a / "model.safetensors")
    model_b, _ = load_masa(out / "model.safetensors")
    for (key, value_a), value_b in zip(model_a.adapter.state_dict().items(), model_b.adapter.state_dict().values()):
        assert torch.equal(value_a, value_b), key
    # the log has each step once, with the same losses as the unbroken run
    rows_a, rows_b = loss_rows(run_a), loss_rows(out)
    assert [r["step"] for r in rows_b] == list(range(1, STEPS + 1))
    for ra, rb in zip(rows_a, rows_b):
        for key in ("loss_track", "loss_track_aux", "grad_norm", "lr", "pairs", "embedding_norm"):
            assert ra.get(key) == rb.get(key), (ra["step"], key)


def test_interrupted_run_resumed_with_a_loader_worker_is_exact(reference, data, tmp_path):
    """Resuming with workers=1 gives the stream of workers=0, and the torch RNG (used by e.g. the
    detection heads' sampling) continues as in the unbroken run: the loader's seed draw at start-up
    must not shift it."""
    # (the interrupted part runs without a worker: a loader iterator left to the cyclic garbage
    # collector by an exception takes MP_STATUS_CHECK_INTERVAL = 5 s to shut its worker down)
    config = make_config(tmp_path / "b", data, workers=0)
    rng: dict[int, torch.Tensor] = {}

    def stop_at_5(step):
        rng[step] = torch.get_rng_state()
        if step == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, on_step=stop_at_5)
    assert load_checkpoint(tmp_path / "b")["step"] == 4
    train(replace(config, workers=1), resume=True, on_step=lambda step: rng.__setitem__(step, torch.get_rng_state()))
    assert sorted(rng) == list(range(1, STEPS + 1))
    for step in range(1, STEPS + 1):
        assert torch.equal(reference["rng"][step], rng[step]), step
    assert_same_state(load_checkpoint(reference["out"]), load_checkpoint(tmp_path / "b"))


def test_resume_of_a_finished_run_only_exports(run_a, data, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(run_a, out)
    (out / "model.safetensors").unlink()
    before = load_checkpoint(out)
    # workers / log_every / checkpoint_every / progress / out may change on resume
    train(make_config(out, data, workers=1, log_every=3, checkpoint_every=5), resume=True)
    assert (out / "model.safetensors").is_file()
    assert_same_state(before, load_checkpoint(out))
    assert [r["step"] for r in loss_rows(out)] == list(range(1, STEPS + 1))


# -- refusals -----------------------------------------------------------------------------------


def test_resume_without_checkpoint_is_refused(data, tmp_path):
    with pytest.raises(TrainError, match="no checkpoint") as info:
        train(make_config(tmp_path / "empty", data), resume=True)
    assert str(tmp_path / "empty" / "checkpoint.pt") in str(info.value)


@pytest.mark.parametrize("content", ["garbage", "not_a_dict", "other_format"])
def test_resume_from_a_broken_checkpoint_is_refused(data, tmp_path, content):
    out = tmp_path / "broken"
    out.mkdir()
    path = out / "checkpoint.pt"
    if content == "garbage":
        path.write_bytes(os.urandom(2000))
    elif content == "not_a_dict":
        torch.save([1, 2, 3], path)
    else:
        torch.save({"format": "something/else", "step": 3}, path)
    with pytest.raises(TrainError) as info:
        train(make_config(out, data), resume=True)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("change", "named"),
    [({"lr": 0.01}, "lr"), ({"batch_size": 3}, "batch_size"), ({"seed": 1}, "seed"), ({"loss": "paper"}, "loss"),
     ({"steps": 12}, "decay steps")],
)  # fmt: skip
def test_resume_with_another_configuration_is_refused(run_a, data, tmp_path, change, named):
    out = tmp_path / "other"
    out.mkdir()
    shutil.copy(run_a / "checkpoint.pt", out / "checkpoint.pt")
    with pytest.raises(TrainError, match=named) as info:
        train(make_config(out, data, **change), resume=True)
    assert str(out / "checkpoint.pt") in str(info.value)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt"]  # nothing written


def test_new_run_over_an_existing_checkpoint_is_refused(run_a, data, tmp_path):
    out = tmp_path / "existing"
    out.mkdir()
    shutil.copy(run_a / "checkpoint.pt", out / "checkpoint.pt")
    with pytest.raises(TrainError, match="--resume") as info:
        train(make_config(out, data))
    assert str(out / "checkpoint.pt") in str(info.value)
    assert_same_state(load_checkpoint(run_a), load_checkpoint(out))


def test_new_run_replaces_the_log_of_a_run_that_died_before_its_first_checkpoint(data, tmp_path):
    config = make_config(tmp_path / "fresh", data, steps=2, checkpoint_every=5)

    def crash(step):
        raise RuntimeError("died")

    with pytest.raises(RuntimeError, match="died"):
        train(config, on_step=crash)
    assert not (tmp_path / "fresh" / "checkpoint.pt").exists()
    train(config)
    rows = read_log(tmp_path / "fresh" / "log.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]


# -- unreadable images, atomic checkpoints ------------------------------------------------------


def test_unreadable_image_is_skipped_and_counted(tmp_path):
    images, proposals = write_dataset(tmp_path / "data", count=4, corrupt=(2,))
    steps, batch = 4, 2
    config = make_config(tmp_path / "run", (images, proposals), steps=steps, checkpoint_every=5)
    train(config)
    found = load_proposal_images(config.proposals, config.images)
    corrupt = [i for i, im in enumerate(found.images) if im.path.name == "img02.png"]
    assert len(found.images) == 4 and len(corrupt) == 1
    expected = sum(sample_order(p, 4, config.seed) == corrupt[0] for p in range(steps * batch))
    assert expected > 0
    rows = loss_rows(tmp_path / "run")
    assert rows[-1]["step"] == steps and rows[-1]["skipped_unreadable"] == expected
    assert all(math.isfinite(r["grad_norm"]) for r in rows)
    assert all(math.isfinite(r["loss_track"]) for r in rows if "loss_track" in r)
    assert load_checkpoint(tmp_path / "run")["counters"]["skipped_unreadable"] == expected


def test_failed_checkpoint_write_keeps_the_previous_one(data, tmp_path, monkeypatch):
    out = tmp_path / "atomic"
    config = make_config(out, data, steps=3)
    real_save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        Path(path).write_bytes(b"PK\x03\x04 partial")
        raise OSError(28, "No space left on device")

    def break_disk_after_2(step):
        if step == 2:
            monkeypatch.setattr(torch, "save", full_disk)

    with pytest.raises(OSError, match="No space"):
        train(config, on_step=break_disk_after_2)
    monkeypatch.setattr(torch, "save", real_save)
    state = load_checkpoint(out)  # still the step-2 checkpoint, readable
    assert state["step"] == 2
    train(config, resume=True)  # and the run continues from it
    assert load_checkpoint(out)["step"] == 3
    assert not (out / ".checkpoint.pt.tmp").exists()


# -- domain adaptation (--init) -----------------------------------------------------------------


def test_init_starts_from_the_given_model(run_a, data, tmp_path):
    # lr 0: the weights after one step are the starting weights; the architecture comes from the file
    out = tmp_path / "adapted"
    train(make_config(out, data, init=str(run_a / "model.safetensors"), model="lite", lr=0.0, steps=1))
    start, adapted = load_checkpoint(run_a), load_checkpoint(out)
    assert adapted["model_config"] == start["model_config"]
    for key, value in start["adapter"].items():
        assert torch.equal(value, adapted["adapter"][key]), key
    fresh = build_masa(get_config("masa_lite0")).adapter.state_dict()
    assert not torch.equal(adapted["adapter"]["channel_log_weight"], fresh["channel_log_weight"])


def test_init_with_a_missing_file_is_refused(data, tmp_path):
    with pytest.raises(TrainError, match="--init"):
        train(make_config(tmp_path / "x", data, init=str(tmp_path / "missing.safetensors")))


# -- the command line ---------------------------------------------------------------------------


def cli_args(out: Path, data: tuple[Path, Path], *extra: str) -> list[str]:
    images, proposals = data
    return ["train", "--out", str(out), "--images", str(images), "--proposals", str(proposals), "--steps", "2",
            "--batch-size", "2", "--view-size", "128", "--workers", "0", "--device", "cpu", "--checkpoint-every", "1",
            "--log-every", "1", "--no-progress", *extra]  # fmt: skip


def test_cli_train(data, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(cli_args(out, data, "--loss", "paper", "--negatives", "batch")) == 0
    assert "wrote" in capsys.readouterr().out
    assert (out / "model.safetensors").is_file()
    state = load_checkpoint(out)
    assert state["step"] == 2 and state["train_config"]["loss"] == "paper" and state["train_config"]["negatives"] == "batch"
    assert all(math.isfinite(r["loss_track"]) for r in loss_rows(out))
    # --resume of the finished run works, a new run in the same folder does not
    assert main(cli_args(out, data, "--loss", "paper", "--negatives", "batch", "--resume")) == 0
    capsys.readouterr()
    assert main(cli_args(out, data)) == 2
    assert "--resume" in capsys.readouterr().err


def test_cli_train_without_proposals_segments_the_images_first(tmp_path, capsys):
    # the `masa segment` file (graph segmenter) is what training reads: file names relative to --images
    images, _ = write_dataset(tmp_path / "data", count=1)
    out = tmp_path / "cli_seg"
    args = cli_args(out, (images, Path("unused")), "--steps", "1")
    index = args.index("--proposals")
    del args[index : index + 2]
    assert main(args) == 0
    capsys.readouterr()
    coco = json.loads((out / "proposals.json").read_text())
    assert [im["file_name"] for im in coco["images"]] == ["img00.png"] and coco["annotations"]
    assert load_checkpoint(out)["train_config"]["proposals"] == [str(out / "proposals.json")]
    assert [r["step"] for r in loss_rows(out)] == [1]


@pytest.mark.parametrize(
    ("change", "message"),
    [(("--proposals", "missing.json"), "missing.json"), (("--images", "no_such_dir"), "no_such_dir"), (("--steps", "0"), "--steps"),
     (("--resume",), "no checkpoint")],
)  # fmt: skip
def test_cli_bad_arguments(data, tmp_path, capsys, change, message):
    args = cli_args(tmp_path / "bad", data)
    if change[0] in ("--proposals", "--images", "--steps"):
        index = args.index(change[0])
        args[index + 1] = str(tmp_path / change[1]) if change[0] != "--steps" else change[1]
    else:
        args.append(change[0])
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# -- two processes (DDP) ------------------------------------------------------------------------

DDP_SCRIPT = """
    import json, os, sys
    import torch
    torch.set_num_threads(1)
    import masa.training.train as train_module

    config = train_module.TrainConfig.from_dict(json.loads(sys.argv[1]))
    weights = {}
    checkpoint = train_module._checkpoint

    def spy(model, *args, **kwargs):  # every rank's weights at its last checkpoint
        weights.update({k: v.detach().clone() for k, v in model.adapter.state_dict().items()})
        return checkpoint(model, *args, **kwargs)

    train_module._checkpoint = spy
    train_module.train(config)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    torch.save({"world": world, "adapter": weights}, os.path.join(config.out, f"rank{rank}.pt"))
"""


def ddp_available() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_gloo_available()


@pytest.mark.slow
@pytest.mark.skipif(not ddp_available(), reason="torch.distributed with the gloo backend is not available")
def test_two_process_ddp(tmp_path):
    # 3 images, one unreadable, 1 pair per rank: some steps have a rank with nothing usable, which
    # must still take part in the gradient all-reduce (it used to hang)
    images, proposals = write_dataset(tmp_path / "data", count=3, corrupt=(1,))
    out = tmp_path / "ddp"
    config = make_config(out, (images, proposals), steps=4, batch_size=1, checkpoint_every=2)
    per_step = [[sample_order(2 * s + r, 3, config.seed) for r in range(2)] for s in range(4)]
    assert any(1 in ranks for ranks in per_step) and any(1 not in ranks for ranks in per_step)
    code, output = run_python(
        DDP_SCRIPT, json.dumps(config.to_dict()), tmp_path=tmp_path, timeout=180,
        module=["torch.distributed.run", "--nproc_per_node", "2", "--standalone"],
    )  # fmt: skip
    assert code == 0, output[-3000:]
    state = load_checkpoint(out)
    assert state["step"] == 4
    rows = loss_rows(out)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(math.isfinite(r["grad_norm"]) for r in rows)
    assert any("loss_track" in r for r in rows) and all(math.isfinite(r["loss_track"]) for r in rows if "loss_track" in r)
    rank0, rank1 = (torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert rank0["world"] == rank1["world"] == 2
    for key, value in rank0["adapter"].items():  # gradients were averaged: both ranks hold the same weights
        assert torch.equal(value, rank1["adapter"][key]), key
        assert torch.equal(value, state["adapter"][key]), key
