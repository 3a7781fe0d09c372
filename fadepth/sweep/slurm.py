"""``sweeps/run.py SPEC --launcher slurm``: the workers of a sweep as SLURM jobs, submitted through submitit.

The launcher prepares the stores and queues the cells exactly as for local workers; then, instead of
starting processes, it submits ``--jobs`` N jobs (one submitit job array) that each run the same worker
loop (:func:`fadepth.sweep.worker.main`) on the shared RDB storage and tracking URI.  Nothing here
schedules anything: SLURM places the jobs, Optuna's RDB storage is the queue.

What must be shared, checked before anything is written or submitted (:func:`check`):

* the Optuna storage must be a server every node reaches (PostgreSQL / MySQL).  A journal file or an
  SQLite database is refused: their file locks are unreliable on network filesystems;
* the MLflow tracking URI should be a server (``http(s)://``) or a database server.  A local SQLite
  file (the default ``runs/mlflow.db``) or a loopback host is accepted only when every node of the
  partition is this machine (a single-node cluster shares its filesystem by definition), and refused
  otherwise;
* ``--runs-dir`` (checkpoints, submitit's job folder and logs) must be on a filesystem every node sees:
  it is where a preempted run's checkpoint waits for the worker that resumes it.  This cannot be
  checked from the login node; docs/scale-out.md says so.

Pre-emption and time limits: each job asks SLURM for ``--signal=USR2@<delay>`` (``--requeue`` too).  The
worker takes USR2 (SLURM's warning before the time limit, ``scancel --signal=USR2``, or a pre-emption
that signals) as "stop after this training step": the trainer writes its checkpoint there, the
trial ends FAIL (interrupted) and its cell is queued again at once, the MLflow run is left KILLED and
marked resumable.  Then :class:`SweepJob` hands the signal to submitit's own handler, which requeues the
job (``scontrol requeue``) and exits.  Whoever takes the cell next -- another job or the requeued one --
resumes the same MLflow run from the checkpoint.  See docs/scale-out.md.
"""
from __future__ import annotations

import argparse
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fadepth.config import ConfigError

PREEMPT_SIGNAL = "USR2"  # submitit's default checkpoint signal (SUBMITIT_PREEMPT_SIGNAL)
SIGNAL_DELAY_S = 120  # USR2 this long before the time limit: room for one step, the checkpoint and MLflow
MAX_REQUEUES = 50  # submitit's cap on time-limit requeues of one job (each one resumes from a checkpoint)
SHARED_DB_SCHEMES = {"postgresql", "mysql", "mssql", "oracle"}
LOOPBACK = {"localhost", "127.0.0.1", "::1", ""}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("SLURM (--launcher slurm; see docs/scale-out.md)")
    g.add_argument("--slurm-partition", metavar="NAME", help="partition to submit the worker jobs to")
    g.add_argument("--jobs", type=int, default=1, metavar="N", help="worker jobs to submit (default 1)")
    g.add_argument("--gpus-per-job", type=int, default=1, metavar="G",
                   help="GPUs per job, one worker per GPU (default 1; 0: one CPU worker per job)")
    g.add_argument("--time", metavar="[D-]HH:MM:SS",
                   help="time limit per job (default: the partition's DefaultTime, else its MaxTime); a job "
                        "reaching it checkpoints, requeues itself and resumes")
    g.add_argument("--slurm-extra", action="append", default=[], metavar="KEY=VALUE",
                   help="extra sbatch option, e.g. account=proj, qos=high, cpus-per-task=8, mem=32G "
                        "(repeatable)")
    g.add_argument("--wait", action="store_true",
                   help="stay until the jobs have left the queue, showing progress, then close the sweep run")


# ------------------------------------------------------------------------------------ checks
def check(args: argparse.Namespace) -> None:
    """Refuse, before any store is written or any job submitted, what the nodes could not share."""
    if not args.slurm_partition:
        raise ConfigError("--launcher slurm needs --slurm-partition NAME (sinfo lists the partitions)")
    if args.jobs < 1:
        raise ConfigError(f"--jobs {args.jobs}: expected at least 1")
    if args.gpus_per_job < 0:
        raise ConfigError(f"--gpus-per-job {args.gpus_per_job}: expected 0 or more")
    check_storage(args.storage, local=True)  # journal / SQLite: refused whatever the cluster
    if args.time:
        time_limit_minutes(args.time, args.slurm_partition)
    parse_extra(args.slurm_extra)
    for tool in ("sbatch", "squeue", "sinfo", "scontrol"):
        if shutil.which(tool) is None:
            raise ConfigError(f"--launcher slurm: {tool!r} not found; run this on a SLURM login node "
                              "(or use --launcher local)")
    nodes = partition_nodes(args.slurm_partition)
    local = all(is_this_host(n) for n in nodes)
    check_storage(args.storage, local)
    check_tracking(args.tracking_uri, local, nodes)
    time_limit_minutes(args.time, args.slurm_partition)


PG_FORM = "--storage postgresql+psycopg2://USER:PASSWORD@DBHOST/optuna"


def check_storage(url: str | None, local: bool) -> None:
    if not url:
        raise ConfigError("--launcher slurm: the default Optuna storage (a journal file under --runs-dir) cannot be "
                          f"shared by jobs on several nodes; give a database server: {PG_FORM}")
    scheme = url.split("://", 1)[0].split("+")[0] if "://" in url else ""
    if scheme == "sqlite":
        raise ConfigError(f"--storage {url}: an SQLite file cannot be shared by jobs on several nodes (its locks "
                          f"are unreliable on network filesystems); give a database server: {PG_FORM}")
    if scheme not in SHARED_DB_SCHEMES:
        raise ConfigError(f"--storage {url}: a journal file cannot be shared safely by jobs on several nodes and "
                          f"has no heartbeat for pre-empted jobs; give a database server: {PG_FORM}")
    host = urlsplit(url).hostname or ""
    if host in LOOPBACK and not local:
        raise ConfigError(f"--storage {url}: {host or 'a local socket'} is this machine, which the partition's "
                          "nodes cannot reach; give the database host's name")


def check_tracking(uri: str | None, local: bool, nodes: list[str]) -> None:
    if uri is None or uri.startswith("sqlite:") or uri.startswith("file:") or "://" not in uri:
        if local:
            return  # every node is this machine: a local SQLite file is shared
        what = f"--tracking-uri {uri}" if uri else "the default MLflow store (runs/mlflow.db)"
        raise ConfigError(f"{what}: a local file that jobs on {', '.join(nodes[:4])}"
                          f"{' ...' if len(nodes) > 4 else ''} cannot share (SQLite is unsafe on network "
                          "filesystems); start an MLflow server and give --tracking-uri http://TRACKHOST:5000 "
                          "(docs/scale-out.md)")
    host = urlsplit(uri).hostname or ""
    if host in LOOPBACK and not local:
        raise ConfigError(f"--tracking-uri {uri}: {host} is this machine, which the partition's nodes cannot "
                          "reach; give the tracking server's host name")


def partition_nodes(partition: str) -> list[str]:
    out = _run(["sinfo", "-h", "-p", partition, "-o", "%N"])
    compact = ",".join(line.strip() for line in out.splitlines() if line.strip())
    if not compact:
        known = sorted({line.strip().rstrip("*") for line in _run(["sinfo", "-h", "-o", "%P"]).splitlines()})
        raise ConfigError(f"--slurm-partition {partition}: no such partition (or it has no nodes); "
                          f"partitions: {', '.join(known) or 'none'}")
    return _run(["scontrol", "show", "hostnames", compact]).split()


def is_this_host(node: str) -> bool:
    names = {socket.gethostname(), socket.gethostname().split(".")[0], socket.getfqdn(), "localhost"}
    return node in names


def _run(cmd: list[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"--launcher slurm: {' '.join(cmd)} failed: {exc}") from None
    if proc.returncode != 0:
        raise ConfigError(f"--launcher slurm: {' '.join(cmd)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


_TIME = re.compile(r"^(?:(\d+)-)?(\d+):(\d{1,2}):(\d{1,2})$")


def parse_time(text: str, what: str) -> int | None:
    """``[D-]HH:MM:SS`` (or SLURM's ``UNLIMITED``/``INFINITE``: None) in whole minutes, rounded up."""
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE"):
        return None
    m = _TIME.match(text.strip())
    if not m:
        raise ConfigError(f"{what} {text!r}: expected [D-]HH:MM:SS, e.g. 04:00:00 or 1-00:00:00")
    days, hours, minutes, seconds = (int(x or 0) for x in m.groups())
    return max(1, math.ceil(((days * 24 + hours) * 60 + minutes) + seconds / 60))


def time_limit_minutes(text: str | None, partition: str) -> int:
    if text:
        minutes = parse_time(text, "--time")
        if minutes is None:
            raise ConfigError(f"--time {text}: give a finite limit; jobs checkpoint and requeue when they reach it")
        return minutes
    info = dict(re.findall(r"(\w+)=(\S+)", _run(["scontrol", "show", "partition", partition])))
    for key in ("DefaultTime", "MaxTime"):
        value = info.get(key, "NONE")
        minutes = parse_time(value, f"partition {partition} {key}") if value.upper() != "NONE" else None
        if minutes is not None:
            return minutes
    raise ConfigError(f"--slurm-partition {partition} has no default or maximum time limit: give --time HH:MM:SS")


def parse_extra(items: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` sbatch options (``--account=proj`` is ``account=proj``); SLURM validates the values."""
    extra = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-").replace("-", "_")
        if not sep or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise ConfigError(f"--slurm-extra {item!r}: expected KEY=VALUE, e.g. account=myproject")
        if key in ("signal", "requeue", "output", "error", "array", "open_mode"):
            raise ConfigError(f"--slurm-extra {item!r}: {key} is set by fadepth (pre-emption and logs)")
        extra[key] = value
    return extra


# ------------------------------------------------------------------------------------ the job
class SweepJob:
    """What each SLURM job runs: the worker loop, then (after a pre-emption/time-limit signal) submitit's
    requeue.  A :class:`submitit.helpers.Checkpointable`, so that submitit requeues it on USR2 even when
    the signal comes before the worker has taken a trial (then there is nothing to save)."""

    def __init__(self, ctx_json: str):
        self.ctx_json = ctx_json

    def __call__(self) -> int:
        import submitit

        from fadepth.sweep import worker

        env = submitit.JobEnvironment()
        ctx = worker.WorkerContext.from_json(self.ctx_json)
        ctx.index = env.global_rank
        ctx.gpu = gpu_of_task(env.local_rank)
        code = worker.main([ctx.to_json()])
        if worker.StopCheck.signum == worker.PREEMPT_SIGNUM:
            # the trial is released; now let submitit do what it does on USR2: requeue this job, exit
            handler = worker.StopCheck.uninstall().get(worker.PREEMPT_SIGNUM)
            if callable(handler):
                handler(worker.PREEMPT_SIGNUM, None)
        return code

    def checkpoint(self, *args: Any, **kwargs: Any):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)


def gpu_of_task(local_rank: int) -> str | None:
    """The GPU of this task: SLURM's binding when it gave one GPU per task, else the local_rank-th one."""
    visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g.strip()]
    if not visible:
        return None
    if len(visible) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible[local_rank % len(visible)]
    return os.environ["CUDA_VISIBLE_DEVICES"]


# ------------------------------------------------------------------------------------ submit
def make_executor(folder: Path, args: argparse.Namespace):
    import submitit

    executor = submitit.AutoExecutor(folder=folder, cluster="slurm", slurm_max_num_timeout=MAX_REQUEUES)
    repo = Path(__file__).resolve().parents[2]
    gpus = args.gpus_per_job
    executor.update_parameters(
        name=f"fadepth-{folder.name}"[:60],
        slurm_partition=args.slurm_partition,
        timeout_min=time_limit_minutes(args.time, args.slurm_partition),
        nodes=1,
        tasks_per_node=max(1, gpus),  # one worker per GPU
        slurm_signal_delay_s=SIGNAL_DELAY_S,
        slurm_additional_parameters={"requeue": True, **({"gpus_per_node": gpus} if gpus else {}),
                                     **parse_extra(args.slurm_extra)},
        slurm_setup=[f"export PYTHONPATH={repo}${{PYTHONPATH:+:$PYTHONPATH}}",
                     "export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}",
                     "export MLFLOW_DISABLE_TELEMETRY=true PYTHONUNBUFFERED=1"],
    )
    return executor


def submit(sweep, args: argparse.Namespace) -> list:
    """Submit ``--jobs`` worker jobs (one array) for a prepared sweep; returns the submitit jobs."""
    from fadepth.sweep.worker import WorkerContext

    folder = sweep.runs_dir / "slurm" / sweep.study_name
    executor = make_executor(folder, args)
    ctx = WorkerContext(
        spec_path=str(Path(sweep.plan.spec.path).resolve()), profile=sweep.plan.profile,
        study_name=sweep.study_name, storage_url=sweep.storage_url, tracking_uri=sweep.tracking_uri,
        experiment_id=sweep.experiment_id, parent_run_id=sweep.parent_run_id, runs_dir=str(sweep.runs_dir),
        extra=sweep.plan.extra, git_commit=sweep.git_commit, keep_training_state=sweep.plan.keep_training_state,
        schemes=sweep.plan.schemes, seeds=sweep.plan.seeds)
    with executor.batch():
        jobs = [executor.submit(SweepJob(ctx.to_json())) for _ in range(args.jobs)]
    return jobs


def describe(sweep, jobs: list, args: argparse.Namespace) -> None:
    ids = [j.job_id for j in jobs]
    folder = sweep.runs_dir / "slurm" / sweep.study_name
    array = ids[0].split("_")[0] if ids else "?"
    print(f"submitted {len(ids)} worker job(s) to partition {args.slurm_partition}: {' '.join(ids)}")
    print(f"  follow the jobs:   squeue -j {array}      (logs: {folder}/<jobid>_0_log.out / .err)")
    ui = (f"mlflow ui --backend-store-uri {sweep.tracking_uri} --workers 1"
          if sweep.tracking_uri.startswith("sqlite") else f"open {sweep.tracking_uri}")
    print(f"  runs (MLflow):     {ui}    (experiment {sweep.plan.spec.name!r})")
    print(f"  trials (Optuna):   optuna-dashboard {sweep.storage_url}    (study {sweep.study_name})")
    print(f"  stop them:         scancel {array}      (running cells are queued again, from their checkpoint)")
    if not args.wait:
        print("  when the jobs are done, run the same command again (or add --wait) to close the sweep run; "
              "it submits new jobs only if cells are left")


def active_jobs(job_ids: list[str]) -> list[str]:
    """The ids among ``job_ids`` still pending or running (requeued jobs included)."""
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(job_ids)], capture_output=True,
                             text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return list(job_ids)  # cannot tell: assume still there
    listed = set(out.split())
    return [j for j in job_ids if j in listed]


def launch(sweep, args: argparse.Namespace) -> bool:
    """Submit and describe; with ``--wait``, follow the study until no job is left in the queue.  Returns
    False when the wait was interrupted (Ctrl-C stops the waiting, not the jobs)."""
    jobs = submit(sweep, args)
    describe(sweep, jobs, args)
    sys.stdout.flush()
    return follow(sweep, [j.job_id for j in jobs], show_progress=not args.no_progress) if args.wait else True


def follow(sweep, job_ids: list[str], show_progress: bool, poll_s: float = 2.0) -> bool:
    from fadepth.sweep.session import progress_bar, update_bar

    bar = progress_bar(sweep, show_progress)
    try:
        while True:
            update_bar(sweep, bar)
            if not active_jobs(job_ids):
                return True
            time.sleep(poll_s)
    except KeyboardInterrupt:
        bar.write(f"stopped waiting; the jobs go on (squeue -j {job_ids[0].split('_')[0]})")
        return False
    finally:
        bar.close()
