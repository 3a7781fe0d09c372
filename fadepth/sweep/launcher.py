"""``sweeps/run.py SPEC``: validate a spec, prepare the stores, start the workers, show progress.

Order matters: (1) load and validate the spec, every scheme x seed config and the pre-flight of every data
file the runs will read (:mod:`fadepth.preflight`) -- an error here leaves no trace on disk; (2) under a file
lock next to each local store (:func:`fadepth.sweep.stores.store_lock`), create the Optuna study, the MLflow
store, experiment and parent run in this process, before any worker exists (concurrent first-time SQLite init
crashes, runner.md section 2.10), and -- still under the lock, so two launchers started together create
nothing twice -- (3) repair cells whose worker died and queue every cell not done; (4) start workers (one per
GPU, or N on CPU) in their own sessions, so a Ctrl-C reaches them once, through this process; (5) poll the
study for the progress bar (and, once this launcher's workers are gone, for cells another launcher's workers
still run); (6) on exit repair again so both stores are consistent.

The request is :class:`fadepth.sweep.plan.Plan` (1), the prepared stores and the progress bar are
:mod:`fadepth.sweep.session` (2, 3, 5, 6), shared with the SLURM launcher (:mod:`fadepth.sweep.slurm`).
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from fadepth.errors import add_debug_flag, guarded
from fadepth.sweep.checks import BIG_CELLS, BIG_SEEDS
from fadepth.sweep.packing import auto_workers_per_gpu, resolve_gpus, worker_devices
from fadepth.sweep.plan import Plan, duplicate_lines, print_dry_run
from fadepth.sweep.session import Sweep, others_running, progress_bar, summarise, update_bar

log = logging.getLogger("fadepth.sweep")
INTERRUPT_GRACE_S = 60.0
SWEEP_EXAMPLES = """\
examples:
  python sweeps/run.py ablations/table_v.yaml --profile smoke           # CPU minutes; same as: fadepth sweep ...
  python sweeps/run.py ablations/table_vii.yaml --dry-run               # the scheme x seed table, runs nothing
  python sweeps/run.py ablations/table_v.yaml --profile synthetic --seeds 0,1,2 --workers 2
  python sweeps/run.py ablations/table_vii.yaml --profile paper --gpus 0,1,2,3
A finished run keeps weights.pt and drops its training state checkpoint.pt (--keep-training-state keeps it);
an unfinished run keeps both, so the same command resumes it.
"""


def build_parser(prog: str = "sweeps/run.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Rerun one table of the FA-Depth paper: one trial per scheme x seed, tracked in MLflow.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=SWEEP_EXAMPLES)
    p.add_argument("spec", help="sweep spec, e.g. ablations/table_v.yaml")
    p.add_argument("--profile", default="paper", help="profile of the spec: smoke | paper | ... (default: paper)")
    p.add_argument("--seeds", help="seeds: comma-separated integers or ranges, e.g. 0,1,2 or 0-9 (default: the spec's / profile's)")
    p.add_argument("--only", help="comma-separated scheme names to run (default: all)")
    p.add_argument("--gpus", default="auto",
                   help="comma-separated GPU ids, one worker per id with CUDA_VISIBLE_DEVICES set; 'auto' "
                        "(default): every visible GPU, or CPU workers when there is none; 'none': CPU workers")
    p.add_argument("--workers-per-gpu", type=positive_int, default=None, metavar="N",
                   help="workers sharing each GPU (several small runs on one large GPU); each sees only its own "
                        "device through CUDA_VISIBLE_DEVICES (default: chosen from one run's measured peak memory "
                        "and the CPU cores, and printed; no effect on CPU workers)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="CPU worker processes when no GPU is used (default: one per CPU core, at most 8)")
    p.add_argument("--runs-dir", default="runs", help="embedded stores, checkpoints and logs (default: ./runs)")
    p.add_argument("--storage", help="Optuna storage: a journal file path (default runs/optuna.journal) or an "
                                     "RDB URL such as postgresql+psycopg2://user:pw@host/db")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default sqlite:///<abs>/runs/mlflow.db), "
                                          "e.g. http://host:5000")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override applied to every run after the profile (repeatable); "
                        "changes the study name")
    p.add_argument("--worker-only", action="store_true",
                   help="attach workers to a sweep started elsewhere: never create or enqueue")
    p.add_argument("--yes", action="store_true",
                   help=f"queue a large request (more than {BIG_SEEDS} seeds or {BIG_CELLS} runs); its count and "
                        "estimated time are printed first, with or without --yes")
    p.add_argument("--retry-failed", action="store_true", help="re-enqueue cells whose run raised or hit NaN")
    p.add_argument("--dry-run", action="store_true",
                   help="validate every run (configs, models, devices, every data file) and print the scheme x seed "
                        "table; run and write nothing")
    p.add_argument("--no-data-check", dest="data_check", action="store_false",
                   help="skip the pre-flight of data and checkpoint files (e.g. a --dry-run of the paper profile "
                        "on a machine without the dataset); configs, models and devices are still checked")
    p.add_argument("--keep-training-state", action="store_true",
                   help="keep each finished run's checkpoint.pt (optimiser, pose net, RNG: what resuming needs); by "
                        "default a finished run keeps only weights.pt (eval, predict, export), an unfinished one both")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--until-resolved", action="store_true",
                   help="after the sweep, add seeds in rounds (doubling) to the schemes of the spec's unresolved "
                        "claims until each resolves or --max-seeds is reached (docs/claims.md)")
    p.add_argument("--max-seeds", type=positive_int, default=16, metavar="N",
                   help="with --until-resolved: the most seeds a claim's schemes get (default: 16)")
    add_debug_flag(p)
    p.add_argument("--launcher", choices=("local", "slurm"), default="local",
                   help="local: worker processes on this machine (default); slurm: submit --jobs worker jobs "
                        "through submitit (needs a PostgreSQL/MySQL --storage; docs/scale-out.md)")
    from fadepth.sweep import slurm

    slurm.add_arguments(p)
    return p


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


# ------------------------------------------------------------------------------------ workers
def start_workers(sweep: Sweep, args: argparse.Namespace) -> list[subprocess.Popen]:
    from fadepth.sweep.worker import WorkerContext

    gpu_ids = resolve_gpus(args.gpus)
    per_gpu = getattr(args, "workers_per_gpu", None)
    if per_gpu is None:
        per_gpu = auto_workers_per_gpu(sweep.plan, gpu_ids) if gpu_ids and sweep.plan.cells else 1
    gpus = worker_devices(gpu_ids, per_gpu, args.workers)
    log_dir = sweep.runs_dir / "logs" / sweep.study_name
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    # CPU workers: one torch thread each (scale with --workers); measured on a shared 2-core machine, two
    # threads per worker made trials ~10x slower (spinning OpenMP threads).  Set OMP_NUM_THREADS to override.
    threads = str(max(1, (os.cpu_count() or 1) // len(gpus))) if gpu_ids else "1"
    for i, gpu in enumerate(gpus):
        ctx = WorkerContext(
            spec_path=str(sweep.plan.spec.path), profile=sweep.plan.profile, study_name=sweep.study_name,
            storage_url=sweep.storage_url, tracking_uri=sweep.tracking_uri, experiment_id=sweep.experiment_id,
            parent_run_id=sweep.parent_run_id, runs_dir=str(sweep.runs_dir), extra=sweep.plan.extra,
            git_commit=sweep.git_commit, gpu=gpu, index=i, keep_training_state=sweep.plan.keep_training_state,
            schemes=sweep.plan.schemes, seeds=sweep.plan.seeds)
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[2]),
                                                          env.get("PYTHONPATH")]))
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = gpu
        env.setdefault("OMP_NUM_THREADS", threads)
        log_file = open(log_dir / f"worker-{i}.log", "a")  # noqa: SIM115 - owned by the child
        procs.append(subprocess.Popen([sys.executable, "-m", "fadepth.sweep.worker", ctx.to_json()], env=env,
                                      stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True))
        log_file.close()
    return procs


def wait_for_workers(sweep: Sweep, procs: list[subprocess.Popen], show_progress: bool) -> bool:
    """Poll until every worker exits and no cell is still running (in another launcher's worker);
    returns False when interrupted (Ctrl-C)."""
    bar = progress_bar(sweep, show_progress)
    interrupted_at: float | None = None
    try:
        while True:
            try:
                alive = [p for p in procs if p.poll() is None]
                update_bar(sweep, bar)
                if not alive and (interrupted_at is not None or not others_running(sweep)):
                    return interrupted_at is None
                if interrupted_at is not None and time.monotonic() - interrupted_at > INTERRUPT_GRACE_S:
                    for p in alive:
                        p.kill()
                time.sleep(1.0)
            except KeyboardInterrupt:
                first = interrupted_at is None
                interrupted_at = interrupted_at or time.monotonic()
                bar.write("interrupted: stopping workers after their current step"
                          + ("" if first else " (again: at once)"))
                for p in procs:
                    if p.poll() is None:
                        p.send_signal(signal.SIGINT)
    finally:
        bar.close()


def log_sweep_fps(sweep: Sweep) -> None:
    """FPS once per architecture of the sweep, timed after the workers exit, on the parent run."""
    from fadepth import contracts
    from fadepth.sweep import tracking as tr
    from fadepth.sweep.measure import sweep_fps

    logged = sweep.client.get_run(sweep.parent_run_id).data.metrics
    if any(name.startswith(contracts.FPS_METRIC.format("")) for name in logged):
        return  # measured by an earlier run of the same command
    if sweep.plan.spec.kind == "train":
        print("measuring FPS once per architecture (batch 1, 50 timed runs each, now that no run competes)...",
              flush=True)
    fps = sweep_fps(sweep.plan.spec, sweep.plan.profile, sweep.plan.extra, sweep.plan.schemes)
    tr.log_sweep_fps(sweep.client, sweep.parent_run_id, fps)


def log_scheme_metrics(sweep: Sweep) -> None:
    """``<metric>/<scheme>`` (mean over seeds) on the sweep run: one chart there compares the schemes."""
    from fadepth.sweep import tracking as tr

    tr.log_scheme_metrics(sweep.client, sweep.experiment_id, sweep.study_name, sweep.parent_run_id,
                          list(sweep.plan.spec.metrics.columns))


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None, after: Callable[[argparse.Namespace, int], int] | None = None,
         prog: str = "sweeps/run.py") -> int:
    """``sweeps/run.py`` (and ``fadepth sweep``, `prog`): every error ends as one line (:mod:`fadepth.errors`).
    ``after(args, rc)`` runs when the sweep ends (``sweeps/run.py`` passes the claims' verdict and
    ``--until-resolved`` rounds, which live in the report layer above this one) and returns the exit status."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Ctrl-C must reach the wait loop even when started from a background shell job (which inherits
    # SIGINT as ignored, so Python would never raise KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser(prog).parse_args(argv)
    return guarded(prog, lambda: (after or (lambda _, rc: rc))(args, run(args)), debug=args.debug)


def run(args: argparse.Namespace) -> int:
    plan = Plan(args)
    if args.dry_run:
        print_dry_run(plan)
        return 0
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.launcher == "slurm":  # before any store is written or job submitted
        from fadepth.sweep import slurm

        slurm.check(args)
    sweep = Sweep(plan, args)  # validates --storage / --tracking-uri: a bad flag stays a one-line error
    for line in duplicate_lines(plan):
        print(line, file=sys.stderr)
    try:
        return launch(sweep, plan, args, sweep.prepare())
    except BaseException as exc:  # never leave the sweep run RUNNING behind an error of this process
        with contextlib.suppress(Exception):  # (nothing to end if the parent run was never created)
            sweep.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def queued_line(study_name: str, queued: dict[str, int]) -> str:
    """What this start does: runs done before, queued now, already queued elsewhere, failed and left alone."""
    line = (f"{study_name}: {queued['done']} done, {queued['enqueued']} queued now, "
            f"{queued['queued'] + queued['running']} already queued/running")
    if queued["failed"]:
        line += f", {queued['failed']} failed earlier and not re-run (--retry-failed re-runs them)"
    return line


def launch(sweep: Sweep, plan: Plan, args: argparse.Namespace, queued: dict[str, int] | None) -> int:
    if queued is not None:
        print(queued_line(sweep.study_name, queued))
    from fadepth.sweep import study as st

    own = {cell.key for cell in plan.cells}
    foreign = sum(t.user_attrs.get(st.ATTR_CELL) not in own for t in sweep.study.get_trials(
        deepcopy=False, states=(st.TrialState.WAITING,))) if plan.cells else 0
    if foreign:
        print(f"{sweep.study_name}: {foreign} cell(s) queued by another request (other seeds or schemes) stay "
              "queued; this run runs only its own", file=sys.stderr)
    if plan.cells and not st.has_waiting(sweep.study, own) and not others_running(sweep):
        counts = summarise(sweep)
        sweep.finish("FINISHED" if counts["done"] == len(plan.cells) else "FAILED")
        return 0 if counts["done"] == len(plan.cells) else 1
    if args.launcher == "slurm":
        from fadepth.sweep import slurm

        if not slurm.launch(sweep, args):
            return 130
        if not args.wait:
            return 0
        sweep.repair()
        log_scheme_metrics(sweep)
        counts = summarise(sweep)
        ok = counts["done"] == len(plan.cells) if plan.cells else True
        sweep.finish("FINISHED" if ok else "FAILED")
        return 0 if ok else 1
    procs = start_workers(sweep, args)
    try:
        completed = wait_for_workers(sweep, procs, show_progress=not args.no_progress)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sweep.repair()
    if completed and not args.worker_only:
        log_sweep_fps(sweep)  # before the summary, so the sweep's last lines are its result
        log_scheme_metrics(sweep)
    counts = summarise(sweep)
    if not completed:
        sweep.finish("KILLED")
        print("interrupted: re-run the same command to finish the remaining runs", file=sys.stderr)
        return 130
    ok = counts["done"] == len(plan.cells) if plan.cells else True
    sweep.finish("FINISHED" if ok else "FAILED")
    bad = [p.pid for p in procs if p.returncode not in (0, 130)]
    if bad:
        print(f"{len(bad)} worker(s) exited abnormally; logs under {sweep.runs_dir / 'logs' / sweep.study_name}; "
              "re-run the same command to redo their runs", file=sys.stderr)
    return 0 if ok else 1
