"""``sweeps/run.py SPEC``: validate a spec, prepare the stores, start the workers, show progress.

Order matters: (1) load and validate the spec and every scheme x seed config -- an error here leaves no
trace on disk; (2) create the Optuna study, the MLflow store, experiment and parent run in this process,
before any worker exists (concurrent first-time SQLite init crashes, runner.md section 2.10); (3) repair
cells whose worker died and queue every cell not done; (4) start workers (one per GPU, or N on CPU) in
their own sessions, so a Ctrl-C reaches them once, through this process; (5) poll the study for the
progress bar; (6) on exit repair again so both stores are consistent.
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fadepth.config import ConfigError, check_key, parse_override
from fadepth.sweep.spec import SweepSpec, load_spec

log = logging.getLogger("fadepth.sweep")
INTERRUPT_GRACE_S = 60.0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="sweeps/run.py",
        description="Rerun one table of the FA-Depth paper: one trial per scheme x seed, tracked in MLflow.")
    p.add_argument("spec", help="sweep spec, e.g. ablations/table_v.yaml")
    p.add_argument("--profile", default="paper", help="profile of the spec: smoke | paper | ... (default: paper)")
    p.add_argument("--seeds", help="comma-separated seeds (default: the spec's / profile's)")
    p.add_argument("--only", help="comma-separated scheme names to run (default: all)")
    p.add_argument("--gpus", default="auto",
                   help="comma-separated GPU ids, one worker per id with CUDA_VISIBLE_DEVICES set; 'auto' "
                        "(default): every visible GPU, or CPU workers when there is none; 'none': CPU workers")
    p.add_argument("--workers-per-gpu", type=positive_int, default=1, metavar="N",
                   help="workers sharing each GPU (several small runs on one large GPU); each sees only its own "
                        "device through CUDA_VISIBLE_DEVICES (default: 1; no effect on CPU workers)")
    p.add_argument("--workers", type=int, default=None,
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
    p.add_argument("--retry-failed", action="store_true", help="re-enqueue cells whose run raised or hit NaN")
    p.add_argument("--dry-run", action="store_true", help="print the scheme x seed table; run and write nothing")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


# ------------------------------------------------------------------------------------ planning
class Plan:
    """The validated request: spec, profile, cells, extra overrides (no side effects)."""

    def __init__(self, args: argparse.Namespace):
        self.spec: SweepSpec = load_spec(args.spec)
        self.profile = args.profile
        self.spec.profile(self.profile)
        self.extra = parse_sets(args.sets)
        self.seeds = parse_ints(args.seeds, "--seeds") if args.seeds else self.spec.seeds_for(self.profile)
        self.schemes = self.spec.scheme_names
        if args.only:
            wanted = [s.strip() for s in args.only.split(",") if s.strip()]
            unknown = [s for s in wanted if s not in self.schemes]
            if unknown:
                raise ConfigError(f"{self.spec.path}: --only: unknown scheme(s) {', '.join(unknown)}; "
                                  f"schemes: {', '.join(self.schemes)}")
            self.schemes = [s for s in self.schemes if s in wanted]
        for scheme in self.schemes:  # every config must validate before anything is written
            for seed in self.seeds:
                self.spec.resolve(scheme, seed, self.profile, self.extra)

    @property
    def cells(self):
        from fadepth.sweep.study import cells_of

        return [] if self.spec.search else cells_of(self.spec, self.schemes, self.seeds)


def parse_ints(text: str, flag: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers") from None


def parse_sets(items: list[str]) -> dict[str, Any]:
    extra = {}
    for item in items:
        key, value = parse_override(item)
        check_key(key)
        extra[key] = value
    return extra


def print_dry_run(plan: Plan) -> None:
    """Scheme x seed table with the resolved values of every key some scheme overrides."""
    spec = plan.spec
    keys: list[str] = []
    for scheme in plan.schemes:
        keys += [k for k in spec.overridden_keys(scheme) if k not in keys]
    keys += [k for k in plan.extra if k not in keys]
    header = ["scheme", "seed", *keys]
    table = []
    for scheme in plan.schemes:
        for seed in plan.seeds:
            flat = spec.resolve(scheme, seed, plan.profile, plan.extra).to_flat_dict()
            table.append([scheme, str(seed), *[_fmt(flat.get(k)) for k in keys]])
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(header)]
    print(f"{spec.name}: {spec.title}")
    print(f"spec {spec.path} (hash {spec.spec_hash}), profile {plan.profile}, kind {spec.kind}, "
          f"{len(plan.schemes)} schemes x {len(plan.seeds)} seeds = {len(table)} runs"
          + (f", search: {spec.search.n_trials} trials over {', '.join(spec.search.space)}" if spec.search else ""))
    if plan.extra:
        print("--set " + " ".join(f"{k}={v}" for k, v in plan.extra.items()))
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip())


def _fmt(value: Any) -> str:
    return "null" if value is None else str(value)


# ------------------------------------------------------------------------------------ stores
class Sweep:
    """The prepared stores of one sweep (created here, before any worker)."""

    def __init__(self, plan: Plan, args: argparse.Namespace):
        from fadepth.sweep import study as st
        from fadepth.sweep import tracking as tr

        self.plan, self.args = plan, args
        self.runs_dir = Path(args.runs_dir).resolve()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.storage_url = args.storage or st.default_storage_url(self.runs_dir)
        self.tracking_uri = args.tracking_uri or tr.default_tracking_uri(self.runs_dir)
        self.study_name = st.study_name(plan.spec, plan.profile, plan.extra)
        self.client = tr.configure(self.tracking_uri)
        storage = st.open_storage(self.storage_url)
        self.git_commit = tr.git_commit(Path(__file__).resolve().parent)
        spec = plan.spec
        if args.worker_only:
            try:
                self.study = st.load_study(spec, self.study_name, storage)
            except KeyError:
                raise ConfigError(f"--worker-only: no study {self.study_name!r} in {self.storage_url}; "
                                  "start the sweep (without --worker-only) on the main machine first") from None
            exp = self.client.get_experiment_by_name(spec.name)
            self.parent_run_id = exp and tr.find_parent_run(self.client, exp.experiment_id, self.study_name)
            if not self.parent_run_id:
                raise ConfigError(f"--worker-only: no MLflow sweep run for {self.study_name!r} at {self.tracking_uri}")
            self.experiment_id = exp.experiment_id
        else:
            self.study = st.create_study(spec, self.study_name, storage)
            artifact_root = None if "://" in self.tracking_uri and not self.tracking_uri.startswith("sqlite") \
                else self.runs_dir / "mlartifacts"
            self.experiment_id = tr.get_or_create_experiment(self.client, spec.name, artifact_root)
            tags = {tr.TABLE: spec.name, tr.SPEC_HASH: spec.spec_hash, tr.PROFILE: plan.profile,
                    tr.GIT: self.git_commit, "fadepth.title": spec.title, "fadepth.baseline": spec.baseline or "",
                    "fadepth.paper_table": spec.paper_table or "", "fadepth.kind": spec.kind,
                    "fadepth.primary_metric": spec.metrics.primary, "fadepth.direction": spec.metrics.direction,
                    "fadepth.extra": repr(plan.extra) if plan.extra else ""}
            self.parent_run_id = tr.start_parent_run(
                self.client, self.experiment_id, self.study_name, tags, Path(spec.path).read_text(),
                run_name=f"{spec.name}-{plan.profile}-{spec.spec_hash}")

    def repair(self) -> None:
        from fadepth.sweep import study as st
        from fadepth.sweep import tracking as tr

        st.repair_stale_trials(self.study)
        here = socket.gethostname()
        tr.kill_orphan_runs(self.client, self.experiment_id, self.study_name,
                            lambda host, pid: host == here and not st.pid_alive(pid))

    def enqueue(self) -> dict[str, int]:
        from fadepth.sweep import study as st

        return st.enqueue_cells(self.study, self.plan.spec, self.plan.cells, self.args.retry_failed)

    def progress(self) -> dict[str, int]:
        from fadepth.sweep import study as st

        return st.progress_of(self.study, self.plan.cells)

    def finish(self, status: str) -> None:
        if not self.args.worker_only:
            self.client.set_terminated(self.parent_run_id, status=status)


# ------------------------------------------------------------------------------------ workers
def resolve_gpus(text: str | None) -> list[str]:
    """GPU ids to put one worker on each: explicit ids, every visible GPU for 'auto', none for 'none'."""
    if text in (None, "", "none"):
        return []
    if text == "auto":
        import torch

        return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return [g.strip() for g in text.split(",") if g.strip()]


def worker_devices(gpu_ids: list[str], workers_per_gpu: int = 1, cpu_workers: int | None = None) -> list:
    """The device of each worker: every GPU id `workers_per_gpu` times, or `None` (CPU) per CPU worker."""
    if gpu_ids:
        return [gpu for gpu in gpu_ids for _ in range(workers_per_gpu)]
    return [None] * max(1, cpu_workers or min(8, os.cpu_count() or 1))


def start_workers(sweep: Sweep, args: argparse.Namespace) -> list[subprocess.Popen]:
    from fadepth.sweep.worker import WorkerContext

    gpu_ids = resolve_gpus(args.gpus)
    gpus = worker_devices(gpu_ids, getattr(args, "workers_per_gpu", 1), args.workers)
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
            git_commit=sweep.git_commit, gpu=gpu, index=i)
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
    """Poll until every worker exits; returns False when interrupted (Ctrl-C)."""
    from tqdm import tqdm

    cells = sweep.plan.cells
    total = len(cells) if cells else sweep.plan.spec.search.n_trials
    bar = tqdm(total=total, desc=sweep.study_name, unit="run", disable=not show_progress, dynamic_ncols=True)
    interrupted_at: float | None = None
    try:
        while True:
            try:
                alive = [p for p in procs if p.poll() is None]
                _update_bar(sweep, bar)
                if not alive:
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


def _update_bar(sweep: Sweep, bar) -> None:
    if sweep.plan.cells:
        counts = sweep.progress()
        bar.n = counts["done"] + counts["failed"]
        bar.set_postfix(done=counts["done"], failed=counts["failed"], running=counts["running"], refresh=False)
    else:
        from optuna.trial import TrialState

        bar.n = len(sweep.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    bar.refresh()


def summarise(sweep: Sweep) -> dict[str, int]:
    from fadepth.sweep import study as st

    counts = sweep.progress()
    by_cell = st.trials_by_cell(sweep.study)
    for cell in sweep.plan.cells:
        trials = by_cell.get(cell.key, [])
        state = st.cell_state(trials)
        if state != "done":
            err = next((t.user_attrs.get(st.ATTR_ERROR) for t in sorted(trials, key=lambda t: -t.number)
                        if t.user_attrs.get(st.ATTR_ERROR)), "")
            print(f"  {cell.scheme} seed {cell.seed}: {state}" + (f" -- {err}" if err else ""))
    print(f"{sweep.study_name}: {counts['done']}/{len(sweep.plan.cells)} runs finished, {counts['failed']} failed; "
          f"MLflow experiment {sweep.plan.spec.name!r} at {sweep.tracking_uri} (sweep run {sweep.parent_run_id})")
    return counts


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Ctrl-C must reach the wait loop even when started from a background shell job (which inherits
    # SIGINT as ignored, so Python would never raise KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        plan = Plan(args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        print_dry_run(plan)
        return 0
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        sweep = Sweep(plan, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sweep.repair()
    if not args.worker_only and plan.cells:
        queued = sweep.enqueue()
        print(f"{sweep.study_name}: {queued['done']} done, {queued['enqueued']} queued now, "
              f"{queued['queued'] + queued['running']} already queued/running, "
              f"{queued['failed']} failed (skipped; --retry-failed re-runs them)")
    from fadepth.sweep import study as st

    if plan.cells and not st.has_waiting(sweep.study):
        counts = summarise(sweep)
        sweep.finish("FINISHED" if counts["done"] == len(plan.cells) else "FAILED")
        return 0 if counts["done"] == len(plan.cells) else 1
    procs = start_workers(sweep, args)
    try:
        completed = wait_for_workers(sweep, procs, show_progress=not args.no_progress)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        sweep.repair()
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
