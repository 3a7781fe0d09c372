"""One sweep's prepared stores and its progress, shared by the local launcher (:mod:`fadepth.sweep.launcher`)
and the SLURM launcher (:mod:`fadepth.sweep.slurm`).

:class:`Sweep` opens or creates, under the store lock, the Optuna study, the MLflow experiment and the parent
sweep run, repairs cells whose worker died and enqueues the cells of a :class:`fadepth.sweep.plan.Plan`;
:func:`progress_bar` / :func:`update_bar` show its progress, :func:`summarise` prints the cells' end states.
"""
from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from fadepth.config import ConfigError
from fadepth.outputs import ensure_folder
from fadepth.sweep.plan import Plan
from fadepth.sweep.stores import check_stores, store_lock


class Sweep:
    """The prepared stores of one sweep (created here, before any worker)."""

    def __init__(self, plan: Plan, args: argparse.Namespace):
        from fadepth.sweep import study as st
        from fadepth.sweep import tracking as tr

        self.plan, self.args = plan, args
        self.runs_dir = Path(args.runs_dir).resolve()
        self.storage_url = st.storage_url_of(args.storage, self.runs_dir)
        self.tracking_uri = args.tracking_uri or tr.default_tracking_uri(self.runs_dir)
        check_stores(self.storage_url, self.tracking_uri, self.runs_dir)
        ensure_folder(self.runs_dir, "--runs-dir")
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


# ------------------------------------------------------------------------------------ progress
def progress_bar(sweep: Sweep, show_progress: bool):
    """A tqdm bar over the sweep's cells (or its search's trials); :func:`update_bar` moves it."""
    from tqdm import tqdm

    cells = sweep.plan.cells
    total = len(cells) if cells else sweep.plan.spec.search.n_trials
    # Cells already done (or failed and not retried) when the bar starts are its `initial`: tqdm's rate, hence
    # the ETA, counts only the runs of this session (a resumed sweep's first ETA was nonsense).
    counts = sweep.progress() if cells else {"done": 0, "failed": 0}
    return tqdm(total=total, initial=counts["done"] + counts["failed"], desc=sweep.study_name, unit="run",
                disable=not show_progress, dynamic_ncols=True)


def others_running(sweep: Sweep) -> bool:
    """Cells still RUNNING once this launcher's workers are gone: another launcher's (dead ones are repaired)."""
    if not sweep.plan.cells:
        return False
    sweep.repair()
    return sweep.progress()["running"] > 0


def update_bar(sweep: Sweep, bar) -> None:
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
