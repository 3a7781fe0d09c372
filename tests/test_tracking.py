"""MLflow side of training: depth panels (a labelled 2 x 2 grid: input, prediction, ground truth, error), ``fadepth train`` logging
to a local store by default (``--no-track`` writes nothing), names from ``fadepth.contracts``.

The trainer is replaced by a stub that drives the callbacks like ``Trainer.fit`` (validation at 2 and 4, the
final evaluation at 4), so these tests take seconds.
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from fadepth import contracts as c  # noqa: E402
from fadepth.sweep import tracking as tr  # noqa: E402
from fadepth.visual import depth_panel  # noqa: E402


class TinyDepth(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        return {"disp": [torch.sigmoid(self.conv(x)) + 0.01]}


def test_panel_has_ground_truth_and_error_map_when_known():
    from fadepth.visual import MIN_TILE_WIDTH, panel_tiles

    image = torch.rand(3, 16, 24)
    gt = np.linspace(1, 50, 16 * 24, dtype=np.float32).reshape(16, 24)
    gt[:4] = 0  # sky: no ground truth -> no error there
    tiles = panel_tiles(TinyDepth(), {"image": image, "gt": gt})
    assert np.isnan(tiles["error"][:4]).all() and np.isfinite(tiles["error"][4:]).all()
    assert np.median(tiles["depth"][4:]) == pytest.approx(np.median(gt[4:]), rel=1e-3)  # median-aligned, as evaluated
    assert panel_tiles(TinyDepth(), {"image": image, "gt": None})["gt"] is None
    # the labelled 2 x 2 grid with colour bars: one RGB image, tiles enlarged to a readable width
    panel = depth_panel(TinyDepth(), {"image": image, "gt": gt})
    assert panel.dtype == np.uint8 and panel.ndim == 3 and panel.shape[2] == 3
    assert panel.shape[1] > 2 * MIN_TILE_WIDTH and panel.shape[0] > 2 * MIN_TILE_WIDTH * 16 / 24
    assert depth_panel(TinyDepth(), {"image": image, "gt": None}).shape == panel.shape  # same layout without GT


def stub_train(cfg, callbacks=(), resume=True):
    from fadepth.train import TrainResult

    net = TinyDepth()
    for step in (2, 4):
        for cb in callbacks:
            getattr(cb, "on_step", lambda *a: None)(step, {"loss": 1.0 / step})
            getattr(cb, "on_eval", lambda *a: None)(step, {"abs_rel": 0.5 / step})
            getattr(cb, "on_model", lambda *a: None)(step, net)
    return TrainResult({m: 0.1 for m in c.DEPTH_METRICS}, Path(cfg.train.out_dir) / "checkpoint.pt", [], 4, 1.0)


def run_cli(tmp_path, monkeypatch, *extra) -> int:
    from fadepth.cli import train as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("fadepth.train.train", stub_train)
    parser = argparse.ArgumentParser()
    cli.add_parser(parser)
    args = parser.parse_args([f"train.out_dir={tmp_path / 'run'}", "data.synthetic.frames_per_sequence=6",
                              "eval.max_images=1", *extra])
    return cli.run(args)


def test_fadepth_train_logs_curves_panels_and_metrics_by_default(tmp_path, monkeypatch):
    assert run_cli(tmp_path, monkeypatch) == 0
    uri = f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("fadepth-train")
    assert experiment.tags[tr.EXPERIMENT_KIND] == tr.MODEL_TRAINING  # opens as model training, not GenAI
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags[c.ROLE] == c.ROLE_TRAIN
    assert [m.step for m in client.get_metric_history(run.info.run_id, c.VAL_CURVE.format("abs_rel"))] == [2, 4]
    assert run.data.metrics["abs_rel"] == pytest.approx(0.1) and run.data.params["train.val_every"]
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert sum(p.startswith(f"images/{c.PANELS_DIR}+step+") and p.endswith(".png") for p in images) == 2


def test_no_track_writes_no_store(tmp_path, monkeypatch):
    assert run_cli(tmp_path, monkeypatch, "--no-track") == 0
    assert not (tmp_path / "runs").exists()


def test_experiments_are_tagged_model_training_old_ones_too_unless_their_kind_was_set(tmp_path):
    """``mlflow.experimentKind`` on every experiment fadepth creates or reuses (a store from before the tag gets
    it on the next sweep); a kind someone chose stays."""
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    new = tr.get_or_create_experiment(client, "table_v", tmp_path / "mlartifacts")
    old = client.create_experiment("table_vi")
    chosen = client.create_experiment("table_vii", tags={tr.EXPERIMENT_KIND: "genai_development"})
    assert tr.get_or_create_experiment(client, "table_vi", None) == old
    assert tr.get_or_create_experiment(client, "table_vii", None) == chosen
    kinds = {e.name: e.tags.get(tr.EXPERIMENT_KIND) for e in client.search_experiments() if e.name != "Default"}
    assert kinds == {"table_v": tr.MODEL_TRAINING, "table_vi": tr.MODEL_TRAINING,
                     "table_vii": "genai_development"}
    assert tr.runs_page_url(new) == f"http://127.0.0.1:5000/#/experiments/{new}/runs?workflowType=machine_learning"
