"""The Optuna side of a sweep: storage, study, one enqueued trial per scheme x seed, stale-cell repair.

Why ``enqueue_trial`` and not ``GridSampler``: with several workers on one storage the grid sampler
duplicated cells and never re-runs a FAIL one (runner.md section 1.1); a queue filled by one process (the
launcher) and drained by the workers gives exactly one trial per cell.  A trial that a worker created
itself because the queue was empty carries no ``cell`` attribute and is pruned at once.

Storage: the default is a journal file (no server, multi-process safe, no heartbeat -- so each trial
records its worker's host and pid and the launcher fails and re-enqueues cells whose worker is dead);
an ``sqlite:``/``postgresql+psycopg2:``/``mysql+pymysql:`` URL gives an RDB storage with heartbeat and
:class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, for workers on several machines.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import warnings
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterable, Mapping

import optuna
from optuna.storages import JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from fadepth.sweep.spec import SweepSpec

log = logging.getLogger(__name__)
# fail_stale_trials and the heartbeat callback are stable in use here but marked experimental by Optuna, which
# warns (with its source line) on every start: silenced for calls from fadepth.sweep only.
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning, module=r"fadepth\.sweep\.")

SEED_RANGE = (0, 1_000_000)  # seed is an int param over a fixed range: --seeds may change between runs
HEARTBEAT_S = int(os.environ.get("FADEPTH_SWEEP_HEARTBEAT_S", "60"))
STALE_WITHOUT_WORKER_S = 120  # a RUNNING trial that never recorded its worker is stale after this
ATTR_CELL, ATTR_SCHEME, ATTR_SEED = "cell", "scheme", "seed"
ATTR_HOST, ATTR_PID = "worker_host", "worker_pid"
ATTR_ERROR, ATTR_FAILURE = "fadepth.error", "fadepth.failure"  # failure: error | interrupted | worker_died


@dataclass(frozen=True)
class Cell:
    scheme: str
    seed: int

    @property
    def key(self) -> str:
        return f"{self.scheme}|seed={self.seed}"


def cells_of(spec: SweepSpec, schemes: Iterable[str], seeds: Iterable[int]) -> list[Cell]:
    """The cells in queue order, *seed-major*: every scheme of the first seed (the baseline first, then the
    spec's order), then every scheme of the next seed, and so on.  Workers pull the queue in trial-number order
    (Optuna's ``enqueue_trial`` + ``ask`` pop the lowest-numbered WAITING trial), so any finished prefix of a
    sweep -- one cut short, or one round of ``--until-resolved`` -- holds whole seeds: paired comparisons."""
    ordered = list(schemes)
    if spec.baseline in ordered:
        ordered.remove(spec.baseline)
        ordered.insert(0, spec.baseline)
    return [Cell(s, int(seed)) for seed in seeds for s in ordered]


def study_name(spec: SweepSpec, profile: str, extra: Mapping[str, Any] | None = None) -> str:
    """``<table>-<spec hash>-<profile>`` (+ a hash of ``--set`` overrides): an edited spec, base file or code
    default is a new study."""
    name = f"{spec.name}-{spec.spec_hash}-{profile}"
    if extra:
        name += "-x" + hashlib.sha256(json.dumps(dict(extra), sort_keys=True, default=str).encode()).hexdigest()[:6]
    return name


def earlier_studies(storage: optuna.storages.BaseStorage, spec: SweepSpec, profile: str,
                    extra: Mapping[str, Any] | None = None) -> dict[str, int]:
    """Studies of the same table, profile and ``--set`` overrides under another spec hash, with their finished
    runs: results an edit of the spec (descriptions included), a base file or a code default left behind.
    They stay in the store; the current study does not reuse them."""
    current = study_name(spec, profile, extra)
    head, tail = f"{spec.name}-", current[len(f"{spec.name}-{spec.spec_hash}"):]
    found = {}
    for name in optuna.get_all_study_names(storage):
        hash_part = name[len(head):len(name) - len(tail)] if name.startswith(head) and name.endswith(tail) else ""
        if name != current and len(hash_part) == len(spec.spec_hash) and all(c in "0123456789abcdef" for c in hash_part):
            trials = optuna.load_study(study_name=name, storage=storage).get_trials(
                deepcopy=False, states=(TrialState.COMPLETE,))
            found[name] = len(trials)
    return found


# ------------------------------------------------------------------------------------ storage
def default_storage_url(runs_dir: Path) -> str:
    return str((runs_dir / "optuna.journal").resolve())


def storage_url_of(storage: str | None, runs_dir: str | Path) -> str:
    """The Optuna storage a sweep uses: ``--storage``, else the journal under ``--runs-dir``."""
    return storage or default_storage_url(Path(runs_dir).resolve())


def is_rdb(url: str) -> bool:
    return "://" in url and url.split(":", 1)[0].split("+")[0] in {"sqlite", "postgresql", "mysql"}


def open_storage(url: str) -> optuna.storages.BaseStorage:
    """A journal file path (default) or an RDB URL (heartbeat + retry of stale trials)."""
    if is_rdb(url):
        engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 60}}
        return RDBStorage(
            url,
            engine_kwargs=engine_kwargs,
            heartbeat_interval=HEARTBEAT_S,
            grace_period=3 * HEARTBEAT_S,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
        )
    if "://" in url:
        raise ValueError(f"--storage {url!r}: expected a journal file path or an sqlite/postgresql/mysql URL")
    path = Path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    return JournalStorage(JournalFileBackend(str(path)))


def make_sampler(spec: SweepSpec) -> optuna.samplers.BaseSampler:
    kind = spec.search.sampler if spec.search else "random"
    seed = spec.seeds[0]
    return {
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "cmaes": lambda: optuna.samplers.CmaEsSampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed),
    }[kind]()


def make_pruner(spec: SweepSpec) -> optuna.pruners.BasePruner:
    kind = spec.search.pruner if spec.search else "none"
    return {
        "none": optuna.pruners.NopPruner,
        "median": optuna.pruners.MedianPruner,
        "percentile": lambda: optuna.pruners.PercentilePruner(25.0),
        "hyperband": optuna.pruners.HyperbandPruner,
        "successive_halving": optuna.pruners.SuccessiveHalvingPruner,
    }[kind]()


def create_study(spec: SweepSpec, name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        direction=spec.metrics.direction,
        sampler=make_sampler(spec),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )
    study.set_user_attr("spec_path", str(spec.path))
    study.set_user_attr("spec_hash", spec.spec_hash)
    return study


def load_study(spec: SweepSpec, name: str, storage: optuna.storages.BaseStorage) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=storage, sampler=make_sampler(spec), pruner=make_pruner(spec))


# ------------------------------------------------------------------------------------ cells
def trials_by_cell(study: optuna.Study) -> dict[str, list[FrozenTrial]]:
    out: dict[str, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        cell = t.user_attrs.get(ATTR_CELL)
        if cell is not None:
            out.setdefault(cell, []).append(t)
    return out


def cell_state(trials: list[FrozenTrial]) -> str:
    """done | queued | running | failed | redo | new, from all trials of one cell."""
    states = {t.state for t in trials}
    if TrialState.COMPLETE in states:
        return "done"
    if TrialState.WAITING in states:
        return "queued"
    if TrialState.RUNNING in states:
        return "running"
    if not trials:
        return "new"
    last = max(trials, key=lambda t: t.number)
    if last.state == TrialState.FAIL and last.user_attrs.get(ATTR_FAILURE) not in ("interrupted", "worker_died"):
        return "failed"  # raised / NaN loss: re-run only with --retry-failed
    return "redo"  # interrupted, worker died, or pruned: run it again


def enqueue_cells(study: optuna.Study, spec: SweepSpec, cells: list[Cell], retry_failed: bool) -> dict[str, int]:
    """Queue every cell that has no COMPLETE, WAITING or RUNNING trial (FAIL ones only with retry_failed), in
    the order of ``cells`` (seed-major, :func:`cells_of`).  Trials still WAITING from an earlier launcher keep
    their place ahead of the ones queued now; the launcher enqueues under the store lock, so two launchers
    never interleave their cells."""
    existing = trials_by_cell(study)
    counts = {"done": 0, "queued": 0, "running": 0, "failed": 0, "enqueued": 0}
    for cell in cells:
        state = cell_state(existing.get(cell.key, []))
        if state in ("done", "queued", "running") or (state == "failed" and not retry_failed):
            counts[state] += 1
            continue
        study.enqueue_trial(
            {ATTR_SCHEME: cell.scheme, ATTR_SEED: cell.seed},
            user_attrs={ATTR_CELL: cell.key, ATTR_SCHEME: cell.scheme, ATTR_SEED: cell.seed,
                        "spec_hash": spec.spec_hash},
        )
        counts["enqueued"] += 1
    return counts


def progress_of(study: optuna.Study, cells: list[Cell]) -> dict[str, int]:
    existing = trials_by_cell(study)
    counts = {"done": 0, "failed": 0, "running": 0, "queued": 0, "new": 0, "redo": 0}
    for cell in cells:
        counts[cell_state(existing.get(cell.key, []))] += 1
    return counts


def has_waiting(study: optuna.Study, cells: set[str] | None = None) -> bool:
    """Any queued trial (of `cells` only, when given: keys of :class:`Cell`)."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return any(cells is None or t.user_attrs.get(ATTR_CELL) in cells for t in waiting)


# ------------------------------------------------------------------------------------ repair
def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (dead child not yet reaped) still answers kill(0): look at /proc where there is one.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][:1] != "Z"
    except (OSError, IndexError):
        return True


def worker_is_dead(trial: FrozenTrial, now: datetime | None = None) -> bool:
    """True when a RUNNING trial's recorded worker ran on this host and its pid is gone."""
    host, pid = trial.user_attrs.get(ATTR_HOST), trial.user_attrs.get(ATTR_PID)
    if host is None or pid is None:
        started = trial.datetime_start
        return started is not None and (now or datetime.now()) - started > timedelta(seconds=STALE_WITHOUT_WORKER_S)
    return host == socket.gethostname() and not pid_alive(int(pid))


def repair_stale_trials(study: optuna.Study) -> list[FrozenTrial]:
    """Fail RUNNING trials whose worker is dead (so the cell is re-enqueued); returns them."""
    optuna.storages.fail_stale_trials(study)  # RDB heartbeat: fails and re-queues via the callback; else no-op
    stale = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)) if worker_is_dead(t)]
    for t in stale:
        who = f"{t.user_attrs.get(ATTR_HOST)}:{t.user_attrs.get(ATTR_PID)}"
        storage = study._storage
        storage.set_trial_user_attr(t._trial_id, ATTR_FAILURE, "worker_died")
        storage.set_trial_user_attr(t._trial_id, ATTR_ERROR, f"worker {who} died while the trial was running")
        try:
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except Exception as exc:  # finished meanwhile (UpdateFinishedTrialError): nothing to repair
            log.info("trial %d changed state while repairing it: %s", t.number, exc)
        log.warning("cell %s: worker %s is dead; trial %d marked FAIL and the cell will be re-run",
                    t.user_attrs.get(ATTR_CELL), who, t.number)
    return stale
