"""Two launchers started together on one store create nothing twice (issue 13), and a trial whose artifact
store fails records the real error.

The trainer is a stub (``FADEPTH_SWEEP_TRAIN_FN``): the race is in the stores, not in training.
``benchmarks/race_launchers.py`` repeats :func:`race_once` ten times on fresh and existing stores.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest


REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]
STUB = "tests.test_bad_inputs_race:stub_train"


def stub_train(cfg, callbacks=(), resume=True):  # noqa: ARG001 - the trainer's contract
    """Stands in for fadepth.train.train: a short sleep (so workers overlap), one step, fixed metrics."""
    time.sleep(0.3)
    for cb in callbacks:
        getattr(cb, "on_step", lambda *a: None)(1, {"loss": 1.0})
    metrics = {"abs_rel": 0.1 + 0.01 * cfg.train.seed, "rmse": 1.0, "a1": 0.9}
    weights = Path(cfg.train.out_dir) / "weights.pt"
    if os.environ.get("FADEPTH_TEST_BREAK_ARTIFACTS"):  # the artifact folder turns read-only mid-sweep
        weights.parent.mkdir(parents=True, exist_ok=True)
        weights.write_bytes(b"weights")
        for folder in Path(os.environ["FADEPTH_TEST_BREAK_ARTIFACTS"]).glob("race_test"):
            if os.geteuid() == 0:  # root ignores permissions: a file where the experiment's folder was
                folder.rename(folder.with_name("race_test.moved"))
                folder.write_text("not a folder")
            else:
                for sub in [folder, *folder.glob("*/artifacts")]:
                    sub.chmod(0o555)
    return SimpleNamespace(metrics=metrics, checkpoint=weights, iterations=1, weights=weights)


def race_spec(folder: Path) -> Path:
    from spec_fixtures import write_tiny_spec  # here: sweep workers import this module for its stub trainer

    return write_tiny_spec(folder / "race.yaml", "race_test", ["{name: a}", "{name: b}"])


def launch(folder: Path, spec: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true", FADEPTH_SWEEP_TRAIN_FN=STUB,
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    return subprocess.Popen([*RUN, str(spec), "--profile", "smoke", "--no-progress", "--workers", "1", *args],
                            cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def store_counts(folder: Path, study_suffix: str = "") -> dict:
    """Per study: COMPLETE trials per cell, child runs per cell, parent runs."""
    import optuna
    from mlflow import MlflowClient
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(folder / "runs" / "optuna.journal")))
    client = MlflowClient(f"sqlite:///{folder / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("race_test")
    out = {}
    for summary in optuna.get_all_study_summaries(storage):
        trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
        runs = client.search_runs([exp.experiment_id], f"tags.`fadepth.study` = '{summary.study_name}'",
                                  max_results=1000)
        out[summary.study_name] = {
            "complete": Counter(t.user_attrs.get("cell") for t in trials if t.state.name == "COMPLETE"),
            "trials": Counter(t.user_attrs.get("cell") for t in trials),
            "children": Counter(r.data.tags.get("fadepth.cell") for r in runs
                                if r.data.tags.get("fadepth.role") == "run"),
            "parents": sum(r.data.tags.get("fadepth.role") == "sweep" for r in runs),
        }
    return out


def race_once(folder: Path, extra: tuple[str, ...] = ()) -> dict:
    """Start two launchers at once; returns their exit codes, outputs and the duplicate / crash counts."""
    spec = race_spec(folder)
    procs = [launch(folder, spec, *extra) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    counts = store_counts(folder)
    duplicates = 0
    for study in counts.values():
        duplicates += sum(n - 1 for n in study["complete"].values() if n > 1)
        duplicates += sum(n - 1 for n in study["trials"].values() if n > 1)
        duplicates += sum(n - 1 for n in study["children"].values() if n > 1)
        duplicates += max(0, study["parents"] - 1)
    missing = sum(4 - len(s["complete"]) for s in counts.values())
    crashes = sum(p.returncode != 0 for p in procs) + sum("Traceback" in o for o in outs)
    return {"rcs": [p.returncode for p in procs], "duplicates": duplicates, "missing": missing, "crashes": crashes,
            "studies": len(counts), "outputs": outs}


@pytest.mark.slow
def test_two_launchers_on_fresh_then_existing_stores_create_nothing_twice(tmp_path):
    fresh = race_once(tmp_path)  # fresh stores: no MLflow schema race, one study, one parent run
    assert (fresh["duplicates"], fresh["missing"], fresh["crashes"], fresh["studies"]) == (0, 0, 0, 1), fresh
    existing = race_once(tmp_path, ("--set", "train.log_every=7"))  # existing stores, a new study
    assert (existing["duplicates"], existing["missing"], existing["crashes"], existing["studies"]) == (0, 0, 0, 2), \
        existing


@pytest.mark.slow
def test_artifact_store_failure_is_the_trials_failure_reason(tmp_path, monkeypatch):
    """The artifact folder breaks during the first of two trials: both trials and both MLflow runs carry the
    OS error (the second fails logging its config.yaml), none says 'worker died'."""
    spec = race_spec(tmp_path)
    artifacts = tmp_path / "runs" / "mlartifacts"
    monkeypatch.setenv("FADEPTH_TEST_BREAK_ARTIFACTS", str(artifacts))
    proc = launch(tmp_path, spec, "--only", "a")
    out = proc.communicate(timeout=600)[0]
    for folder in [artifacts, *artifacts.rglob("*")]:
        if folder.is_dir():
            folder.chmod(0o755)
    assert proc.returncode == 1, out
    assert "worker" not in out and out.count("Error") >= 2, out
    import optuna
    from mlflow import MlflowClient
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "runs" / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert len(trials) == 2
    for trial in trials:
        assert trial.state.name == "FAIL" and trial.user_attrs["fadepth.failure"] == "error"
        assert "Error" in trial.user_attrs["fadepth.error"] and "worker" not in trial.user_attrs["fadepth.error"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("race_test")
    runs = client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'run'")
    assert sorted(r.info.status for r in runs) == ["FAILED", "FAILED"]
    assert sorted(r.data.tags["fadepth.error"] for r in runs) == sorted(t.user_attrs["fadepth.error"] for t in trials)


# ----------------------------------------------------------------------------------- issue 25: taking a trial
def test_two_workers_never_take_one_queued_trial_on_sqlite(tmp_path, monkeypatch):
    """SQLite ignores SELECT ... FOR UPDATE: two workers reading the WAITING trial before either writes RUNNING
    both took it (1 in 14 rounds of two launchers).  A pause between the read and the write makes the race
    certain; under :func:`guard_trial_takes` exactly one worker gets the trial."""
    import threading

    import optuna
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    from fadepth.sweep.stores import guard_trial_takes

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(study_name="s", storage=RDBStorage(url))
    study.enqueue_trial({"x": 1})
    trial_id = study.get_trials(deepcopy=False)[0]._trial_id
    slow = RDBStorage.check_trial_is_updatable
    monkeypatch.setattr(RDBStorage, "check_trial_is_updatable",
                        lambda self, *a: (time.sleep(0.3), slow(self, *a))[1])
    took = []

    def worker():
        storage = RDBStorage(url)
        storage = guard_trial_takes(storage, url)  # without it: [True, True] (checked on Optuna 5.0)
        took.append(storage.set_trial_state_values(trial_id, state=TrialState.RUNNING))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(took) == [False, True]


# ----------------------------------------------------------------------------------- issue 25: one writer per out_dir
TINY = ["data.height=32", "data.width=96", "train.batch_size=2", "eval.max_images=2", "train.progress=false",
        "data.synthetic.train_sequences=1", "data.synthetic.test_sequences=1", "data.synthetic.frames_per_sequence=6"]


def test_train_on_a_busy_out_dir_refuses_in_one_line(tmp_path, capsys):
    """Another process holds the folder (here: a child holding the lock): `fadepth train` there exits 2 naming
    the folder, host and pid, and changes nothing in it."""
    from fadepth.cli import main as fadepth

    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom fadepth.runlock import run_lock\n"
                               f"with run_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)"],
                              cwd=REPO, stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "held"
        (out / "config.yaml").write_text("theirs\n")
        rc = fadepth(["train", *TINY, f"train.out_dir={out}", "train.iterations=0", "--no-track"])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert str(out) in err and f"pid {holder.pid}" in err and "in use" in err, err
        assert (out / "config.yaml").read_text() == "theirs\n"
        assert sorted(p.name for p in out.iterdir()) == [".fadepth.lock", "config.yaml"]
    finally:
        holder.kill()
        holder.wait()


def test_run_lock_left_by_a_killed_run_is_taken_over_and_removed_at_exit(tmp_path):
    from fadepth.runlock import LOCK_NAME, FolderBusyError, run_lock

    (tmp_path / LOCK_NAME).write_text("host elsewhere pid 999999999 since yesterday\n")  # nobody holds it
    with run_lock(tmp_path) as lock:
        assert f"pid {os.getpid()}" in lock.read_text()
        with pytest.raises(FolderBusyError, match="in use by host"):
            with run_lock(tmp_path):  # a second writer, even in the same process
                pass
    assert not (tmp_path / LOCK_NAME).exists()


# ----------------------------------------------------------------------------------- issue 25: a subset run
@pytest.mark.slow
def test_subset_run_leaves_another_requests_cells_queued(tmp_path):
    """Cells queued by another request of the same study (here seeds 5 and 6) stay queued: a re-run with
    --seeds 0 (done) starts no work, --seeds 0,1 runs seed 1 only; both say so."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    from fadepth.sweep import study as st
    from fadepth.sweep.spec import load_spec

    spec_path = race_spec(tmp_path)
    first = launch(tmp_path, spec_path, "--seeds", "0")
    assert first.wait(timeout=600) == 0, first.stdout.read()
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "runs" / "optuna.journal")))
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    spec = load_spec(spec_path)
    st.enqueue_cells(study, spec, st.cells_of(spec, ["a", "b"], [5, 6]), retry_failed=False)  # the other request
    for seeds, done in (("0", 2), ("0,1", 4)):
        proc = launch(tmp_path, spec_path, "--seeds", seeds)
        out = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, out
        assert "4 cell(s) queued by another request" in out and f"{len(seeds.split(',')) * 2}/" in out, out
        trials = optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False)
        assert sum(t.state.name == "COMPLETE" for t in trials) == done
        assert sorted(t.user_attrs["seed"] for t in trials if t.state.name == "WAITING") == [5, 5, 6, 6]
