"""The sweep runner end to end on tiny synthetic runs (real trainer, 32x96, a few iterations, 2 test frames).

Each test starts ``sweeps/run.py`` as a subprocess in a temporary directory (embedded stores under
``runs/``) and checks both stores: Optuna trials and MLflow child runs.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]
SMOKE_BASE = REPO / "ablations" / "base" / "smoke.yaml"


def tiny_spec(tmp_path: Path, schemes: str, seeds: str = "[0, 1]", iterations: int = 3) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny_test
        title: runner test
        base: {SMOKE_BASE}
        seeds: {seeds}
        profiles:
          smoke:
            overrides: {{data.height: 32, data.width: 96, train.iterations: {iterations}, train.batch_size: 2,
                        eval.max_images: 2, train.log_every: 1}}
          paper: {{}}
        schemes:
        """) + textwrap.indent(textwrap.dedent(schemes), "  "))
    return path


def run(tmp_path: Path, spec: Path, *args: str, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true")
    args = args if "--workers" in args else (*args, "--workers", "1")  # the product default is one per core
    proc = subprocess.run([*RUN, str(spec), "--profile", "smoke", "--no-progress", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    if check_rc is not None:
        assert proc.returncode == check_rc, proc.stdout + proc.stderr + worker_logs(tmp_path)
    return proc


def worker_logs(tmp_path: Path) -> str:
    return "\n".join(p.read_text()[-3000:] for p in (tmp_path / "runs" / "logs").rglob("*.log"))


def child_runs(tmp_path: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny_test")
    return client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'run'", max_results=1000)


def sweep_runs(tmp_path: Path):
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("tiny_test")
    return client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'sweep'")


def trials(tmp_path: Path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(tmp_path / "runs" / "optuna.journal")))
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)


def finished_cells(runs) -> Counter:
    return Counter((r.data.tags["fadepth.scheme"], r.data.tags["fadepth.seed"]) for r in runs
                   if r.info.status == "FINISHED")


TAGS = ["fadepth.table", "fadepth.scheme", "fadepth.seed", "fadepth.spec_hash", "fadepth.profile",
        "fadepth.git_commit", "fadepth.device", "fadepth.versions"]


def test_sweep_two_workers_resume_and_failures(tmp_path):
    spec = tiny_spec(tmp_path, """\
        - name: a
          overrides: {model.pb_dsr: 0.1}
        - name: b*
          overrides: {model.pb_dsr: 0.5}
        - name: broken
          overrides: {model.init_checkpoint: %s}
        """ % SMOKE_BASE)  # exists (passes the pre-flight) but is not a checkpoint: fails at run time
    # 1. 2 schemes x 2 seeds, two workers on one store: exactly 4 FINISHED child runs, no duplicate.
    run(tmp_path, spec, "--only", "a,b*", "--workers", "2")
    runs = child_runs(tmp_path)
    assert len(runs) == 4 and finished_cells(runs) == Counter({("a", "0"): 1, ("a", "1"): 1, ("b*", "0"): 1,
                                                              ("b*", "1"): 1})
    for r in runs:
        assert {"abs_rel", "rmse", "a1"} <= set(r.data.metrics)
        assert any(k.startswith("train/") for k in r.data.metrics)
        assert all(r.data.tags.get(t) for t in TAGS), r.data.tags
        assert r.data.tags["fadepth.table"] == "tiny_test" and r.data.tags["fadepth.profile"] == "smoke"
        assert r.data.params["model.pb_dsr"] in ("0.1", "0.5") and r.data.params["train.seed"] == r.data.tags["fadepth.seed"]
    (parent,) = sweep_runs(tmp_path)
    assert parent.info.status == "FINISHED"
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {parent.info.run_id}
    complete = [t for t in trials(tmp_path) if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["cell"] for t in complete) == sorted({t.user_attrs["cell"] for t in complete})
    assert len(complete) == 4

    # 2. Same command again with the failing scheme added: finished cells are skipped, the broken one is
    #    recorded FAILED (Optuna and MLflow, with its error) and the sweep goes on.
    proc = run(tmp_path, spec, "--workers", "1", check_rc=1)
    assert "4 done, 2 queued now" in proc.stdout
    runs = child_runs(tmp_path)
    assert len(runs) == 6 and len(finished_cells(runs)) == 4 and max(finished_cells(runs).values()) == 1
    failed = [r for r in runs if r.info.status == "FAILED"]
    assert len(failed) == 2 and all("not a readable checkpoint" in r.data.tags["fadepth.error"] for r in failed)
    fail_trials = [t for t in trials(tmp_path) if t.state.name == "FAIL"]
    assert len(fail_trials) == 2 and all("not a readable checkpoint" in t.user_attrs["fadepth.error"] for t in fail_trials)

    # 3. Without --retry-failed nothing runs; with it the failed cells are queued again (and fail again).
    proc = run(tmp_path, spec, check_rc=1)
    assert "0 queued now" in proc.stdout and "2 failed" in proc.stdout
    proc = run(tmp_path, spec, "--retry-failed", "--only", "broken", "--seeds", "0", check_rc=1)
    assert "1 queued now" in proc.stdout
    assert len(child_runs(tmp_path)) == 7


def _wait_for(predicate, timeout: float, what: str):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _running_worker_pid(tmp_path: Path, need_complete: int):
    try:
        ts = trials(tmp_path)
    except (ValueError, KeyError, OSError):  # the study is not there yet
        return None
    done = sum(t.state.name == "COMPLETE" for t in ts)
    running = [t for t in ts if t.state.name == "RUNNING" and "worker_pid" in t.user_attrs]
    if done >= need_complete and running and _has_child_run(tmp_path):
        return running[0].user_attrs["worker_pid"]
    return None


def _has_child_run(tmp_path: Path) -> bool:
    try:
        return any(r.info.status == "RUNNING" for r in child_runs(tmp_path))
    except Exception:  # noqa: BLE001 - the store may be mid-creation
        return False


def _start(tmp_path: Path, spec: Path, *args: str) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true")
    args = args if "--workers" in args else (*args, "--workers", "1")
    return subprocess.Popen([*RUN, str(spec), "--profile", "smoke", "--no-progress", *args], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_killed_worker_then_rerun_completes_exactly_the_missing_runs(tmp_path):
    spec = tiny_spec(tmp_path, """\
        - name: a
          overrides: {model.pb_dsr: 0.1}
        - name: b
          overrides: {model.pb_dsr: 0.5}
        """, seeds="[0]", iterations=12)
    launcher = _start(tmp_path, spec)
    pid = _wait_for(lambda: _running_worker_pid(tmp_path, need_complete=1), 300, "a second running trial")
    os.kill(int(pid), signal.SIGKILL)
    out, _ = launcher.communicate(timeout=300)  # 60 s grace before workers are killed, slow under load
    assert launcher.returncode == 1, out
    states = Counter(t.state.name for t in trials(tmp_path))
    assert states == Counter({"COMPLETE": 1, "FAIL": 1}), states  # the launcher repaired the dead cell
    runs = child_runs(tmp_path)
    assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 1, "KILLED": 1})
    first_run = next(r.info.run_id for r in runs if r.info.status == "FINISHED")

    proc = run(tmp_path, spec)
    assert "1 done, 1 queued now" in proc.stdout
    runs = child_runs(tmp_path)
    assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 2, "KILLED": 1})
    assert finished_cells(runs) == Counter({("a", "0"): 1, ("b", "0"): 1})
    assert first_run in {r.info.run_id for r in runs if r.info.status == "FINISHED"}


def test_sigint_stops_workers_and_leaves_stores_consistent(tmp_path):
    spec = tiny_spec(tmp_path, """\
        - name: a
          overrides: {model.pb_dsr: 0.1}
        """, seeds="[0]", iterations=400)
    launcher = _start(tmp_path, spec)
    _wait_for(lambda: _running_worker_pid(tmp_path, need_complete=0), 300, "a running trial")
    launcher.send_signal(signal.SIGINT)
    out, _ = launcher.communicate(timeout=300)  # 60 s grace before workers are killed, slow under load
    assert launcher.returncode == 130, out
    (trial,) = trials(tmp_path)
    assert trial.state.name == "FAIL" and trial.user_attrs["fadepth.failure"] == "interrupted"
    (child,) = child_runs(tmp_path)
    assert child.info.status == "KILLED"
    assert sweep_runs(tmp_path)[0].info.status == "KILLED"
    from fadepth.sweep.study import cell_state  # the next run queues it again, no --retry-failed needed

    assert cell_state([trial]) == "redo"


def test_dry_run_writes_nothing(tmp_path):
    spec = tiny_spec(tmp_path, """\
        - name: a
          overrides: {model.pb_dsr: 0.1}
        """)
    proc = run(tmp_path, spec, "--dry-run", "--workers", "2")
    lines = proc.stdout.splitlines()
    header = next(line.split() for line in lines if line.startswith("scheme"))
    row = next(line.split() for line in lines if line.startswith("a "))
    assert row[header.index("model.pb_dsr")] == "0.1" and row[header.index("seed")] == "0"
    assert not (tmp_path / "runs").exists()
