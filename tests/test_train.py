"""Trainer: runs, checkpoints atomically, resumes exactly, and the CLI chain train -> eval -> predict."""
import json

import numpy as np
import pytest
import torch

from fadepth.checkpoint import CheckpointError, load_checkpoint
from fadepth.config import load_config
from fadepth.contracts import VAL_CONSTANT
from fadepth.models import load_model
from fadepth.train import NonFiniteLossError, Trainer, resumable_state, train, validation_line

TINY = [
    "data.height=32", "data.width=96", "train.batch_size=2", "train.progress=false",
    "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1",
    "data.synthetic.frames_per_sequence=6", "eval.max_images=2", "train.log_every=1",
]


def tiny_cfg(tmp_path, iterations=3, extra=()):
    return load_config(overrides=TINY + [f"train.iterations={iterations}", f"train.out_dir={tmp_path}", *extra])


def test_train_writes_checkpoint_and_metrics(tmp_path):
    seen = []

    class Recorder:
        def on_step(self, it, scalars):
            seen.append((it, scalars["loss"]))

        def on_eval(self, it, metrics):
            evals.append(("val", it))
            constants.append(metrics[VAL_CONSTANT])

        def on_test(self, it, metrics):
            evals.append(("test", it, metrics["abs_rel"]))

    evals, constants = [], []
    result = train(tiny_cfg(tmp_path, extra=["train.val_every=2"]), callbacks=[Recorder()])
    assert [it for it, _ in seen] == [1, 2, 3]
    # the validation curve holds validation only; the final test evaluation is announced on its own
    assert evals == [("val", 2), ("test", 3, result.metrics["abs_rel"])]
    # each validation carries the collapse level: the best constant depth's abs_rel on the same split
    assert len(constants) == 1 and 0 < constants[0] < 2 and VAL_CONSTANT not in result.metrics
    assert all(np.isfinite(v) for _, v in seen)
    assert set(result.metrics) >= {"abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3"}
    state = load_checkpoint(result.checkpoint)
    assert state["iteration"] == 3 and (tmp_path / "config.yaml").is_file()
    assert not list(tmp_path.glob(".*fadepth-tmp-*")), "no temporary files left behind"


def test_validation_line_states_abs_rel_against_the_constant_depth():
    line = validation_line(300, {"abs_rel": 0.334, "a1": 0.5, VAL_CONSTANT: 0.714})
    assert line == "val @ 300: abs_rel 0.334 = 0.47x the best constant depth (0.714); a1 0.500"


def test_trainer_drives_the_cr_warmup(tmp_path):
    seen = {}

    class Recorder:
        def on_step(self, it, scalars):
            seen[it] = scalars["cr/depth_consistency"]

    train(tiny_cfg(tmp_path, iterations=4, extra=["loss.cr.warmup_fraction=0.5"]), callbacks=[Recorder()])
    assert seen[1] == seen[2] == 0  # iterations 0 and 1 (reported as 1 and 2) are the warm-up
    assert seen[3] > 0 and seen[4] > 0

def test_resume_continues_exactly_where_an_interrupted_run_stopped(tmp_path):
    reference = train(tiny_cfg(tmp_path / "full", iterations=4), resume=False).history

    class Crash:
        def on_step(self, it, scalars):
            if it == 3:
                raise KeyboardInterrupt  # the checkpoint of iteration 2 is on disk

    cfg = tiny_cfg(tmp_path / "part", iterations=4, extra=["train.checkpoint_every=2"])
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[Crash()])
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["iteration"] == 2
    resumed = train(cfg).history
    assert [h["iteration"] for h in resumed] == [1, 2, 3, 4]
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in reference], rel=1e-5)


def test_resume_refuses_a_different_config(tmp_path):
    train(tiny_cfg(tmp_path, iterations=1))
    with pytest.raises(RuntimeError, match="different configuration"):
        train(tiny_cfg(tmp_path, iterations=1, extra=["optim.lr=1e-3"]))
    # the CLI's check before training maps the tensors instead of reading them: same state, same refusal
    other = tiny_cfg(tmp_path, iterations=1, extra=["optim.lr=1e-3"])
    with pytest.raises(RuntimeError, match="different configuration"):
        resumable_state(other, tmp_path / "checkpoint.pt", mmap=True)
    mapped, read = (load_checkpoint(tmp_path / "checkpoint.pt", mmap=m) for m in (True, False))
    assert mapped["config"] == read["config"] and mapped["iteration"] == read["iteration"] == 1
    assert all(torch.equal(mapped["model"][k], v) for k, v in read["model"].items())


def test_nan_loss_raises(tmp_path, monkeypatch):
    t = Trainer(tiny_cfg(tmp_path, iterations=1))
    original = t.objective.forward

    def poisoned(*args, **kwargs):
        out = original(*args, **kwargs)
        out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(t.objective, "forward", poisoned)
    with pytest.raises(NonFiniteLossError):
        t.fit(resume=False)


def test_load_model_and_bad_checkpoint(tmp_path):
    result = train(tiny_cfg(tmp_path, iterations=1))
    net, cfg = load_model(result.checkpoint)
    assert not net.training and cfg.data.height == 32
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="bad.pt"):
        load_model(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")


def test_cli_train_eval_predict(tmp_path):
    from PIL import Image

    from fadepth.cli import main

    out = tmp_path / "run"
    assert main(["train", *TINY, "train.iterations=2", f"train.out_dir={out}", "--json", str(tmp_path / "m.json")]) == 0
    ckpt = out / "checkpoint.pt"
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["abs_rel"] > 0
    assert main(["eval", "--checkpoint", str(ckpt), "--json", str(tmp_path / "e.json")]) == 0
    assert "a1" in json.loads((tmp_path / "e.json").read_text())
    img = tmp_path / "frame.png"
    Image.fromarray((np.random.rand(40, 100, 3) * 255).astype(np.uint8)).save(img)
    assert main(["predict", "--checkpoint", str(ckpt), str(img), "--out", str(tmp_path / "pred")]) == 0
    disp_png = tmp_path / "pred" / "frame_disp.png"
    depth = np.load(tmp_path / "pred" / "frame_depth.npy")
    assert disp_png.is_file() and depth.shape == (40, 100) and np.all(depth > 0)
    assert main(["train", "model.nonsense=1"]) == 2
