"""``sweeps/run.py --launcher slurm`` against a real single-node SLURM cluster started by the test.

munged + slurmctld + slurmd run as root on loopback in a temp dir (tests/slurm_cluster.py), PostgreSQL is
the Optuna storage (the fixture of tests/test_sweep_postgres.py), MLflow is an SQLite file (accepted: the
partition's only node is this machine).  Skipped, with the exact reason and the daemon logs, only when
the daemons cannot start here.
"""
from __future__ import annotations

import glob
import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from slurm_cluster import ClusterUnavailable, start_cluster  # noqa: E402
from test_sweep_postgres import postgres_url  # noqa: E402,F401 - the PostgreSQL fixture
from test_sweep_runner import _wait_for as wait_for  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RUN = [sys.executable, str(REPO / "sweeps" / "run.py")]


@pytest.fixture(scope="module")
def cluster():
    try:
        c = start_cluster()
    except ClusterUnavailable as exc:
        pytest.skip(f"single-node SLURM cannot start in this sandbox: {exc}")
    try:
        yield c
    finally:
        c.stop()


def write_spec(path: Path, name: str, schemes: list[str], seeds: list[int], iterations: int, extra: str = "") -> Path:
    scheme_lines = "".join(f"  - name: {s}\n    overrides: {{model.pb_dsr: {0.1 * (i + 1):.1f}}}\n"
                           for i, s in enumerate(schemes))
    path.write_text(textwrap.dedent(f"""\
        name: {name}
        base: {REPO / 'ablations' / 'base' / 'smoke.yaml'}
        seeds: {seeds}
        profiles:
          smoke:
            overrides: {{data.height: 32, data.width: 96, train.iterations: {iterations}, train.batch_size: 2,
                        eval.max_images: 2{extra}}}
          paper: {{}}
        schemes:
        """) + scheme_lines)
    return path


def slurm_args(spec: Path, storage: str, tracking: str, jobs: int) -> list[str]:
    return [str(spec), "--profile", "smoke", "--no-progress", "--storage", storage, "--tracking-uri", tracking,
            "--launcher", "slurm", "--slurm-partition", "debug", "--jobs", str(jobs), "--gpus-per-job", "0",
            "--time", "00:15:00"]


def child_runs(tracking: str, experiment: str):
    from mlflow import MlflowClient

    client = MlflowClient(tracking)
    exp = client.get_experiment_by_name(experiment)
    return client, client.search_runs([exp.experiment_id], "tags.`fadepth.role` = 'run'")


def study_trials(storage: str, table: str):
    import optuna

    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.startswith(table + "-")]
    return optuna.load_study(study_name=name, storage=storage).get_trials()


def job_ids(stdout: str) -> list[str]:
    m = re.search(r"submitted \d+ worker job\(s\) to partition \w+: (.+)", stdout)
    assert m, stdout
    return m.group(1).split()


@pytest.mark.slurm
@pytest.mark.postgres
def test_slurm_sweep_runs_every_cell_once(cluster, postgres_url, tmp_path):  # noqa: F811
    spec = write_spec(tmp_path / "tiny.yaml", "tiny_slurm", ["a", "b"], [0, 1], iterations=2)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = slurm_args(spec, postgres_url, tracking, jobs=2)
    env = dict(cluster.env, OMP_NUM_THREADS="1")
    out = subprocess.run([*RUN, *args, "--wait"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr + "\n" + cluster.logs()
    ids = job_ids(out.stdout)
    assert len(ids) == 2 and "squeue -j" in out.stdout and "optuna-dashboard" in out.stdout, out.stdout
    assert "4/4 runs finished" in out.stdout, out.stdout

    trials = study_trials(postgres_url, "tiny_slurm")
    complete = sorted(t.user_attrs["cell"] for t in trials if t.state.name == "COMPLETE")
    assert complete == ["a|seed=0", "a|seed=1", "b|seed=0", "b|seed=1"]
    client, runs = child_runs(tracking, "tiny_slurm")
    assert Counter(r.info.status for r in runs) == Counter({"FINISHED": 4})
    assert sorted(r.data.tags["fadepth.cell"] for r in runs) == complete
    parent = client.search_runs([runs[0].info.experiment_id], "tags.`fadepth.role` = 'sweep'")
    assert [p.info.status for p in parent] == ["FINISHED"]
    logs = glob.glob(str(tmp_path / "runs" / "slurm" / "*" / "*_log.err"))
    assert len(logs) == 2, logs
    # the same command again: everything is done, nothing is queued or submitted
    again = subprocess.run([*RUN, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "4 done, 0 queued now" in again.stdout, again.stdout + again.stderr
    assert "submitted" not in again.stdout


@pytest.mark.slurm
@pytest.mark.postgres
def test_preempted_job_requeues_and_resumes_from_its_checkpoint(cluster, postgres_url, tmp_path):  # noqa: F811
    total = 24
    spec = write_spec(tmp_path / "one.yaml", "one_slurm", ["a"], [0], iterations=total,
                      extra=", train.checkpoint_every: 3")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = dict(cluster.env, OMP_NUM_THREADS="1")
    # --keep-training-state: the finished run's checkpoint.pt stays, to show where the resumed run ended
    out = subprocess.run([*RUN, *slurm_args(spec, postgres_url, tracking, jobs=1), "--keep-training-state"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    (job,) = job_ids(out.stdout)

    # halfway: once the run has written its first periodic checkpoint, SLURM's pre-emption signal
    checkpoint = wait_for(lambda: next(iter(glob.glob(str(tmp_path / "runs" / "train" / "*" / "a" / "seed0" /
                                                            "checkpoint.pt"))), None), 240, "first checkpoint")
    assert checkpoint_iteration(checkpoint) < total, "the run finished before it could be signalled"
    subprocess.run(["scancel", "--signal=USR2", job], env=env, check=True)
    # submitit requeues the job; SLURM holds a requeued job for ~2 min (BeginTime): release it now
    wait_for(lambda: job_state(job, env) == "PENDING", 120, "the job to be requeued")
    subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], env=env, check=True)
    wait_for(lambda: job_state(job, env) == "", 480, "the requeued job to finish")

    info = subprocess.run(["scontrol", "show", "job", job], env=env, capture_output=True, text=True).stdout
    assert "Restarts=1" in info, info
    trials = study_trials(postgres_url, "one_slurm")
    states = Counter(t.state.name for t in trials)
    assert states == Counter({"COMPLETE": 1, "FAIL": 1}), states
    (failed,) = [t for t in trials if t.state.name == "FAIL"]
    m = re.fullmatch(r"preempted \(SIGUSR2\) at iteration (\d+)", failed.user_attrs["fadepth.error"])
    assert m, failed.user_attrs
    stopped = int(m.group(1))
    assert 3 <= stopped < total

    client, runs = child_runs(tracking, "one_slurm")
    (run,) = runs  # one MLflow run for the cell: resumed, not duplicated
    assert run.info.status == "FINISHED" and run.data.tags["fadepth.preempted_at"] == str(stopped)
    from fadepth.config import load_config

    steps = [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")]
    every = load_config("ablations/base/smoke.yaml").train.log_every  # curves are read once per log interval
    logged = [i for i in range(1, total + 1) if i % every == 0 or i == total]
    assert sorted(steps) == logged, steps  # every logged step once: none lost, none twice
    assert checkpoint_iteration(checkpoint) == total
    log = "".join(Path(p).read_text() for p in glob.glob(str(tmp_path / "runs" / "slurm" / "*" / f"{job}_0_log.*")))
    assert re.search(rf"resumed \S+checkpoint.pt at iteration {stopped}\b", log), log


@pytest.mark.parametrize("storage, problem", [
    (None, "the default Optuna storage (a journal file under --runs-dir) cannot be shared"),
    ("sqlite:///optuna.db", "an SQLite file cannot be shared by jobs on several nodes"),
    ("/shared/optuna.journal", "a journal file cannot be shared safely"),
])
def test_slurm_launcher_refuses_unshareable_storage_before_writing_anything(tmp_path, storage, problem):
    spec = write_spec(tmp_path / "tiny.yaml", "tiny_refuse", ["a"], [0], iterations=2)
    cmd = [*RUN, str(spec), "--profile", "smoke", "--launcher", "slurm", "--slurm-partition", "debug"]
    out = subprocess.run(cmd + (["--storage", storage] if storage else []), cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stdout + out.stderr
    (line,) = out.stderr.strip().splitlines()  # one clear line, no traceback
    assert problem in line and "--storage postgresql+psycopg2://USER:PASSWORD@DBHOST/optuna" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.yaml"]  # no store, no runs dir


def test_local_tracking_files_and_loopback_hosts_are_refused_unless_the_partition_is_this_machine():
    from fadepth.config import ConfigError
    from fadepth.sweep import slurm

    nodes = ["gpu001", "gpu002"]
    slurm.check_tracking("sqlite:////home/me/runs/mlflow.db", local=True, nodes=["localhost"])  # one node: shared
    slurm.check_tracking("http://trackhost:5000", local=False, nodes=nodes)
    slurm.check_storage("postgresql+psycopg2://u:p@dbhost/optuna", local=False)
    for call, needle in [
        (lambda: slurm.check_tracking(None, local=False, nodes=nodes), "start an MLflow server"),
        (lambda: slurm.check_tracking("sqlite:////nfs/mlflow.db", local=False, nodes=nodes), "gpu001, gpu002"),
        (lambda: slurm.check_tracking("http://127.0.0.1:5000", local=False, nodes=nodes), "cannot reach"),
        (lambda: slurm.check_storage("postgresql+psycopg2://u@localhost/optuna", local=False), "cannot reach"),
    ]:
        with pytest.raises(ConfigError, match=needle):
            call()
    assert slurm.parse_time("1-02:03:04", "--time") == 24 * 60 + 2 * 60 + 4  # 3 min 4 s: rounded up
    assert slurm.parse_extra(["account=proj", "--cpus-per-task=8"]) == {"account": "proj", "cpus_per_task": "8"}
    with pytest.raises(ConfigError, match="set by fadepth"):
        slurm.parse_extra(["signal=TERM@10"])


def test_a_stop_request_checkpoints_the_step_it_stops_at_and_resumes_exactly(tmp_path):
    """The trainer side of pre-emption, without SLURM: StopRequested from on_step (what the worker's
    StopCheck raises on USR2) leaves a checkpoint of that very step; resuming equals never stopping.

    Stopped at iteration 2, an epoch boundary of this tiny training set: resuming in the middle of an
    epoch reproduces the data order but not the first resumed batch's augmentation (creating a DataLoader
    iterator draws from the global RNG; measured, reported with the SLURM issue), and so not the losses."""
    from test_train import tiny_cfg

    from fadepth.train import StopRequested, train

    reference = train(tiny_cfg(tmp_path / "full", iterations=4), resume=False).history

    class StopAt2:
        def on_step(self, it, scalars):
            if it == 2:
                raise StopRequested

    cfg = tiny_cfg(tmp_path / "part", iterations=4)  # no periodic checkpoints: only the stop writes one
    with pytest.raises(KeyboardInterrupt):
        train(cfg, callbacks=[StopAt2()])
    assert checkpoint_iteration(str(tmp_path / "part" / "checkpoint.pt")) == 2
    seen = []

    class Steps:
        def on_step(self, it, scalars):
            seen.append(it)

    resumed = train(cfg, callbacks=[Steps()]).history
    assert seen == [3, 4]  # only the steps that were left
    assert [h["loss"] for h in resumed] == pytest.approx([h["loss"] for h in reference], rel=1e-5)


def checkpoint_iteration(path: str) -> int:
    import torch

    return int(torch.load(path, map_location="cpu", weights_only=False)["iteration"])


def job_state(job: str, env: dict) -> str:
    return subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], env=env, capture_output=True,
                          text=True).stdout.strip()
