"""Hostile inputs (issue 13): each gives exit status 2 and one line naming the key / file / value, writes
nothing, and loses nothing.  Validation errors never train: every case here fails before a model is built
(except the resume check, which needs the built model's config)."""
from __future__ import annotations

import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from fadepth.cli import main as fadepth
from fadepth.sweep.launcher import main as sweep_main

REPO = Path(__file__).resolve().parents[1]
SMOKE_BASE = REPO / "ablations" / "base" / "smoke.yaml"
TINY = ["data.height=32", "data.width=96", "train.batch_size=2", "eval.max_images=2", "train.progress=false",
        "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1", "data.synthetic.frames_per_sequence=6"]
ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False


def one_error_line(capsys, *needles: str) -> str:
    """stderr holds exactly one line, `<prog>: error: ...` containing every needle; no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    assert ": error: " in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


# ----------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def kitti_tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kitti") / "raw"
    assert fadepth(["synthetic", "write-kitti", "--out", str(root), "--sequences", "1", "--test-sequences", "1",
                    "--frames", "4", "--height", "40", "--width", "130"]) == 0
    return root


@pytest.fixture
def kitti(kitti_tree, tmp_path) -> Path:
    """A private copy of the tiny KITTI tree (tests corrupt it)."""
    root = tmp_path / "raw"
    shutil.copytree(kitti_tree, root)
    return root


def kitti_args(root: Path, out: Path) -> list[str]:
    return ["train", *TINY, "data.dataset=kitti", f"data.path={root}", f"data.split={root / 'splits'}",
            f"train.out_dir={out}", "--dry-run"]


def drive_file(root: Path, split: str, kind: str, line: int = 0) -> Path:
    folder, frame, _ = (root / "splits" / f"{split}_files.txt").read_text().splitlines()[line].split()
    sub = ("image_02", ".png") if kind == "image" else ("velodyne_points", ".bin")
    return root / folder / sub[0] / "data" / f"{int(frame):010d}{sub[1]}"


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny SmallDepth run folder: weights.pt + checkpoint.pt, no training step."""
    from fadepth.config import load_config
    from fadepth.train import Trainer

    out = tmp_path_factory.mktemp("ckpt")
    cfg = load_config(None, [*TINY, f"train.out_dir={out}"])
    Trainer(cfg).save()
    return out / "weights.pt"


# ----------------------------------------------------------------------------------- train: config
@pytest.mark.parametrize("override, needles", [
    ("model.name=foo", ["model.name", "'foo'", "smalldepth"]),
    ("model.name=posenet_rn18", ["model.name", "posenet_rn18"]),
    ("model.pose=smalldepth", ["model.pose", "smalldepth"]),
    ("train.device=banana", ["train.device", "'banana'", "cuda:N"]),
    ("train.batch_size=1000", ["train.batch_size=1000", "expected a batch size <="]),
    ("optim.lr=.inf", ["optim.lr", "finite"]),
    ("optim.lr=.nan", ["optim.lr", "finite"]),
    ("data.frame_ids=[0]", ["data.frame_ids", "source frame"]),
    ("data.frame_ids=[0,1,1]", ["data.frame_ids", "each once"]),
    ("data.synthetic.frames_per_sequence=2", ["data.frame_ids", "frames_per_sequence=2"]),
    ("data.synthetic.test_sequences=0", ["data.synthetic.test_sequences", "no image to evaluate"]),
    ("eval.max_images=0", ["eval.max_images", "greater than or equal to 1"]),
    ("data.dataset=kitti", ["data.path", "needs data.path"]),
    ("model.init_checkpoint=/nonexistent/w.pt", ["model.init_checkpoint", "not found"]),
])
def test_train_config_errors(override, needles, tmp_path, capsys):
    out = tmp_path / "run"
    assert fadepth(["train", *TINY, override, f"train.out_dir={out}"]) == 2
    one_error_line(capsys, "fadepth train", *needles)
    assert not out.exists()


def test_model_option_the_model_does_not_take(tmp_path, capsys):
    out = tmp_path / "run"
    assert fadepth(["train", *TINY, "model.name=rn18", "model.widths=[8,16,24,32,64]", f"train.out_dir={out}"]) == 2
    one_error_line(capsys, "model.widths", "'rn18'")
    assert not out.exists()


def test_train_json_path_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "run"
    assert fadepth(["train", *TINY, f"train.out_dir={out}", "--json", str(tmp_path / "file" / "m.json")]) == 2
    one_error_line(capsys, "--json", "is a file")
    assert not out.exists()


def test_out_dir_under_a_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert fadepth(["train", *TINY, f"train.out_dir={tmp_path / 'file' / 'run'}"]) == 2
    one_error_line(capsys, "train.out_dir", "is a file")


# ----------------------------------------------------------------------------------- train: KITTI files
def test_kitti_tree_passes_the_preflight(kitti, tmp_path, capsys):
    assert fadepth(kitti_args(kitti, tmp_path / "run")) == 0
    assert "data files OK" in capsys.readouterr().out
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("case", ["missing_path", "missing_split", "empty_split", "corrupt_png", "text_png",
                                  "truncated_velodyne", "empty_velodyne", "missing_calib_key", "missing_image"])
def test_kitti_bad_files(case, kitti, tmp_path, capsys):
    args = kitti_args(kitti, tmp_path / "run")
    if case == "missing_path":
        args = [a.replace(f"data.path={kitti}", f"data.path={tmp_path / 'moved'}") for a in args]
        needles = ["data.path", "moved", "not a folder"]
    elif case == "missing_split":
        (kitti / "splits" / "train_files.txt").unlink()
        needles = ["data.split", "train_files.txt", "not found"]
    elif case == "empty_split":
        (kitti / "splits" / "train_files.txt").write_text("")
        needles = ["train_files.txt", "empty"]
    elif case == "corrupt_png":  # truncated: PIL would say "image file is truncated", naming no file
        png = drive_file(kitti, "train", "image")
        png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
        needles = [str(png), "truncated PNG"]
    elif case == "text_png":
        png = drive_file(kitti, "test", "image", line=1)
        png.write_text("not an image")
        needles = [str(png), "not a readable image"]
    elif case == "truncated_velodyne":
        bin_ = drive_file(kitti, "test", "velodyne")
        bin_.write_bytes(bin_.read_bytes()[:-3])
        needles = [str(bin_), "multiple of 16"]
    elif case == "empty_velodyne":
        bin_ = drive_file(kitti, "test", "velodyne", line=1)
        bin_.write_bytes(b"")
        needles = [str(bin_), "0 bytes"]
    elif case == "missing_calib_key":
        calib = kitti / "2011_09_26" / "calib_cam_to_cam.txt"
        calib.write_text("\n".join(line for line in calib.read_text().splitlines()
                                   if not line.startswith("P_rect_02")))
        needles = ["calib_cam_to_cam.txt", "P_rect_02"]
    else:
        png = drive_file(kitti, "train", "image")
        png.unlink()
        needles = [str(png.parent), "not found"]
    assert fadepth(args) == 2
    one_error_line(capsys, *needles)
    assert not (tmp_path / "run").exists()


def test_corrupt_image_read_during_training_names_its_file(kitti):
    from fadepth.data.kitti import load_image

    png = drive_file(kitti, "train", "image")
    png.write_bytes(png.read_bytes()[:200])
    with pytest.raises(ValueError, match=str(png)):
        load_image(png, 32, 96)


# ----------------------------------------------------------------------------------- train: resume, tmp files
def test_changed_config_keeps_config_yaml(weights, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(weights.parent, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert fadepth(["train", *TINY, f"train.out_dir={out}", "optim.lr=1e-3"]) == 2
    one_error_line(capsys, "train.out_dir", "different configuration", "optim.lr", "--no-resume")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_stale_tmp_checkpoint_removed_on_next_start(tmp_path):
    from fadepth.config import load_config
    from fadepth.train import train

    out = tmp_path / "run"
    out.mkdir()
    from fadepth.outputs import temp_path

    dead_pid = 2**22 + 1  # above Linux's largest pid: never alive
    stale = temp_path(out / "checkpoint.pt")
    stale = stale.with_name(stale.name.replace(f"-{os.getpid()}-", f"-{dead_pid}-"))
    stale.write_bytes(b"\0" * 1000)
    train(load_config(None, [*TINY, f"train.out_dir={out}", "train.iterations=0"]))
    assert not stale.exists()
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "config.yaml", "weights.pt"]


def test_weights_file_is_small_and_loads_like_the_full_checkpoint(weights, capsys):
    from fadepth.checkpoint import CheckpointError, load_checkpoint
    from fadepth.models import load_model

    full = weights.parent / "checkpoint.pt"
    assert weights.stat().st_size < 15e6 < full.stat().st_size
    assert "optimizer" not in load_checkpoint(weights) and "optimizer" in load_checkpoint(full)
    x = torch.rand(1, 3, 32, 96)
    nets = [load_model(p)[0] for p in (weights, full)]
    with torch.no_grad():
        torch.testing.assert_close(nets[0](x)["disp"][0], nets[1](x)["disp"][0])
    with pytest.raises(CheckpointError, match="no pose network"):
        load_model(weights, with_pose=True)


# ----------------------------------------------------------------------------------- eval
def test_eval_bad_checkpoints(weights, tmp_path, capsys):
    text = tmp_path / "notes.pt"
    text.write_text("not a checkpoint")
    assert fadepth(["eval", "--checkpoint", str(text)]) == 2
    one_error_line(capsys, str(text), "not a readable checkpoint")
    state = torch.load(weights, weights_only=False)
    state["config"]["model"]["pb_sd"] = "lots"
    tampered = tmp_path / "tampered.pt"
    torch.save(state, tampered)
    assert fadepth(["eval", "--checkpoint", str(tampered)]) == 2
    one_error_line(capsys, str(tampered), "stored config", "model.pb_sd")


def test_eval_moved_data(weights, tmp_path, capsys):
    state = torch.load(weights, weights_only=False)
    state["config"]["data"].update(dataset="kitti", path=str(tmp_path / "moved"))
    moved = tmp_path / "moved.pt"
    torch.save(state, moved)
    assert fadepth(["eval", "--checkpoint", str(moved)]) == 2
    one_error_line(capsys, "data.path", "moved", "--data-path")


def test_eval_bad_json_path_and_max_images(weights, tmp_path, capsys):
    assert fadepth(["eval", "--checkpoint", str(weights), "--json", str(tmp_path)]) == 2
    one_error_line(capsys, "--json", "is a folder")
    assert fadepth(["eval", "--checkpoint", str(weights), "--device", "banana"]) == 2
    one_error_line(capsys, "--device", "banana")
    with pytest.raises(SystemExit) as exc:
        fadepth(["eval", "--checkpoint", str(weights), "--max-images", "0"])
    assert exc.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_images_without_ground_truth_are_counted():
    from fadepth.evaluation import evaluate_depths

    gt = np.full((20, 30), 5.0, np.float32)
    disp = np.full((20, 30), 0.5, np.float32)
    metrics = evaluate_depths([disp, disp], [gt, np.zeros_like(gt)], "synthetic")
    assert metrics["num_images"] == 1 and metrics["num_without_gt"] == 1


# ----------------------------------------------------------------------------------- predict
def _png(path: Path, value: int = 100) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((24, 40, 3), value, np.uint8)).save(path)
    return path


def test_predict_bad_inputs(weights, tmp_path, capsys):
    out = tmp_path / "out"
    fake = tmp_path / "fake.png"
    fake.write_text("text, not pixels")
    assert fadepth(["predict", "--checkpoint", str(weights), str(fake), "--out", str(out)]) == 2
    one_error_line(capsys, str(fake), "not a readable image")
    empty = tmp_path / "clip.mp4"
    empty.write_bytes(b"")
    assert fadepth(["predict", "--checkpoint", str(weights), str(empty), "--out", str(out)]) == 2
    one_error_line(capsys, str(empty), "0 bytes")
    (tmp_path / "file").write_text("x")
    good = _png(tmp_path / "good.png")
    assert fadepth(["predict", "--checkpoint", str(weights), str(good), "--out", str(tmp_path / "file" / "o")]) == 2
    one_error_line(capsys, "--out", "is a file")
    assert not out.exists()


def test_predict_names_are_unique_per_input(weights, tmp_path, capsys):
    a = _png(tmp_path / "drive_a" / "image_02" / "data" / "0000000001.png", 50)
    b = _png(tmp_path / "drive_b" / "image_02" / "data" / "0000000001.png", 150)
    _png(tmp_path / "mixed" / "a.png", 10)
    d = tmp_path / "mixed" / "a.jpg"
    from PIL import Image

    Image.fromarray(np.full((24, 40, 3), 200, np.uint8)).save(d)
    out = tmp_path / "out"
    assert fadepth(["predict", "--checkpoint", str(weights), str(a.parent), str(b.parent), str(tmp_path / "mixed"),
                    "--out", str(out)]) == 0
    assert "wrote 4 depth maps" in capsys.readouterr().out
    assert len(list(out.glob("*_depth.npy"))) == 4 and len(list(out.glob("*_disp.png"))) == 4


# ----------------------------------------------------------------------------------- unknown errors
def test_unknown_error_is_one_line_with_a_debug_hint(monkeypatch, capsys):
    import fadepth.cli.complexity as complexity

    def boom(args):
        raise RuntimeError("something deep\nsecond line")

    monkeypatch.setattr(complexity, "run", boom)
    assert fadepth(["complexity"]) == 1
    err = one_error_line(capsys, "fadepth complexity", "RuntimeError: something deep", "--debug")
    assert "second line" not in err
    assert fadepth(["complexity", "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- sweeps
def tiny_spec(tmp_path: Path, schemes: str = "- name: a\n- name: b\n", seeds: str = "[0]", profile_extra: str = "",
              name: str = "tiny_bad") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        base: {SMOKE_BASE}
        seeds: {seeds}
        profiles:
          smoke:
            overrides: {{data.height: 32, data.width: 96, train.iterations: 1, train.batch_size: 2,
                        eval.max_images: 2, data.synthetic.train_sequences: 1, data.synthetic.test_sequences: 1,
                        data.synthetic.frames_per_sequence: 6}}
            {profile_extra}
          paper: {{}}
        schemes:
        """) + textwrap.indent(schemes, "  "))
    return path


@pytest.mark.parametrize("args, needles", [
    (["--seeds", "0,0"], ["--seeds", "repeats 0"]),
    (["--seeds", ","], ["--seeds", "at least one"]),
    (["--only", ","], ["--only", "scheme names"]),
    (["--storage", "redis://x"], ["--storage", "redis://x"]),
    (["--tracking-uri", "ftp://x"], ["--tracking-uri"]),
    (["--set", "train.batch_size=999", "--dry-run"], ["train.batch_size=999", "snippet"]),
])
def test_sweep_flag_errors_write_nothing(args, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sweep_main([str(tiny_spec(tmp_path)), "--profile", "smoke", "--no-progress", *args]) == 2
    one_error_line(capsys, "sweeps/run.py", *needles)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("spec_kw, needles", [
    ({"profile_extra": "seeds: [1, 1]"}, ["profile 'smoke'", "seeds", "distinct"]),
    ({"schemes": "- name: '..'\n"}, ["scheme", "'.' or '..'"]),
    ({"schemes": "- name: '.'\n"}, ["scheme", "'.' or '..'"]),
    ({"schemes": "- name: x\n  overrides: {model.name: nosuchnet}\n"}, ["model.name", "nosuchnet"]),
    ({"schemes": "- name: x\n  overrides: {train.device: banana}\n"}, ["train.device", "banana"]),
    ({"schemes": "- name: x\n  overrides: {model.name: rn18, model.widths: [8, 8, 8, 8, 8]}\n"}, ["model.widths"]),
])
def test_sweep_spec_errors_fail_the_dry_run(spec_kw, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    err_spec = tiny_spec(tmp_path, **spec_kw)
    assert sweep_main([str(err_spec), "--profile", "smoke", "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and all(n in err for n in needles), err
    assert not (tmp_path / "runs").exists()


def test_sweep_store_under_a_file(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("x")
    assert sweep_main([str(tiny_spec(tmp_path)), "--profile", "smoke", "--no-progress",
                       "--tracking-uri", f"sqlite:///{tmp_path / 'file' / 'mlflow.db'}"]) == 2
    one_error_line(capsys, "file", "is a file")
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(ROOT, reason="root writes into read-only folders")
def test_sweep_read_only_store_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert sweep_main([str(tiny_spec(tmp_path)), "--profile", "smoke", "--no-progress",
                           "--tracking-uri", f"sqlite:///{ro / 'mlflow.db'}"]) == 2
        one_error_line(capsys, str(ro), "not writable")
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------------- issue 25: store paths
TWO = "- name: a\n- name: b\n  overrides: {train.log_every: 3}\n"  # two schemes, two configs

@pytest.mark.parametrize("runs_dir", ["m?1", "m#1", "m%3F1"])
def test_runs_dir_a_uri_cannot_carry_is_refused(runs_dir, tmp_path, capsys, monkeypatch):
    """``--runs-dir m?1`` and ``m?2`` once shared one MLflow file ``m``: now one line naming the character."""
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, TWO)
    before = set(tmp_path.iterdir())
    assert sweep_main([str(spec), "--profile", "smoke", "--no-progress", "--runs-dir", runs_dir]) == 2
    one_error_line(capsys, "--runs-dir", runs_dir, repr(runs_dir[1]), "URI")
    assert set(tmp_path.iterdir()) == before  # no 'm' file, no runs folder


@pytest.mark.parametrize("flag, value", [("--tracking-uri", "sqlite:///{}/a?b/mlflow.db"),
                                         ("--storage", "{}/a#b/optuna.journal")])
def test_store_path_a_uri_cannot_carry_is_refused(flag, value, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, TWO)
    assert sweep_main([str(spec), "--profile", "smoke", "--no-progress", flag, value.format(tmp_path)]) == 2
    one_error_line(capsys, flag, "URI")
    assert not (tmp_path / "runs").exists() and not list(tmp_path.glob("a*"))


# ----------------------------------------------------------------------------------- issue 25: names -> paths
HOSTILE = ["..", ".", "x/../../../escaped", "a\\b", "a\nb", "it's"]


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize("where", ["name", "profile"])
def test_hostile_spec_or_profile_name_is_refused_and_writes_nothing(where, name, tmp_path, capsys, monkeypatch):
    import yaml

    monkeypatch.chdir(tmp_path)
    spec = tiny_spec(tmp_path, TWO)
    data = yaml.safe_load(spec.read_text())
    if where == "name":
        data["name"] = name
    else:
        data["profiles"][name] = data["profiles"].pop("smoke")
    spec.write_text(yaml.safe_dump(data))
    profile = name if where == "profile" else "smoke"
    before = {p for p in tmp_path.parent.rglob("*")}
    assert sweep_main([str(spec), "--profile", profile, "--no-progress", "--runs-dir", "runs"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and ": error: " in err and repr(name) in err, err
    assert {p for p in tmp_path.parent.rglob("*")} == before  # nothing inside or outside --runs-dir


def test_report_study_name_is_checked(capsys):
    from fadepth.report import parse_args

    with pytest.raises(SystemExit) as exc:
        parse_args(["ablations/table_v.yaml", "--study", "x' or '1'='1"])
    assert exc.value.code == 2 and "--study" in capsys.readouterr().err


# ----------------------------------------------------------------------------------- issue 25: no silent flag
NO_GPU = not torch.cuda.is_available()


@pytest.mark.parametrize("args, needles", [
    (["--set", "train.seed=7"], ["--set train.seed=7", "--seeds"]),
    (["--set", "train.out_dir=elsewhere"], ["train.out_dir", "--runs-dir"]),
    (["--gpus", "x"], ["--gpus", "GPU ids"]),
    (["--gpus", "7,8"], ["--gpus 7,8", "no GPU 7, 8"]),
    (["--seeds", ",".join(map(str, range(65)))], ["65 seeds", "--yes"]),
    (["--set", "train.precision=fp16", "--set", "train.device=cpu"], ["train.precision=fp16", "CUDA"]),
    (["--set", "train.cuda_graphs=true", "--set", "train.device=cpu"], ["train.cuda_graphs", "CUDA"]),
])
def test_sweep_flags_are_never_silently_ignored(args, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sweep_main([str(tiny_spec(tmp_path, TWO)), "--profile", "smoke", "--no-progress", *args]) == 2
    one_error_line(capsys, "sweeps/run.py", *needles)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("workers", ["0", "-3"])
def test_sweep_workers_must_be_positive(workers, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        sweep_main([str(tiny_spec(tmp_path, TWO)), "--profile", "smoke", "--workers", workers])
    assert exc.value.code == 2 and f"--workers: expected a whole number >= 1, got '{workers}'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


@pytest.mark.skipif(not NO_GPU, reason="needs a machine without a visible GPU")
def test_sweep_gpu_ids_on_a_machine_without_gpus(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sweep_main([str(tiny_spec(tmp_path, TWO)), "--profile", "smoke", "--no-progress", "--gpus", "0"]) == 2
    one_error_line(capsys, "--gpus 0", "no GPU is visible", "--gpus none")


def test_sweep_large_request_with_yes_says_its_size(tmp_path, capsys, monkeypatch):
    from fadepth.sweep import checks

    checks.check_size(2, 65, yes=True)
    assert "2 schemes x 65 seeds = 130 runs" in capsys.readouterr().err
    with pytest.raises(Exception, match="501 runs"):
        checks.check_size(501, 1, yes=False)


def test_eval_unknown_split_is_refused(weights, capsys):
    """`eval --split nosuch` evaluated the default split without a word."""
    assert fadepth(["eval", "--checkpoint", str(weights), "--split", "nosuch"]) == 2
    one_error_line(capsys, "'nosuch'", "synthetic", "test or val")


# ----------------------------------------------------------------------------------- issue 25: full disks, damage
@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")])
def test_disk_full_while_saving_keeps_the_previous_checkpoint(failure, tmp_path, monkeypatch):
    """A fake writer fails half-way: one line 'disk full while writing FILE', the previous file unchanged, no
    temporary left."""
    from fadepth.errors import DiskFullError, is_known
    from fadepth.utils import atomic_torch_save, atomic_write_bytes

    target = tmp_path / "checkpoint.pt"
    atomic_torch_save({"model": 1}, target)
    good = target.read_bytes()

    def full_disk_save(obj, f, *a, **k):
        Path(f).write_bytes(b"PK\x03\x04 half")
        raise failure

    monkeypatch.setattr(torch, "save", full_disk_save)
    with pytest.raises(DiskFullError, match=f"disk full while writing {target}") as exc:
        atomic_torch_save({"model": 2}, target)
    assert is_known(exc.value) and "previous checkpoint.pt is kept" in str(exc.value)
    assert target.read_bytes() == good and sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]

    real_fdopen = os.fdopen

    class FullFile:
        def __init__(self, fh):
            self.fh = fh

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, data):
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullFile(real_fdopen(fd, mode)))
    (tmp_path / "config.yaml").write_bytes(b"old\n")
    with pytest.raises(DiskFullError, match="disk full while writing .*config.yaml"):
        atomic_write_bytes(tmp_path / "config.yaml", b"new\n")
    assert (tmp_path / "config.yaml").read_bytes() == b"old\n" and len(list(tmp_path.iterdir())) == 2


def test_truncated_checkpoint_says_so(weights, tmp_path, capsys):
    cut = tmp_path / "weights.pt"
    cut.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    assert fadepth(["eval", "--checkpoint", str(cut)]) == 2
    one_error_line(capsys, str(cut), "truncated checkpoint", "move it aside")
    assert cut.stat().st_size == weights.stat().st_size // 2  # never repaired


@pytest.mark.parametrize("file, content, needles", [
    ("optuna.journal", b"\x87\x00garbage\n{}\n", ["optuna.journal", "not an Optuna journal", "line 1"]),
    ("optuna.journal", b'{"op_code": 0, "worker_id": "x"}\n{not json\n{"op_code": 1}\n',
     ["not an Optuna journal", "line 2"]),
    ("mlflow.db", b"this is not a database" * 100, ["mlflow.db", "not an SQLite database", "MLflow store"]),
])
def test_damaged_store_is_one_line_and_left_alone(file, content, needles, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / file).write_bytes(content)
    assert sweep_main([str(tiny_spec(tmp_path, TWO)), "--profile", "smoke", "--no-progress"]) == 2
    one_error_line(capsys, *needles, "move it aside")
    assert (tmp_path / "runs" / file).read_bytes() == content
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [file]
