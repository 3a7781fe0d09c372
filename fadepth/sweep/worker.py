"""A sweep worker: a process that pulls queued trials (scheme x seed) from the shared Optuna storage, trains
(or counts complexity), logs one MLflow child run per trial, and exits when the queue is empty.

Started by the launcher as ``python -m fadepth.sweep.worker '<context JSON>'`` (one per GPU with
``CUDA_VISIBLE_DEVICES`` set, or N on CPU), or on other machines through ``sweeps/run.py --worker-only``.
A trial that raises (or hits a NaN loss) ends FAIL in Optuna and FAILED in MLflow with tag ``fadepth.error``,
and the worker goes on with the next one.  On SIGINT the current run ends KILLED / FAIL(interrupted) and
the worker exits; the launcher re-queues interrupted cells on the next start.

Pre-emption (SIGUSR2: SLURM's time-limit warning or a pre-emption signal; SIGTERM inside a SLURM job): the
run stops after its current step, the trainer writes its checkpoint there, the trial ends FAIL(interrupted),
its cell is queued again at once and its MLflow run is left KILLED with tag ``fadepth.resumable``; whichever
worker takes the cell next continues that same run from the checkpoint (fadepth/sweep/slurm.py).

The trainer is ``fadepth.train.train``; ``FADEPTH_SWEEP_TRAIN_FN=module:function`` substitutes another
callable with the same contract (e.g. a stub, to profile the runner alone).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import math
import os
import re
import signal
import socket
import sys
import traceback
from pathlib import Path
from typing import Any, Callable

import optuna
import yaml

from fadepth import contracts
from fadepth.sweep import study as st
from fadepth.sweep import tracking as tr
from fadepth.sweep.spec import SweepSpec, load_spec
from fadepth.sweep.stores import guard_trial_takes

from fadepth.sweep.measure import complexity_metrics

log = logging.getLogger("fadepth.sweep.worker")


@dataclasses.dataclass
class WorkerContext:
    """Everything a worker needs; created by the launcher, passed as JSON."""

    spec_path: str
    profile: str
    study_name: str
    storage_url: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    runs_dir: str
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    git_commit: str = "unknown"
    gpu: str | None = None
    index: int = 0
    keep_training_state: bool = False  # sweeps/run.py --keep-training-state: finished runs keep checkpoint.pt
    schemes: list[str] | None = None  # the request's cells (schemes x seeds): the only trials this worker takes
    seeds: list[int] | None = None

    @property
    def cells(self) -> set[str] | None:
        if self.schemes is None or self.seeds is None:
            return None
        return {st.Cell(s, int(seed)).key for s in self.schemes for seed in self.seeds}

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "WorkerContext":
        return cls(**json.loads(text))


def load_train_fn() -> Callable[..., Any]:
    target = os.environ.get("FADEPTH_SWEEP_TRAIN_FN", "fadepth.train:train")
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr or "train")


def run_dir_name(scheme: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.@+-]", "_", scheme)
    return slug if slug == scheme else f"{slug}-{abs(hash_text(scheme)) % 10**6:06d}"


def hash_text(text: str) -> int:
    import hashlib

    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


class Objective:
    """The Optuna objective: one trial = one scheme x seed = one MLflow child run."""

    def __init__(self, ctx: WorkerContext, spec: SweepSpec, client: tr.MlflowClient):
        self.ctx, self.spec, self.client = ctx, spec, client
        self.interrupted: st.Cell | None = None  # the cell of the trial a stop signal interrupted
        self.host, self.pid = socket.gethostname(), os.getpid()
        self.train_fn = load_train_fn() if spec.kind == "train" else None
        self._device_tag: str | None = None

    # ------------------------------------------------------------------------------ the trial
    def __call__(self, trial: optuna.Trial) -> float:
        try:
            return self.run_trial(trial)
        except KeyboardInterrupt:
            trial.set_user_attr(st.ATTR_FAILURE, "interrupted")
            trial.set_user_attr(st.ATTR_ERROR, StopCheck.describe())
            raise

    def run_trial(self, trial: optuna.Trial) -> float:
        cell, scheme, seed, extra = self.cell_of(trial)
        trial.set_user_attr(st.ATTR_HOST, self.host)
        trial.set_user_attr(st.ATTR_PID, self.pid)
        done = tr.finished_child_run(self.client, self.ctx.experiment_id, self.ctx.study_name, cell)
        out_dir = Path(self.ctx.runs_dir) / "train" / self.ctx.study_name / run_dir_name(scheme) / f"seed{seed}"
        if done is not None:  # logged completely by an earlier worker that died before telling Optuna
            trial.set_user_attr("mlflow_run_id", done.info.run_id)
            self.drop_training_state(out_dir)
            return self.primary_value(done.data.metrics)
        cfg = self.spec.resolve(scheme, seed, self.ctx.profile, {**extra, "train.out_dir": str(out_dir)})
        run_id = resume_preempted_run(self.client, self.ctx, cell, self.tags(trial, cell, scheme, seed, cfg))
        new_run = run_id is None
        if new_run:
            run_id = tr.start_child_run(
                self.client, self.ctx.experiment_id, self.ctx.parent_run_id, run_name=contracts.run_name(scheme, seed),
                tags=self.tags(trial, cell, scheme, seed, cfg), params=self.logged_params(cfg))
        trial.set_user_attr("mlflow_run_id", run_id)
        try:  # from here on any error is recorded on both the trial and the run (e.g. a read-only artifact store)
            if new_run:
                self.client.log_text(run_id, yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False),
                                     "config.yaml")
            metrics = self.run_cell(trial, cfg, run_id)
            value = self.primary_value(metrics)
        except optuna.TrialPruned as exc:
            self.client.set_tag(run_id, contracts.PRUNED, "true")
            tr.fail_run(self.client, run_id, exc, status="KILLED")
            raise
        except KeyboardInterrupt as exc:
            if StopCheck.preempted() and self.spec.search is None:
                self.interrupted = st.Cell(scheme, seed)
                self.client.set_tag(run_id, RESUMABLE, "true")
                self.client.set_tag(run_id, PREEMPTED_AT, str(StopCheck.stopped_at))
                self.client.set_terminated(run_id, status="KILLED")
            else:
                tr.fail_run(self.client, run_id, exc, status="KILLED")
            raise
        except Exception as exc:
            trial.set_user_attr(st.ATTR_FAILURE, "error")
            trial.set_user_attr(st.ATTR_ERROR, f"{type(exc).__name__}: {exc}"[:2000])
            tr.fail_run(self.client, run_id, exc)
            log.error("cell %s failed:\n%s", cell, "".join(traceback.format_exception(exc)))
            raise
        self.client.set_terminated(run_id, status="FINISHED")
        self.drop_training_state(out_dir)
        return value

    def drop_training_state(self, out_dir: Path) -> None:
        """A FINISHED run keeps weights.pt and drops checkpoint.pt (the resumable training state, ~10x larger)
        unless --keep-training-state; an unfinished run never gets here, so it keeps both and resumes."""
        from fadepth.checkpoint import STATE_NAME, WEIGHTS_NAME

        if not self.ctx.keep_training_state and self.spec.kind == "train" and (out_dir / WEIGHTS_NAME).is_file():
            (out_dir / STATE_NAME).unlink(missing_ok=True)

    def cell_of(self, trial: optuna.Trial) -> tuple[str, str, int, dict[str, Any]]:
        extra = dict(self.ctx.extra)
        if self.spec.search is None:
            cell = trial.user_attrs.get(st.ATTR_CELL)
            if cell is None:  # created because the queue was empty when this worker asked: not ours
                raise optuna.TrialPruned("no queued cell (the queue emptied while this worker asked)")
            scheme = trial.suggest_categorical(st.ATTR_SCHEME, self.spec.scheme_names)
            seed = trial.suggest_int(st.ATTR_SEED, *st.SEED_RANGE)
            return cell, scheme, seed, extra
        search = self.spec.search
        scheme = search.scheme or self.spec.baseline or self.spec.scheme_names[0]
        seed = self.spec.seeds_for(self.ctx.profile)[0]
        for key, p in search.space.items():
            if p.type == "categorical":
                extra[key] = trial.suggest_categorical(key, p.choices)
            elif p.type == "int":
                extra[key] = trial.suggest_int(key, int(p.low), int(p.high), log=p.log, step=int(p.step or 1))
            else:
                extra[key] = trial.suggest_float(key, p.low, p.high, log=p.log, step=p.step)
        cell = f"search#{trial.number}"
        trial.set_user_attr(st.ATTR_CELL, cell)
        return cell, scheme, seed, extra

    def run_cell(self, trial: optuna.Trial, cfg, run_id: str) -> dict[str, float]:
        if self.spec.kind == "complexity":
            metrics = complexity_metrics(cfg, required=True, fps_reps=50)
            tr.log_final_metrics(self.client, run_id, metrics)
            return metrics
        reporter = (lambda it, m: self.report(trial, it, m)) if self.spec.search else None
        curves = tr.CurveLogger(self.client, run_id, on_eval_hook=reporter)
        panels = tr.PanelLogger(self.client, run_id, cfg)
        try:  # StopCheck last: the step it stops at is logged, and the trainer checkpoints it
            result = self.train_fn(cfg, callbacks=[curves, panels, StopCheck()], resume=True)
        except KeyboardInterrupt:
            curves.flush()
            raise
        metrics = {k: float(v) for k, v in result.metrics.items()}
        metrics.update(complexity_metrics(cfg, required=False, fps_reps=0))  # FPS: once per sweep (launcher)
        tr.log_final_metrics(self.client, run_id, metrics, step=int(getattr(result, "iterations", 0) or 0))
        self.log_artifacts(run_id, cfg, Path(getattr(result, "weights", None) or result.checkpoint))  # weights only
        return metrics

    def report(self, trial: optuna.Trial, iteration: int, metrics: dict[str, float]) -> None:
        value = metrics.get(self.spec.metrics.primary)
        if value is not None and math.isfinite(float(value)):
            trial.report(float(value), iteration)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at iteration {iteration}")

    def primary_value(self, metrics: dict[str, float]) -> float:
        name = self.spec.metrics.primary
        value = float(metrics.get(name, math.nan))
        if not math.isfinite(value):
            raise FloatingPointError(f"primary metric {name} is {value} (metrics: {metrics})")
        return value

    # ------------------------------------------------------------------------------ logging
    def logged_params(self, cfg) -> dict[str, Any]:
        """MLflow params: the recipe columns, every key the spec / profile / --set vary (the dry-run table's
        columns) and the seed, not ~120 keys; the whole config is the ``config.yaml`` artifact."""
        flat = cfg.to_flat_dict()
        keys = self.spec.dry_run_keys(self.spec.scheme_names, self.ctx.profile)
        keys += [k for k in (*self.ctx.extra, "train.seed") if k not in keys]
        return {k: flat[k] for k in keys if k in flat}

    def tags(self, trial: optuna.Trial, cell: str, scheme: str, seed: int, cfg) -> dict[str, Any]:
        return {
            tr.TABLE: self.spec.name, tr.SCHEME: scheme, tr.SEED: seed, tr.SPEC_HASH: self.spec.spec_hash,
            tr.PROFILE: self.ctx.profile, tr.GIT: self.ctx.git_commit, tr.DEVICE: self.device_tag(cfg),
            tr.VERSIONS: tr.versions(), tr.STUDY: self.ctx.study_name, tr.TRIAL: trial.number,
            tr.WORKER: f"{self.host}:{self.pid}", contracts.CELL: cell, tr.GPU: self.ctx.gpu or "",
        }

    def device_tag(self, cfg) -> str:
        if self._device_tag is None:
            try:
                from fadepth.utils import resolve_device

                device = resolve_device(cfg.train.device)
                name = device.type
                if device.type == "cuda":
                    import torch

                    name = f"{device} ({torch.cuda.get_device_name(device)})"
                self._device_tag = name
            except Exception as exc:  # noqa: BLE001 - a tag must never fail a run
                self._device_tag = f"{cfg.train.device} (unresolved: {exc})"
        return self._device_tag

    def log_artifacts(self, run_id: str, cfg, checkpoint: Path) -> None:  # noqa: ARG002
        if checkpoint.is_file():
            self.client.log_artifact(run_id, str(checkpoint), "checkpoint")


# ---------------------------------------------------------------------------------- stopping
PREEMPT_SIGNUM = signal.SIGUSR2  # SLURM --signal=USR2@T (submitit's checkpoint signal); see sweep/slurm.py
RESUMABLE, PREEMPTED_AT = contracts.RESUMABLE, contracts.PREEMPTED_AT


class StopCheck:
    """SIGINT / SIGTERM / SIGUSR2 set a flag; the run stops at the next training step, where the trainer
    writes its checkpoint (a second signal: at once)."""

    requested = False
    signum: int | None = None  # the first stop signal
    stopped_at: int | None = None  # the iteration the run stopped at
    previous: dict[int, Any] = {}  # handlers install() replaced (submitit's, inside a SLURM job)

    @classmethod
    def install(cls) -> None:
        def handler(signum, frame):  # noqa: ARG001
            if cls.requested:
                raise KeyboardInterrupt
            cls.requested, cls.signum = True, signum
            log.warning("signal %s: stopping after the current step", signal.Signals(signum).name)

        for sig in (signal.SIGINT, signal.SIGTERM, PREEMPT_SIGNUM):
            cls.previous[sig] = signal.signal(sig, handler)

    @classmethod
    def uninstall(cls) -> dict[int, Any]:
        """Put back the handlers install() replaced; returns them."""
        previous, cls.previous = cls.previous, {}
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        return previous

    @classmethod
    def preempted(cls) -> bool:
        """Stopped to hand the run over (not by a user's Ctrl-C): SIGUSR2, or SIGTERM inside a SLURM job
        (``scancel``, pre-emption with PreemptMode=REQUEUE)."""
        return cls.signum == PREEMPT_SIGNUM or (cls.signum == signal.SIGTERM and "SLURM_JOB_ID" in os.environ)

    @classmethod
    def describe(cls) -> str:
        name = signal.Signals(cls.signum).name if cls.signum else "SIGINT"
        where = f" at iteration {cls.stopped_at}" if cls.stopped_at is not None else ""
        return f"{'preempted' if cls.preempted() else 'interrupted'} ({name}){where}"

    def on_iteration(self, iteration: int) -> None:
        if StopCheck.requested:
            from fadepth.train import StopRequested  # a KeyboardInterrupt the trainer checkpoints first

            StopCheck.stopped_at = iteration
            raise StopRequested


def resume_preempted_run(client: tr.MlflowClient, ctx: WorkerContext, cell: str, tags: dict[str, Any]) -> str | None:
    """The KILLED run a pre-empted worker left for this cell, RUNNING again (its checkpoint resumes it)."""
    runs = client.search_runs(
        [ctx.experiment_id],
        f"tags.`{tr.STUDY}` = '{ctx.study_name}' and tags.`{contracts.CELL}` = '{tr.quote_tag_value(cell)}' "
        f"and tags.`{RESUMABLE}` = 'true' and attributes.status = 'KILLED'",
        max_results=1, order_by=["attributes.start_time DESC"])
    if not runs:
        return None
    run_id = runs[0].info.run_id
    client.set_tag(run_id, RESUMABLE, "false")
    for key in (tr.TRIAL, tr.WORKER, tr.GPU, tr.DEVICE):
        client.set_tag(run_id, key, str(tags[key]))
    client.update_run(run_id, status="RUNNING")
    log.info("cell %s: resuming MLflow run %s (pre-empted at iteration %s)", cell, run_id,
             runs[0].data.tags.get(PREEMPTED_AT))
    return run_id


def release_cell(study: optuna.Study, spec: SweepSpec, cell: st.Cell) -> None:
    """Queue a pre-empted cell again at once, so another worker (or this job, requeued) resumes it."""
    counts = st.enqueue_cells(study, spec, [cell], retry_failed=False)
    log.warning("cell %s released (%s)", cell.key, "queued again" if counts["enqueued"] else "already queued")


# ---------------------------------------------------------------------------------- main loop
def run_worker(ctx: WorkerContext) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = load_spec(ctx.spec_path)
    client = tr.configure(ctx.tracking_uri)
    cells = ctx.cells if spec.search is None else None
    storage = guard_trial_takes(st.open_storage(ctx.storage_url), ctx.storage_url, cells)
    study = st.load_study(spec, ctx.study_name, storage)
    objective = Objective(ctx, spec, client)
    log.info("worker %d (pid %d, gpu %s) on study %s", ctx.index, os.getpid(), ctx.gpu, ctx.study_name)
    StopCheck.install()
    while True:
        if StopCheck.requested:
            return 130
        if spec.search is None and not st.has_waiting(study, cells):
            return 0
        if spec.search is not None:
            complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
            if len(complete) >= spec.search.n_trials:
                return 0
        try:
            study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=True)
        except KeyboardInterrupt:
            if objective.interrupted is not None:  # pre-empted: hand the cell over before exiting
                release_cell(study, spec, objective.interrupted)
            raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s [worker {os.getpid()}] %(levelname)s %(message)s")
    ctx = WorkerContext.from_json(argv[0])
    try:
        return run_worker(ctx)
    except KeyboardInterrupt:
        log.warning("interrupted: exiting")
        return 130


if __name__ == "__main__":
    sys.exit(main())
