"""A sweep as a new user meets it (issue 23). Disk: a finished run keeps weights.pt and drops its training state
checkpoint.pt, unless ``--keep-training-state``; a run that did not finish keeps both (it resumes from
checkpoint.pt).  Output: no MLflow / Optuna noise, the FPS step says what it does.  MLflow: child runs carry
only the varied keys and the recipe as params, the sweep run one ``<metric>/<scheme>`` per scheme.

The trainer is a stub (``FADEPTH_SWEEP_TRAIN_FN``) that writes both files the way fadepth.train does, so the
test exercises the runner's bookkeeping alone, in seconds."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE_BASE = REPO / "ablations" / "base" / "smoke.yaml"

STUB = '''
from pathlib import Path
from types import SimpleNamespace


def train(cfg, callbacks=(), resume=True):
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "weights.pt").write_bytes(b"weights")
    (out / "checkpoint.pt").write_bytes(b"training state")
    if cfg.model.pb_dsr == 0.5:
        raise RuntimeError("stub: this scheme fails after its checkpoint was written")
    metrics = {"abs_rel": 0.4 + cfg.model.pb_dsr / 10, "sq_rel": 1.0, "rmse": 2.0, "rmse_log": 0.3, "a1": 0.5,
               "a2": 0.7, "a3": 0.9}
    return SimpleNamespace(metrics=metrics, checkpoint=out / "checkpoint.pt", weights=out / "weights.pt",
                           iterations=cfg.train.iterations)
'''


def sweep(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", FADEPTH_SWEEP_TRAIN_FN="disk_stub:train",
               PYTHONPATH=str(tmp_path))
    return subprocess.run([sys.executable, str(REPO / "sweeps" / "run.py"), str(tmp_path / "disk.yaml"), "--profile",
                           "smoke", "--no-progress", "--workers", "1", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)


def run_dirs(tmp_path: Path) -> dict[str, set[str]]:
    """{scheme: files of its seed0 folder}."""
    return {d.parent.name: {f.name for f in d.iterdir()} for d in (tmp_path / "runs" / "train").glob("*/*/seed0")}


def test_finished_runs_drop_their_training_state(tmp_path):
    (tmp_path / "disk_stub.py").write_text(STUB)
    (tmp_path / "disk.yaml").write_text(textwrap.dedent(f"""\
        name: disk_test
        title: disk test
        base: {SMOKE_BASE}
        seeds: [0]
        profiles:
          smoke: {{overrides: {{data.height: 32, data.width: 96, train.iterations: 2, eval.max_images: 2}}}}
          paper: {{}}
        schemes:
          - {{name: done, overrides: {{model.pb_dsr: 0.1}}}}
          - {{name: fails, overrides: {{model.pb_dsr: 0.5}}}}
          - {{name: kept, overrides: {{model.pb_dsr: 0.2}}}}
        """))
    proc = sweep(tmp_path, "--only", "done,fails")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    # a fresh store: no MLflow INFO chatter, no Optuna ExperimentalWarning; the FPS timing says what it does
    for noise in ("Creating initial MLflow database tables", "INFO mlflow", "ExperimentalWarning"):
        assert noise not in proc.stdout + proc.stderr, proc.stderr
    assert "measuring FPS" in proc.stdout
    files = run_dirs(tmp_path)
    assert files["done"] >= {"weights.pt"} and "checkpoint.pt" not in files["done"], files
    assert {"weights.pt", "checkpoint.pt"} <= files["fails"], files  # unfinished: everything stays
    check_mlflow(tmp_path)
    proc = sweep(tmp_path, "--only", "kept", "--keep-training-state")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[0].endswith(": 0 done, 1 queued now, 0 already queued/running")
    assert {"weights.pt", "checkpoint.pt"} <= run_dirs(tmp_path)["kept"]


def check_mlflow(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    from fadepth.sweep.spec import RECIPE_KEYS

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("disk_test")
    (parent,) = client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'sweep'")
    assert abs(parent.data.metrics["abs_rel/done"] - 0.41) < 1e-9 and "abs_rel/fails" not in parent.data.metrics
    assert parent.data.metrics["a1/done"] == 0.5
    (done,) = client.search_runs([exp.experiment_id], "tags.`fadepth.scheme` = 'done'")
    params = done.data.params
    assert set(RECIPE_KEYS) | {"model.pb_dsr", "train.seed"} <= set(params) and len(params) < 25, sorted(params)
    assert "loss.cr.ssim_weight" not in params  # the full config is the artifact, not params
    assert "config.yaml" in {a.path for a in client.list_artifacts(done.info.run_id)}


def test_scheme_metric_names_are_valid_mlflow_names():
    from fadepth.sweep.tracking import scheme_metric_name

    assert scheme_metric_name("abs_rel", "sch4*") == "abs_rel/sch4_star"
    assert scheme_metric_name("a1", "L_py (sum)+x") == "a1/L_py _sum__x"


def test_queued_line_names_failed_runs_only_when_there_are_some():
    from fadepth.sweep.launcher import queued_line

    counts = {"done": 3, "enqueued": 5, "queued": 0, "running": 0, "failed": 0}
    assert queued_line("s", counts) == "s: 3 done, 5 queued now, 0 already queued/running"
    line = queued_line("s", {**counts, "failed": 2})
    assert line.endswith("2 failed earlier and not re-run (--retry-failed re-runs them)") and "skipped" not in line


def test_resumed_sweep_eta_counts_only_this_sessions_runs(monkeypatch):
    """Cells done before this start are the bar's `initial`: tqdm's rate (the ETA) is (n - initial) / elapsed."""
    from types import SimpleNamespace

    import tqdm

    from fadepth.sweep.session import progress_bar

    made = {}
    monkeypatch.setattr(tqdm, "tqdm", lambda **kwargs: made.update(kwargs) or SimpleNamespace(**kwargs))
    fake = SimpleNamespace(plan=SimpleNamespace(cells=list(range(8)), spec=None), study_name="s",
                           progress=lambda: {"done": 5, "failed": 1, "running": 0})
    progress_bar(fake, show_progress=True)
    assert (made["total"], made["initial"]) == (8, 6)
    meter = tqdm.std.tqdm.format_meter(n=7, total=8, elapsed=10.0, initial=6)  # one run in 10 s: 10 s left
    assert "00:10<00:10" in meter, meter
