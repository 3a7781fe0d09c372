"""How long a sweep request would run: what :func:`fadepth.sweep.checks.check_size` prints before a large
request (more than ``BIG_SEEDS`` seeds or ``BIG_CELLS`` runs) is queued (issue 25).

Per-run seconds come from this study's finished runs when it has any (Optuna COMPLETE trials, start to end;
their median), read without writing: a store that does not exist yet, or cannot be read, counts as none (the
sweep's own store check names a damaged one when it opens it).  Before any run has finished the figure is
rough: each scheme's ``train.iterations`` times :data:`ROUGH_SECONDS_PER_ITERATION` of the device its workers
use.  The wall time is the runs still to do times that figure, over the workers the launcher will start
(:func:`fadepth.sweep.packing.worker_devices`).  The line always says which basis it used.
"""
from __future__ import annotations

import argparse
import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping, Sequence

from fadepth.sweep.packing import resolve_gpus, worker_devices
from fadepth.sweep.stores import local_store_file

# Rough seconds per training iteration, for a study without a finished run.  cpu: the `smoke` step (64x208,
# batch 4, one thread per worker: ablations/base/smoke.yaml); cuda: the KITTI-size recipe on one H200
# (1.9 it/s, benchmarks/README.md) -- the small profiles run ~10x faster there (`synthetic`: 17.7 it/s).
# Validation, data loading and start-up are not counted.
ROUGH_SECONDS_PER_ITERATION = {"cpu": 1.3, "cuda": 0.5}
ROUGH_SECONDS_PER_COUNT = 10.0  # a complexity cell (build the model, count its ops): no training


@dataclass(frozen=True)
class Estimate:
    to_run: int  # runs of the request not finished yet
    seconds_per_run: float
    workers: int
    basis: str  # where seconds_per_run comes from, e.g. "from 8 finished runs of this study"
    finished: int = 0  # runs of the request already finished

    def text(self) -> str:
        """'122 still to run: ~3.2 h at 2 workers (from 8 finished runs of this study, median 190 s each)'."""
        wall = self.to_run * self.seconds_per_run / max(1, self.workers)
        done = f"{self.to_run} still to run, {self.finished} finished: " if self.finished else ""
        return f"{done}~{duration(wall)} at {self.workers} worker(s) ({self.basis})"


def duration(seconds: float) -> str:
    """45 s, 12 min, 3.2 h, 2.5 days."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# ------------------------------------------------------------------------------------ workers
def planned_workers(args: argparse.Namespace) -> tuple[int, str, str]:
    """(runs at once, device kind 'cuda' / 'cpu', a note) as the launcher will start the workers."""
    if getattr(args, "launcher", "local") == "slurm":
        gpus = getattr(args, "gpus_per_job", 1)
        return max(1, getattr(args, "jobs", 1)) * max(1, gpus), ("cuda" if gpus else "cpu"), ""
    gpu_ids = resolve_gpus(getattr(args, "gpus", "auto"))
    per_gpu = getattr(args, "workers_per_gpu", None)
    workers = len(worker_devices(gpu_ids, per_gpu or 1, getattr(args, "workers", None)))
    note = "; 1 worker per GPU counted, the automatic packing may start more" if gpu_ids and per_gpu is None else ""
    return workers, ("cuda" if gpu_ids else "cpu"), note


# ------------------------------------------------------------------------------------ finished runs
def finished_trials(storage_url: str, study_name: str) -> list:
    """The COMPLETE trials of the study, read without writing: [] when its store or the study does not exist
    yet, or the store cannot be read here."""
    file = local_store_file(storage_url)
    if file is not None and not file.is_file():
        return []  # opening it would create it
    import optuna
    from optuna.storages import JournalStorage, RDBStorage
    from optuna.storages.journal import JournalFileBackend
    from optuna.trial import TrialState

    try:
        storage = (RDBStorage(storage_url, skip_table_creation=True, skip_compatibility_check=True)
                   if "://" in storage_url else JournalStorage(JournalFileBackend(str(file))))
        study = optuna.load_study(study_name=study_name, storage=storage)
        return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    except Exception:  # best effort (an estimate): a damaged store gets its one line when the sweep opens it
        return []


def seconds_of(trials: Sequence) -> list[float]:
    return [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials
            if isinstance(t.datetime_start, datetime) and isinstance(t.datetime_complete, datetime)]


# ------------------------------------------------------------------------------------ the estimate
def rough_seconds_per_run(spec, profile: str, extra: Mapping[str, Any], schemes: Sequence[str], seed: int,
                          device: str) -> tuple[float, str]:
    """(seconds, basis) from the schemes' iterations and :data:`ROUGH_SECONDS_PER_ITERATION`."""
    if spec.kind != "train":
        return ROUGH_SECONDS_PER_COUNT, (f"rough: no finished run of this study yet; "
                                         f"~{ROUGH_SECONDS_PER_COUNT:.0f} s per count")
    iterations = statistics.mean(spec.resolve(s, seed, profile, dict(extra)).train.iterations for s in schemes)
    per_iteration = ROUGH_SECONDS_PER_ITERATION[device]
    return iterations * per_iteration, (f"rough: no finished run of this study yet; {iterations:.0f} iterations "
                                        f"x {per_iteration} s per iteration on {device.upper()}")


def estimate(plan, args: argparse.Namespace) -> Estimate:
    """The estimate for a :class:`fadepth.sweep.plan.Plan`'s cells (read from its spec, profile, --set,
    schemes and seeds) under ``args``' workers and store."""
    from fadepth.sweep import study as st

    workers, device, note = planned_workers(args)
    name = st.study_name(plan.spec, plan.profile, plan.extra)
    trials = finished_trials(st.storage_url_of(getattr(args, "storage", None), getattr(args, "runs_dir", "runs")),
                             name)
    wanted = {cell.key for cell in st.cells_of(plan.spec, plan.schemes, plan.seeds)}
    finished = len({t.user_attrs.get(st.ATTR_CELL) for t in trials} & wanted)
    seconds = seconds_of(trials)
    if seconds:
        per_run = statistics.median(seconds)
        basis = f"from {len(seconds)} finished run(s) of this study, median {duration(per_run)} each"
    else:
        per_run, basis = rough_seconds_per_run(plan.spec, plan.profile, plan.extra, plan.schemes, plan.seeds[0],
                                               device)
    return Estimate(len(wanted) - finished, per_run, workers, basis + note, finished)
