"""Seed-major scheduling (issue 22): every scheme of seed 0 (the baseline first), then seed 1, ... -- under one
worker, under several, and when a sweep is resumed with more seeds.  The trainer is a stub
(``FADEPTH_SWEEP_TRAIN_FN``): the order is the queue's, not training's.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from spec_fixtures import write_tiny_spec

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]
STUB = "tests.test_bad_inputs_race:stub_train"


def order_spec(folder: Path) -> Path:
    return write_tiny_spec(folder / "order.yaml", "order_test", ["{name: x}", "{name: base}", "{name: y}"],
                           header="baseline: base")


def launch(folder: Path, spec: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true", FADEPTH_SWEEP_TRAIN_FN=STUB,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    proc = subprocess.run([*RUN, str(spec), "--profile", "smoke", "--no-progress", *args], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def seed_major(seeds) -> list[tuple[int, str]]:
    return [(seed, scheme) for seed in seeds for scheme in ("base", "x", "y")]


def started_runs(folder: Path) -> list[tuple[int, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{folder / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("order_test")
    runs = client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'run'", max_results=100,
                              order_by=["attributes.start_time ASC"])
    return [(int(r.data.tags["fadepth.seed"]), r.data.tags["fadepth.scheme"]) for r in runs]


def started_trials(folder: Path) -> list[tuple[int, str]]:
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(folder / "runs" / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
    assert [t.number for t in sorted(trials, key=lambda t: t.datetime_start)] == sorted(t.number for t in trials)
    return [(t.user_attrs["seed"], t.user_attrs["scheme"]) for t in sorted(trials, key=lambda t: t.number)]


def test_cells_of_is_seed_major_with_the_baseline_first():
    from fadepth.sweep.study import cells_of

    spec = SimpleNamespace(baseline="base")
    cells = cells_of(spec, ["x", "base", "y"], [3, 0, 1])
    assert [(c.seed, c.scheme) for c in cells] == [(s, n) for s in (3, 0, 1) for n in ("base", "x", "y")]
    assert [c.scheme for c in cells_of(SimpleNamespace(baseline=None), ["y", "x"], [0])] == ["y", "x"]
    assert [c.scheme for c in cells_of(SimpleNamespace(baseline="base"), ["y", "x"], [0])] == ["y", "x"]


def test_one_worker_starts_runs_seed_by_seed_also_when_resumed_with_more_seeds(tmp_path):
    spec = order_spec(tmp_path)
    launch(tmp_path, spec, "--workers", "1")
    assert started_runs(tmp_path) == seed_major([0, 1])
    launch(tmp_path, spec, "--workers", "1", "--seeds", "0,1,2,3")  # resume: seeds 2 and 3 follow, seed-major
    assert started_runs(tmp_path) == seed_major([0, 1, 2, 3])
    assert started_trials(tmp_path) == seed_major([0, 1, 2, 3])


def test_several_workers_pull_the_queue_in_seed_major_order(tmp_path):
    spec = order_spec(tmp_path)
    launch(tmp_path, spec, "--workers", "2", "--seeds", "0,1,2")
    # Each worker takes the lowest-numbered queued trial: trials start in queue order, whatever worker runs them.
    assert started_trials(tmp_path) == seed_major([0, 1, 2])
    # An MLflow run starts a moment after its trial: the run of the other worker's trial may overtake it, by one.
    queue = seed_major([0, 1, 2])
    assert all(abs(queue.index(cell) - i) <= 1 for i, cell in enumerate(started_runs(tmp_path)))
