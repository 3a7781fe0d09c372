"""Outputs that cannot be lost or mixed (issue 25): two trainings on one fresh MLflow store, two exports to one
--out, predict into a folder that holds maps, temporaries left by killed writers, models `fadepth export` did not
write, and output folders that do not exist yet.  User errors: exit status 2, one line naming the file."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fadepth.cli import main as fadepth

REPO = Path(__file__).resolve().parents[1]
TINY = ["data.height=32", "data.width=96", "train.batch_size=2", "eval.max_images=2", "train.progress=false",
        "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1", "data.synthetic.frames_per_sequence=6"]


def one_error_line(capsys, *needles: str) -> str:
    """stderr holds exactly one line, `<prog>: error: ...` containing every needle; no traceback."""
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1 and ": error: " in err, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob(".*fadepth-tmp-*"))


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny SmallDepth run folder (32x96, no training step)."""
    from fadepth.config import load_config
    from fadepth.train import Trainer

    out = tmp_path_factory.mktemp("ckpt")
    Trainer(load_config(None, [*TINY, f"train.out_dir={out}"])).save()
    return out / "weights.pt"


@pytest.fixture
def images(tmp_path) -> Path:
    from PIL import Image

    folder = tmp_path / "images"
    folder.mkdir()
    for i, value in enumerate((60, 180)):
        Image.fromarray(np.full((24, 40, 3), value, np.uint8)).save(folder / f"f{i}.png")
    return folder


# ----------------------------------------------------------------------------------- fadepth train: one store
def test_two_trainings_started_together_on_a_fresh_store_both_track(tmp_path):
    """Both would run MLflow's schema migration on the new runs/mlflow.db and one died in it (3 of 3 tries);
    under the store's init lock (the one sweeps take) both exit 0 and both runs are in the store."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    procs = [subprocess.Popen([sys.executable, "-m", "fadepth", "train", *TINY, "train.iterations=1",
                               "train.val_every=0", f"train.out_dir=run_{i}"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert not any("Traceback" in out for out in outs), outs
    from mlflow import MlflowClient

    db = tmp_path / "runs" / "mlflow.db"
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("fadepth-train").experiment_id])
    assert sorted((r.info.run_name, r.info.status) for r in runs) == [("run_0", "FINISHED"), ("run_1", "FINISHED")]
    assert db.with_name("mlflow.db.fadepth-init.lock").exists()  # the lock file a sweep on this store takes


# ----------------------------------------------------------------------------------- fadepth export
def export_args(weights: Path, out: Path, *extra: str) -> list[str]:
    return ["export", "--checkpoint", str(weights), "--format", "torchscript", "--out", str(out), *extra]


def test_two_exports_to_one_out_one_wins_the_other_says_so(weights, tmp_path, capsys, monkeypatch):
    """The second export passed the 'file exists' check, then the first finished writing: without --overwrite the
    second's publishing step fails on the existing name (it used to os.replace it), in one line."""
    from fadepth import outputs
    from fadepth.export import ExportedModel

    out = tmp_path / "m.pt"
    real, other = outputs.publish, []

    def first_finishes_meanwhile(temp, target, overwrite, flag="--out"):
        if not other:
            other.append("started")
            other.append(fadepth(export_args(weights, out)))
            other.append(out.read_bytes())
        return real(temp, target, overwrite, flag)

    monkeypatch.setattr(outputs, "publish", first_finishes_meanwhile)
    assert fadepth(export_args(weights, out)) == 2
    one_error_line(capsys, f"--out {out}: file exists (written meanwhile by another process?)", "--overwrite")
    assert other[1] == 0 and out.read_bytes() == other[2]  # the winner's file, untouched
    assert ExportedModel(out, "cpu").record.model == "smalldepth"
    assert temps(tmp_path) == []
    monkeypatch.setattr(outputs, "publish", real)
    assert fadepth(export_args(weights, out)) == 2  # the early check, before the checkpoint is read
    one_error_line(capsys, f"--out {out}: file exists", "--overwrite")
    assert fadepth(export_args(weights, out, "--overwrite")) == 0


def test_stale_export_temporaries_are_removed_live_ones_left(weights, tmp_path, capsys):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = socket.gethostname()
    names = {"dead": f".m.pt.fadepth-tmp-{host}-{dead.pid}-0badf00d.pt",
             "live": f".m.pt.fadepth-tmp-{host}-{os.getpid()}-0badf00d.pt",
             "elsewhere": f".m.pt.fadepth-tmp-other-host-{dead.pid}-0badf00d.pt",
             "other file": f".n.pt.fadepth-tmp-{host}-{dead.pid}-0badf00d.pt"}
    for name in names.values():
        (tmp_path / name).write_bytes(b"half an export")
    assert fadepth(export_args(weights, tmp_path / "m.pt")) == 0
    out = capsys.readouterr().out
    assert f"removed 1 stale temporary file(s) in {tmp_path}" in out and names["dead"] in out, out
    assert temps(tmp_path) == sorted(names[k] for k in ("live", "elsewhere", "other file"))
    assert (tmp_path / "m.pt").is_file()


# ----------------------------------------------------------------------------------- fadepth predict
def test_predict_refuses_existing_maps_before_loading_a_model(weights, images, tmp_path, capsys):
    out = tmp_path / "maps"
    assert fadepth(["predict", "--checkpoint", str(weights), str(images), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sorted(before) == ["f0_depth.npy", "f0_disp.png", "f1_depth.npy", "f1_disp.png"]
    capsys.readouterr()
    # a checkpoint that does not exist: the refusal comes first, before any model is loaded
    assert fadepth(["predict", "--checkpoint", str(tmp_path / "missing.pt"), str(images), "--out", str(out)]) == 2
    one_error_line(capsys, f"--out {out}: {out / 'f0_disp.png'} exists", "4 map file(s)", "--overwrite")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    (images / "f0.png").unlink()
    assert fadepth(["predict", "--checkpoint", str(weights), str(images), "--out", str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(before)


def test_predict_crash_leaves_no_half_written_map(weights, images, tmp_path, monkeypatch):
    """The depth array's write dies half way (Ctrl-C): no `_depth.npy` appears, no temporary is left."""
    def half_then_interrupted(file, arr, *args, **kwargs):
        Path(file).write_bytes(b"\x93NUMPY half")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", half_then_interrupted)
    out = tmp_path / "maps"
    assert fadepth(["predict", "--checkpoint", str(weights), str(images), "--out", str(out)]) == 130
    assert sorted(p.name for p in out.iterdir()) == ["f0_disp.png"]  # the first frame's finished PNG only


# ----------------------------------------------------------------------------------- predict --model: metadata
def foreign_onnx(path: Path, names: tuple[str, str], record: dict | None = None) -> Path:
    """A one-node ONNX model (Identity) built with onnx.helper, not by `fadepth export`."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info(names[0], TensorProto.FLOAT, [1, 3, 32, 96])
    y = helper.make_tensor_value_info(names[1], TensorProto.FLOAT, [1, 3, 32, 96])
    graph = helper.make_graph([helper.make_node("Identity", [names[0]], [names[1]])], "foreign", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    if record is not None:
        helper.set_model_props(model, {"fadepth": json.dumps(record)})
    onnx.save(model, str(path))
    return path


RECORD = {"format": "onnx", "model": "smalldepth", "height": 32, "width": 96, "dynamic_batch": False,
          "outputs": ["disp"], "opset": 18, "etm_folded": False}


@pytest.mark.parametrize("names, record, needles", [
    (("image", "disp"), None, ["not written by `fadepth export` (no fadepth metadata)", "--format onnx"]),
    (("input", "output"), None, ["not written by `fadepth export` (no fadepth metadata)"]),
    (("input", "output"), RECORD, ["declares input image and output(s) disp", "input(s) input and output(s) output"]),
], ids=["image-disp-without-metadata", "other-names-without-metadata", "other-names-with-metadata"])
def test_predict_model_refuses_a_model_fadepth_did_not_export(names, record, needles, images, tmp_path, capsys):
    model = foreign_onnx(tmp_path / "foreign.onnx", names, record)
    out = tmp_path / "maps"
    assert fadepth(["predict", "--model", str(model), str(images), "--out", str(out)]) == 2
    one_error_line(capsys, str(model), *needles)
    assert not out.exists()


# ----------------------------------------------------------------------------------- output folders
def test_missing_output_folders_are_created_and_said(weights, images, tmp_path, capsys):
    maps = tmp_path / "new" / "deeper" / "maps"
    assert fadepth(["predict", "--checkpoint", str(weights), str(images / "f1.png"), "--out", str(maps)]) == 0
    assert f"creating {maps} (for --out)" in capsys.readouterr().out
    assert sorted(p.name for p in maps.iterdir()) == ["f1_depth.npy", "f1_disp.png"]
    metrics = tmp_path / "other" / "metrics.json"
    assert fadepth(["eval", "--checkpoint", str(weights), "--json", str(metrics)]) == 0
    assert f"creating {metrics.parent} (for --json)" in capsys.readouterr().out
    assert "abs_rel" in json.loads(metrics.read_text())


def test_output_folder_that_cannot_be_created_is_one_line(weights, tmp_path, capsys):
    (tmp_path / "file").write_text("not a folder")
    assert fadepth(["eval", "--checkpoint", str(weights), "--json", str(tmp_path / "file" / "sub" / "m.json")]) == 2
    one_error_line(capsys, "--json", "is a file, not a folder")
    from fadepth.errors import InputError
    from fadepth.outputs import ensure_folder

    with pytest.raises(InputError, match=r"^--out '.*file/sub': cannot create the folder"):  # past the pre-flight
        ensure_folder(tmp_path / "file" / "sub", "--out")
    assert (tmp_path / "file").read_text() == "not a folder"


def test_train_on_a_damaged_store_is_one_line_and_left_alone(tmp_path, capsys):
    damaged = tmp_path / "mlflow.db"
    damaged.write_bytes(b"\x87 not a database" * 64)
    args = ["train", "--tracking-uri", f"sqlite:///{damaged}", *TINY, "train.iterations=1",
            f"train.out_dir={tmp_path / 'run'}"]
    assert fadepth(args) == 2
    one_error_line(capsys, f"{damaged}: not an SQLite database", "move it aside")
    assert damaged.read_bytes() == b"\x87 not a database" * 64 and not (tmp_path / "run").exists()


def test_train_store_path_a_uri_cannot_carry_is_refused(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'm?1' / 'mlflow.db'}"
    assert fadepth(["train", "--tracking-uri", uri, *TINY, "train.iterations=1",
                    f"train.out_dir={tmp_path / 'run'}"]) == 2
    one_error_line(capsys, "--tracking-uri", "'?'")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_synthetic_write_kitti_says_it_creates_its_folder(tmp_path, capsys):
    out = tmp_path / "new" / "scenes"
    assert fadepth(["synthetic", "write-kitti", "--out", str(out), "--sequences", "1", "--frames", "3",
                    "--height", "16", "--width", "48"]) == 0
    assert f"creating {out} (for --out)" in capsys.readouterr().out and (out / "splits").is_dir()
