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
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from fadepth.cli.boundary import add_debug_flag, guarded
from fadepth.config import ConfigError, check_key, parse_override
from fadepth.sweep.spec import SweepSpec, dry_run_values, load_spec
from fadepth.sweep.stores import check_stores, store_lock

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
    p.add_argument("--dry-run", action="store_true",
                   help="validate every run (configs, models, devices, every data file) and print the scheme x seed "
                        "table; run and write nothing")
    p.add_argument("--no-data-check", dest="data_check", action="store_false",
                   help="skip the pre-flight of data and checkpoint files (e.g. a --dry-run of the paper profile "
                        "on a machine without the dataset); configs, models and devices are still checked")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
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


# ------------------------------------------------------------------------------------ planning
class Plan:
    """The validated request: spec, profile, cells, extra overrides (no side effects)."""

    def __init__(self, args: argparse.Namespace):
        self.spec: SweepSpec = load_spec(args.spec)
        self.profile = args.profile
        self.spec.profile(self.profile)
        self.extra = parse_sets(args.sets)
        self.seeds = parse_ints(args.seeds, "--seeds") if args.seeds is not None else self.spec.seeds_for(self.profile)
        self.schemes = self.spec.scheme_names
        if args.only is not None:
            wanted = [s.strip() for s in args.only.split(",") if s.strip()]
            if not wanted:
                raise ConfigError(f"--only {args.only!r}: expected comma-separated scheme names; "
                                  f"schemes: {', '.join(self.schemes)}")
            unknown = [s for s in wanted if s not in self.schemes]
            if unknown:
                raise ConfigError(f"{self.spec.path}: --only: unknown scheme(s) {', '.join(unknown)}; "
                                  f"schemes: {', '.join(self.schemes)}")
            self.schemes = [s for s in self.schemes if s in wanted]
        self.data_check = getattr(args, "data_check", True)
        # Pairs of schemes whose configs are equal under this profile (and --set): the same run twice.
        self.duplicates = self.spec.duplicate_schemes(self.profile, self.extra, self.schemes)
        checked: set[str] = set()
        for scheme in self.schemes:  # every config and data file must validate before anything is written
            for seed in self.seeds:
                self.preflight(self.spec.resolve(scheme, seed, self.profile, self.extra), scheme, checked)

    def preflight(self, cfg, scheme: str, checked: set[str]) -> None:
        """Models, device and (for training sweeps) every data file, once per distinct data setup."""
        from fadepth.preflight import PreflightError, check_config, check_run

        keys = ("data", "eval", "train.batch_size", "train.val_every", "train.iterations")
        flat = cfg.to_flat_dict()
        key = json.dumps({k: v for k, v in flat.items() if k.split(".")[0] in keys or k in keys}, sort_keys=True,
                         default=str)
        try:
            if not self.data_check:
                check_config(cfg, files=False)
            elif self.spec.kind != "train" or key in checked:
                check_config(cfg)
            else:
                check_run(cfg.model_copy(update={"train": cfg.train.model_copy(update={"out_dir": "."})}))
        except PreflightError as exc:
            raise ConfigError(f"{self.spec.path}: scheme {scheme!r}, profile {self.profile!r}: {exc}") from None
        checked.add(key)

    @property
    def cells(self):
        from fadepth.sweep.study import cells_of

        return [] if self.spec.search else cells_of(self.spec, self.schemes, self.seeds)


def parse_ints(text: str, flag: str) -> list[int]:
    """Distinct comma-separated integers, at least one (each seed is one run folder: a repeat would share it)."""
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"{flag} {text!r}: expected comma-separated integers") from None
    if not values:
        raise ConfigError(f"{flag} {text!r}: expected at least one integer, e.g. {flag} 0,1,2")
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        raise ConfigError(f"{flag} {text!r}: repeats {', '.join(map(str, repeated))}; expected distinct integers")
    return values


def parse_sets(items: list[str]) -> dict[str, Any]:
    extra = {}
    for item in items:
        key, value = parse_override(item)
        check_key(key)
        extra[key] = value
    return extra


def print_dry_run(plan: Plan) -> None:
    """Scheme x seed table: the recipe columns (iterations, LR, ETM, L_py mode, ...) and every overridden key."""
    spec = plan.spec
    keys = spec.dry_run_keys(plan.schemes, plan.profile)
    keys += [k for k in plan.extra if k not in keys]
    header = ["scheme", "seed", *keys]
    table = []
    for scheme in plan.schemes:
        for seed in plan.seeds:
            flat = dry_run_values(spec.resolve(scheme, seed, plan.profile, plan.extra))
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
    print("\n".join(duplicate_lines(plan)) or "duplicate schemes: none (every scheme resolves to its own config)")


def duplicate_lines(plan: Plan) -> list[str]:
    """One line per scheme whose config equals an earlier scheme's under the plan's profile and --set."""
    return [f"duplicate scheme: {name!r} resolves to the same config as {twin!r} under profile {plan.profile!r} "
            f"(the same run twice)" for name, twin in plan.duplicates]


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
        self.storage_url = args.storage or st.default_storage_url(self.runs_dir)
        self.tracking_uri = args.tracking_uri or tr.default_tracking_uri(self.runs_dir)
        check_stores(self.storage_url, self.tracking_uri, self.runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        self.study_name = st.study_name(plan.spec, plan.profile, plan.extra)
        self.git_commit = tr.git_commit(Path(__file__).resolve().parent)

    def prepare(self) -> dict[str, int] | None:
        """Under the store lock: open / create the stores, study and parent run, repair, enqueue."""
        with store_lock(self.storage_url, self.tracking_uri, self.runs_dir):
            self._open()
            self.repair()
            if not self.args.worker_only and self.plan.cells:
                return self.enqueue()
        return None

    def _open(self) -> None:
        from fadepth import contracts as c
        from fadepth.sweep import study as st
        from fadepth.sweep import tracking as tr

        plan, args = self.plan, self.args
        self.client = tr.configure(self.tracking_uri)
        storage = self.storage = st.open_storage(self.storage_url)
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
            tags = {c.TABLE: spec.name, c.SPEC_HASH: spec.spec_hash, c.PROFILE: plan.profile,
                    c.GIT: self.git_commit, c.TITLE: spec.title, c.BASELINE: spec.baseline or "",
                    c.PAPER_TABLE: spec.paper_table or "", c.KIND: spec.kind,
                    c.PRIMARY_METRIC: spec.metrics.primary, c.DIRECTION: spec.metrics.direction,
                    c.EXTRA: repr(plan.extra) if plan.extra else ""}
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

        new_study = not self.study.get_trials(deepcopy=False)
        queued = st.enqueue_cells(self.study, self.plan.spec, self.plan.cells, self.args.retry_failed)
        if new_study:
            self._note_earlier_studies()
        return queued

    def _note_earlier_studies(self) -> None:
        """Say so when this new study leaves finished runs of an earlier version of the same spec behind."""
        from fadepth.sweep import study as st

        earlier = {k: n for k, n in st.earlier_studies(self.storage, self.plan.spec, self.plan.profile,
                                                        self.plan.extra).items() if n}
        if earlier:
            listed = ", ".join(f"{name} ({n} finished)" for name, n in sorted(earlier.items()))
            print(f"note: {self.plan.spec.path.name} changed since {listed} (any edit counts, descriptions too): "
                  f"this is a new study {self.study_name} and re-runs every cell; the earlier runs stay in "
                  "the store, not reused", file=sys.stderr)

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
    """Poll until every worker exits and no cell is still running (in another launcher's worker);
    returns False when interrupted (Ctrl-C)."""
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


def others_running(sweep: Sweep) -> bool:
    """Cells still RUNNING once this launcher's workers are gone: another launcher's (dead ones are repaired)."""
    if not sweep.plan.cells:
        return False
    sweep.repair()
    return sweep.progress()["running"] > 0


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


def log_sweep_fps(sweep: Sweep) -> None:
    """FPS once per architecture of the sweep, timed after the workers exit, on the parent run."""
    from fadepth import contracts
    from fadepth.sweep import tracking as tr
    from fadepth.sweep.worker import sweep_fps

    logged = sweep.client.get_run(sweep.parent_run_id).data.metrics
    if any(name.startswith(contracts.FPS_METRIC.format("")) for name in logged):
        return  # measured by an earlier run of the same command
    fps = sweep_fps(sweep.plan.spec, sweep.plan.profile, sweep.plan.extra, sweep.plan.schemes)
    tr.log_sweep_fps(sweep.client, sweep.parent_run_id, fps)


# ------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    """``sweeps/run.py``: every error ends as one line (:mod:`fadepth.cli.boundary`)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # Ctrl-C must reach the wait loop even when started from a background shell job (which inherits
    # SIGINT as ignored, so Python would never raise KeyboardInterrupt).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    return guarded("sweeps/run.py", lambda: run(args), debug=args.debug)


def run(args: argparse.Namespace) -> int:
    plan = Plan(args)
    if args.dry_run:
        print_dry_run(plan)
        return 0
    for line in duplicate_lines(plan):
        print(line, file=sys.stderr)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.launcher == "slurm":  # before any store is written or job submitted
        from fadepth.sweep import slurm

        slurm.check(args)
    sweep = Sweep(plan, args)
    try:
        return launch(sweep, plan, args, sweep.prepare())
    except BaseException as exc:  # never leave the sweep run RUNNING behind an error of this process
        with contextlib.suppress(Exception):  # (nothing to end if the parent run was never created)
            sweep.finish("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")
        raise


def launch(sweep: Sweep, plan: Plan, args: argparse.Namespace, queued: dict[str, int] | None) -> int:
    if queued is not None:
        print(f"{sweep.study_name}: {queued['done']} done, {queued['enqueued']} queued now, "
              f"{queued['queued'] + queued['running']} already queued/running, "
              f"{queued['failed']} failed (skipped; --retry-failed re-runs them)")
    from fadepth.sweep import study as st

    if plan.cells and not st.has_waiting(sweep.study) and not others_running(sweep):
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
    counts = summarise(sweep)
    if not completed:
        sweep.finish("KILLED")
        print("interrupted: re-run the same command to finish the remaining runs", file=sys.stderr)
        return 130
    ok = counts["done"] == len(plan.cells) if plan.cells else True
    if not args.worker_only:
        log_sweep_fps(sweep)
    sweep.finish("FINISHED" if ok else "FAILED")
    bad = [p.pid for p in procs if p.returncode not in (0, 130)]
    if bad:
        print(f"{len(bad)} worker(s) exited abnormally; logs under {sweep.runs_dir / 'logs' / sweep.study_name}; "
              "re-run the same command to redo their runs", file=sys.stderr)
    return 0 if ok else 1
