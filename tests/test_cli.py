"""The first hour of a new user (issue 23): --version, "did you mean", examples in every --help, the built-in
`fadepth train` recipe and its banner, eval's protocol from the data, export at the training size, and
`fadepth sweep` / `fadepth report` as the scripts' entry points."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from fadepth.cli import main as fadepth

REPO = Path(__file__).resolve().parents[1]
SUBCOMMANDS = ["train", "eval", "predict", "export", "complexity", "kitti", "synthetic", "sweep", "report"]


def one_error_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        fadepth(["--version"])
    assert exit_.value.code == 0
    import fadepth as package

    assert capsys.readouterr().out.startswith(f"fadepth {package.__version__}")


def test_unknown_key_suggests_the_closest(tmp_path, capsys):
    assert fadepth(["train", "model.pb_dsrr=0.5", "--dry-run"]) == 2
    one_error_line(capsys, "unknown key 'model.pb_dsrr'", "did you mean 'model.pb_dsr'?")
    assert fadepth(["train", "modle.etm.pb_t=0.5", "--dry-run"]) == 2
    one_error_line(capsys, "did you mean 'model.etm.pb_t'?")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {pb_dsrr: 0.3}\n")
    assert fadepth(["train", "--config", str(bad), "--dry-run"]) == 2
    one_error_line(capsys, "bad.yaml", "model.pb_dsrr: unknown key (did you mean 'model.pb_dsr'?)")
    assert fadepth(["train", "train.zzzzzz=1", "--dry-run"]) == 2
    assert "did you mean" not in one_error_line(capsys, "unknown key 'train.zzzzzz'")  # nothing close: no guess


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_help_has_examples(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        fadepth([command, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f" {command} " in out.split("examples:", 1)[1], out


def test_predict_help_says_depth_is_up_to_scale(capsys):
    with pytest.raises(SystemExit):
        fadepth(["predict", "--help"])
    assert "up to scale" in capsys.readouterr().out


# ----------------------------------------------------------------------------------- train
def test_built_in_recipe_is_the_synthetic_profile():
    """fadepth/configs/default.yaml = ablations/base/synthetic.yaml's size, batch and schedule, device auto."""
    from fadepth.cli.train import DEFAULT_RECIPE
    from fadepth.config import flatten, load_config

    recipe = flatten(yaml.safe_load(DEFAULT_RECIPE.read_text()))
    profile = flatten(yaml.safe_load((REPO / "ablations" / "base" / "synthetic.yaml").read_text()))
    for key in ("data.height", "data.width", "train.batch_size", "train.iterations", "optim.lr", "optim.scheduler",
                "model.start_depth", "model.pose_translation_scale", "model.pose", "train.val_every"):
        assert recipe[key] == profile[key], key
    cfg = load_config(DEFAULT_RECIPE)
    assert (cfg.data.height, cfg.data.width, cfg.train.batch_size, cfg.train.iterations) == (64, 208, 4, 900)
    assert cfg.train.device == "auto" and cfg.train.val_every == 100 and cfg.train.progress
    assert cfg.optim.lr == 4e-4 and cfg.model.start_depth == 1.0 and cfg.model.pose_translation_scale == 0.05
    assert load_config().data.height == 128  # config.py's defaults stay the paper's


def test_train_without_config_runs_the_recipe_and_prints_a_banner(tmp_path, capsys, monkeypatch):
    import fadepth.train as training

    seen = {}

    def fake_train(cfg, callbacks=(), resume=True):
        seen["cfg"] = cfg
        return SimpleNamespace(metrics={"abs_rel": 0.3, "sq_rel": 1, "rmse": 2, "rmse_log": 0.3, "a1": 0.5, "a2": 0.7,
                                        "a3": 0.9}, checkpoint=Path(cfg.train.out_dir) / "checkpoint.pt", iterations=5,
                               weights=Path(cfg.train.out_dir) / "weights.pt")

    monkeypatch.setattr(training, "train", fake_train)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert fadepth(["train", "train.iterations=5", f"train.out_dir={tmp_path / 'run'}", "--tracking-uri", uri]) == 0
    cfg = seen["cfg"]
    assert (cfg.data.height, cfg.data.width, cfg.train.batch_size, cfg.train.device) == (64, 208, 4, "auto")
    first = capsys.readouterr().out.splitlines()[:3]
    assert "64x208, batch 4, 5 iterations, validation every 100, device cpu (auto)" in first[0], first
    assert "built-in recipe" in first[0] and f"out_dir {tmp_path / 'run'}" in first[1]
    assert first[2].startswith("  MLflow run ") and uri in first[2]


def test_train_dry_run_without_config_shows_the_recipe(capsys):
    assert fadepth(["train", "--dry-run"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out.rsplit("fadepth train:", 1)[0])
    assert printed["data"]["width"] == 208 and printed["train"]["iterations"] == 900


# ----------------------------------------------------------------------------------- export
@pytest.fixture(scope="module")
def weights_64x208(tmp_path_factory):
    from fadepth.config import load_config
    from fadepth.train import Trainer

    out = tmp_path_factory.mktemp("w208")
    cfg = load_config(overrides=["data.height=64", "data.width=208", f"train.out_dir={out}", "train.progress=false",
                                 "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1",
                                 "data.synthetic.frames_per_sequence=4", "eval.max_images=2"])
    trainer = Trainer(cfg)
    trainer.save()
    return trainer.weights_path


def test_export_at_a_training_size_that_is_not_a_multiple_of_32(weights_64x208, tmp_path, capsys):
    out = tmp_path / "m.pt"
    assert fadepth(["export", "--checkpoint", str(weights_64x208), "--format", "torchscript", "--out", str(out)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("exporting at the training size 64x208") and "--width" not in printed[0]
    assert "1x3x64x208" in printed[1]
    assert torch.jit.load(str(out))(torch.rand(1, 3, 64, 208)).shape == (1, 1, 64, 208)


def test_export_size_falls_back_to_the_nearest_multiple_of_32():
    from fadepth.export import export_size

    class Needs32(torch.nn.Module):
        def forward(self, x):
            if x.shape[-1] % 32 or x.shape[-2] % 32:
                raise RuntimeError("Sizes of tensors must match")
            return x

    assert export_size(Needs32(), "rn18", 64, 208)[:2] == (64, 224)
    assert "nearest the training size 64x208" in export_size(Needs32(), "rn18", 64, 208)[2]
    assert export_size(Needs32(), "rn18", 128, 416) == (128, 416, "")


# ----------------------------------------------------------------------------------- eval
def test_eval_on_other_data_does_not_inherit_the_checkpoints_protocol(tmp_path, capsys):
    """A synthetic checkpoint (eval.protocol=synthetic, as the smoke profile) evaluated with --data kitti: Eigen."""
    from fadepth.config import load_config
    from fadepth.train import Trainer

    root = tmp_path / "kitti"
    assert fadepth(["synthetic", "write-kitti", "--out", str(root), "--sequences", "1", "--test-sequences", "1",
                    "--frames", "4", "--height", "40", "--width", "130"]) == 0
    gt = tmp_path / "gt.npz"
    assert fadepth(["kitti", "export-gt", "--data-path", str(root), "--split-file",
                    str(root / "splits" / "test_files.txt"), "--out", str(gt)]) == 0
    # data.split: the tree's own split folder (the shipped eigen list names real KITTI drives)
    cfg = load_config(overrides=["data.height=32", "data.width=96", "eval.protocol=synthetic", "eval.max_images=2",
                                 f"data.split={root / 'splits'}", f"train.out_dir={tmp_path / 'run'}"])
    trainer = Trainer(cfg)
    trainer.save()
    capsys.readouterr()
    assert fadepth(["eval", "--checkpoint", str(trainer.weights_path), "--data", "kitti", "--data-path", str(root),
                    "--gt-path", str(gt)]) == 0, capsys.readouterr().err
    assert "eigen protocol, 4 images" in capsys.readouterr().out  # not synthetic, not the checkpoint's 2 images
    assert fadepth(["eval", "--checkpoint", str(trainer.weights_path), "--data", "kitti", "--data-path", str(root),
                    "--gt-path", str(gt), "--protocol", "synthetic"]) == 2  # asked for: refused in one line
    one_error_line(capsys, "eval.protocol='synthetic' does not apply to data.dataset='kitti'")


# ----------------------------------------------------------------------------------- sweep / report
def test_sweep_and_report_are_the_scripts_entry_points(tmp_path, capsys):
    from fadepth.sweep.launcher import main as sweep_main

    argv = [str(REPO / "ablations" / "table_v.yaml"), "--profile", "smoke", "--dry-run", "--runs-dir",
            str(tmp_path / "runs")]
    assert sweep_main(argv) == 0
    script = capsys.readouterr().out
    assert fadepth(["sweep", *argv]) == 0
    assert capsys.readouterr().out == script and "8 runs" in script
    assert fadepth(["sweep", str(tmp_path / "missing.yaml")]) == 2
    one_error_line(capsys, "fadepth sweep: error:", "missing.yaml")
    assert fadepth(["report", str(REPO / "ablations" / "table_v.yaml"), "--profile", "smoke", "--tracking-uri",
                    f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path / "out")]) == 2
    assert "run a sweep first" in capsys.readouterr().err


def test_eval_predict_and_complexity_show_progress_bars(weights_64x208, tmp_path, monkeypatch, capsys):
    """Each long step runs under a tqdm bar (enabled; tests run with TQDM_DISABLE, so the calls are recorded)."""
    import numpy as np
    import tqdm
    from PIL import Image

    real, bars = tqdm.tqdm, []

    def recording(*args, **kwargs):
        bars.append((kwargs.get("desc"), kwargs.get("disable"), kwargs.get("total")))
        return real(*args, **{**kwargs, "disable": True})

    monkeypatch.setattr(tqdm, "tqdm", recording)
    assert fadepth(["eval", "--checkpoint", str(weights_64x208)]) == 0
    Image.fromarray((np.random.rand(40, 100, 3) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray((np.random.rand(40, 100, 3) * 255).astype(np.uint8)).save(tmp_path / "b.png")
    assert fadepth(["predict", "--checkpoint", str(weights_64x208), str(tmp_path), "--out", str(tmp_path / "o")]) == 0
    assert fadepth(["complexity", "--models", "smalldepth", "--no-fps", "--height", "64", "--width", "192"]) == 0
    assert ("eval (synthetic)", False, 2) in bars and ("predict", False, 2) in bars, bars
    assert any(desc == "complexity" and disable is False for desc, disable, _ in bars), bars
