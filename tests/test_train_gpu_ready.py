"""GPU-ready training, checked on CPU: bf16 autocast, fp16 refused off CUDA, torch.compile, loader workers."""
import math

import pytest
import torch

from fadepth.cli import main
from fadepth.config import ConfigError, load_config
from fadepth.train import EpochSampler, Trainer, batches, make_loader

TINY = [
    "data.height=32", "data.width=96", "train.batch_size=2", "train.progress=false",
    "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1",
    "data.synthetic.frames_per_sequence=6", "eval.max_images=2", "train.log_every=1", "train.device=cpu",
]


def tiny_cfg(tmp_path, *extra):
    return load_config(overrides=TINY + [f"train.out_dir={tmp_path}", *extra])


def first_step_loss(tmp_path, *extra) -> float:
    trainer = Trainer(tiny_cfg(tmp_path, *extra))
    from fadepth.data import build_dataset

    batch = next(batches(build_dataset(trainer.cfg.data, "train"), trainer.cfg, 0))
    return float(trainer.train_step(batch)["loss"])


def test_bf16_training_step_is_finite_and_within_5_percent_of_fp32(tmp_path):
    fp32 = first_step_loss(tmp_path / "fp32")
    bf16 = first_step_loss(tmp_path / "bf16", "train.precision=bf16")
    assert math.isfinite(bf16)
    assert abs(bf16 - fp32) / abs(fp32) < 0.05, (fp32, bf16)


def test_fp16_on_cpu_is_refused_with_one_line_before_any_model_is_built(tmp_path, capsys):
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        Trainer(tiny_cfg(tmp_path, "train.precision=fp16"))
    assert main(["train", *TINY, f"train.out_dir={tmp_path}", "train.precision=fp16"]) == 2
    captured = capsys.readouterr()
    out = (captured.out + captured.err).strip()
    assert len(out.splitlines()) == 1 and "use train.precision=bf16 on CPU" in out
    assert not (tmp_path / "checkpoint.pt").exists()


def test_compiled_training_step_matches_eager(tmp_path, monkeypatch):
    # The eager backend runs dynamo's graph capture (the part that can break on our modules) without
    # inductor's C++ build, which a 2-core CI machine cannot afford.
    monkeypatch.setattr("fadepth.train.compile_module", lambda m: torch.compile(m, backend="eager"))
    eager = first_step_loss(tmp_path / "eager")
    compiled = first_step_loss(tmp_path / "compiled", "train.compile=true")
    assert compiled == pytest.approx(eager, rel=1e-5)


def test_loader_workers_pin_and_persist():
    cfg = load_config(overrides=TINY + ["data.num_workers=2"])
    loader = make_loader(list(range(8)), cfg, EpochSampler(8, 0), torch.device("cpu"))
    assert loader.num_workers == 2 and loader.persistent_workers and not loader.pin_memory
    assert make_loader([0] * 8, cfg, EpochSampler(8, 0), torch.device("cuda")).pin_memory  # auto: on for CUDA
    cfg = load_config(overrides=TINY + ["data.pin_memory=false"])
    assert not make_loader([0] * 8, cfg, EpochSampler(8, 0), torch.device("cuda")).pin_memory


def test_loader_workers_resume_mid_stream_with_the_same_samples():
    """Augmentation draws are seeded per sample (train seed, epoch, position): a stream restarted at iteration
    3 with persistent workers gives the uninterrupted stream's batches, as a single process does (images
    to float rounding: the workers' interpolation runs on one thread). Exact resume of the training state
    itself is tests/test_train.py's resume test."""
    import itertools

    from fadepth.data import build_dataset

    single = load_config(overrides=TINY)
    workers = load_config(overrides=TINY + ["data.num_workers=2"])
    dataset = build_dataset(single.data, "train")  # 4 snippets: 2 batches per epoch, so 5 batches span 3 epochs
    full = list(itertools.islice(batches(dataset, single, 0), 5))
    for cfg in (single, workers):
        resumed = list(itertools.islice(batches(dataset, cfg, 3), 2))
        for a, b in zip(full[3:], resumed):
            assert a["id"] == b["id"]
            assert (a["images"] - b["images"]).abs().max() < 1e-5
            assert (a["K"] == b["K"]).all()
    assert any((a["images"] != b["images"]).any() for a, b in zip(full[:2], full[2:4])), "augmentation differs by epoch"
