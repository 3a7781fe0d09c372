"""The MLflow side of a sweep (the layout in docs/architecture.md is a contract with fadepth/report).

One experiment per spec (named ``spec.name``, tagged model training for the MLflow UI); one parent run per sweep
(tag ``fadepth.role=sweep``, one per Optuna study, reused when the same command is run again); one child run per
scheme x seed (tag ``fadepth.role=run``) with the keys its spec varies and the recipe columns as params (the
resolved config is its ``config.yaml`` artifact), curves ``train/<term>`` / ``val/<metric>``,
final metrics under plain names, and status FINISHED only for complete runs.

Everything goes through :class:`mlflow.MlflowClient` with explicit run ids: no fluent active-run state,
so one worker process can log several runs one after the other without leaking state.
The store, experiment and parent run are created by the launcher before any worker starts
(concurrent first-time SQLite initialisation crashes, runner.md section 2.10).
"""
from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no download / upload bars in our output

import mlflow  # noqa: E402
from mlflow.entities import Metric, Param, RunTag  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from fadepth import contracts as c  # noqa: E402 - the tag names' owner; re-exported below for callers

# MLflow logs its schema creation / migration ("Creating initial MLflow database tables...") at INFO on its own
# handler: keep its warnings, drop the chatter around our progress bars.
logging.getLogger("mlflow").setLevel(logging.WARNING)

ROLE, TABLE, SCHEME, SEED = c.ROLE, c.TABLE, c.SCHEME, c.SEED
SPEC_HASH, PROFILE, GIT, DEVICE, VERSIONS = c.SPEC_HASH, c.PROFILE, c.GIT, c.DEVICE, c.VERSIONS
STUDY, TRIAL, WORKER, ERROR, GPU = c.STUDY, c.TRIAL, c.WORKER, c.ERROR, c.GPU
PARENT = c.PARENT
MAX_BATCH = 100  # log_batch: at most 100 params per call (1000 metrics)


def default_tracking_uri(runs_dir: Path) -> str:
    return f"sqlite:///{(runs_dir / 'mlflow.db').resolve()}"


def configure(tracking_uri: str) -> MlflowClient:
    os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    mlflow.set_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri)


# Which UI MLflow shows an experiment in: its experiment tag `mlflow.experimentKind` ("genai_development" or
# "custom_model_development", the values of MLflow's JS bundle).  Every fadepth experiment is model training.
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# MLflow 3.17's UI does not read that tag: it shows GenAI or model training after one browser-wide switch, read
# from the URL query `workflowType` first, then the browser's localStorage, default GenAI.  Links we print carry:
UI_MODEL_TRAINING = "workflowType=machine_learning"
UI_LOCAL = "http://127.0.0.1:5000"  # where `mlflow ui --port 5000` serves (docs/mlflow-ui.md)


def get_or_create_experiment(client: MlflowClient, name: str, artifact_root: Path | None) -> str:
    """The experiment's id, created if needed, tagged model training (an older store's experiment too, unless
    someone set its kind)."""
    exp = client.get_experiment_by_name(name)
    if exp is None:
        location = (artifact_root / name).resolve().as_uri() if artifact_root is not None else None
        return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: MODEL_TRAINING})
    if EXPERIMENT_KIND not in exp.tags:
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING)
    return exp.experiment_id


def runs_page_url(experiment_id: str, base: str = UI_LOCAL) -> str:
    """The MLflow UI's runs page of one experiment, opened in the model-training view (not GenAI)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{UI_MODEL_TRAINING}"


def git_commit(cwd: Path | None = None) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def versions() -> str:
    import optuna

    import fadepth

    out = {"python": platform.python_version(), "fadepth": fadepth.__version__, "optuna": optuna.__version__,
           "mlflow": mlflow.__version__}
    try:
        import torch

        out["torch"] = torch.__version__
    except ImportError:
        pass
    return json.dumps(out, sort_keys=True)


def find_parent_run(client: MlflowClient, experiment_id: str, study: str) -> str | None:
    runs = client.search_runs([experiment_id], f"tags.`{ROLE}` = 'sweep' and tags.`{STUDY}` = '{study}'",
                              max_results=1, order_by=["attributes.start_time DESC"])
    return runs[0].info.run_id if runs else None


def start_parent_run(client: MlflowClient, experiment_id: str, study: str, tags: Mapping[str, str],
                     spec_text: str, run_name: str) -> str:
    """Create the sweep run, or mark the existing one RUNNING again (a re-run of the same sweep)."""
    run_id = find_parent_run(client, experiment_id, study)
    if run_id is None:
        run = client.create_run(experiment_id, run_name=run_name,
                                tags={ROLE: "sweep", STUDY: study, **tags})
        run_id = run.info.run_id
        client.log_text(run_id, spec_text, "spec.yaml")
    else:
        client.update_run(run_id, status="RUNNING")
        client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])
    return run_id


def finished_child_run(client: MlflowClient, experiment_id: str, study: str, cell_key: str):
    """A FINISHED child run of this cell (e.g. a worker died after MLflow finished but before Optuna did)."""
    runs = client.search_runs(
        [experiment_id],
        f"tags.`{STUDY}` = '{study}' and tags.`{c.CELL}` = '{quote_tag_value(cell_key)}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0] if runs else None


def quote_tag_value(text: str) -> str:
    """`text` as a value inside single quotes of an MLflow search filter."""
    return text.replace("'", "\\'")


def start_child_run(client: MlflowClient, experiment_id: str, parent_run_id: str, run_name: str,
                    tags: Mapping[str, Any], params: Mapping[str, Any]) -> str:
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={ROLE: "run", PARENT: parent_run_id, **{k: str(v) for k, v in tags.items()}})
    items = [Param(k, _param_value(v)) for k, v in sorted(params.items())]
    for i in range(0, len(items), MAX_BATCH):
        client.log_batch(run.info.run_id, params=items[i:i + MAX_BATCH])
    return run.info.run_id


def _param_value(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, (list, tuple, dict)) else str(value)
    return text[:6000]


def log_final_metrics(client: MlflowClient, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if _is_number(v)]
    if items:
        client.log_batch(run_id, metrics=items)


def _is_number(v: Any) -> bool:
    try:
        float(v)
        return not isinstance(v, bool)
    except (TypeError, ValueError):
        return False


def fail_run(client: MlflowClient, run_id: str, exc: BaseException, status: str = "FAILED") -> None:
    """Record an error on a run (tag fadepth.error + traceback artifact) and end it FAILED / KILLED."""
    message = f"{type(exc).__name__}: {exc}"
    try:
        client.set_tag(run_id, ERROR, message[:7900])
        try:  # the artifact store may be the very thing that failed (read-only folder): keep the tag
            client.log_text(run_id, "".join(traceback.format_exception(exc)), "error.txt")
        except Exception as art_exc:  # noqa: BLE001
            client.set_tag(run_id, "fadepth.error_artifact", f"{type(art_exc).__name__}: {art_exc}"[:7900])
    finally:
        client.set_terminated(run_id, status=status)


def kill_orphan_runs(client: MlflowClient, experiment_id: str, study: str, is_dead) -> int:
    """End KILLED the RUNNING child runs whose worker (tag fadepth.worker = host:pid) is dead."""
    runs = client.search_runs([experiment_id],
                              f"tags.`{STUDY}` = '{study}' and tags.`{ROLE}` = 'run' and attributes.status = 'RUNNING'")
    n = 0
    for run in runs:
        host, _, pid = run.data.tags.get(WORKER, ":").rpartition(":")
        if pid.isdigit() and is_dead(host, int(pid)):
            client.set_tag(run.info.run_id, ERROR, f"worker {host}:{pid} died while the run was running")
            client.set_terminated(run.info.run_id, status="KILLED")
            n += 1
    return n


class CurveLogger:
    """Trainer callback: training scalars as ``train/<term>``, evaluations as ``val/<metric>``, batched."""

    def __init__(self, client: MlflowClient, run_id: str, flush_every: int = 200, flush_seconds: float = 15.0,
                 on_eval_hook=None):
        self.client, self.run_id = client, run_id
        self.flush_every, self.flush_seconds = flush_every, flush_seconds
        self.buffer: list[Metric] = []
        self.last_flush = time.monotonic()
        self.on_eval_hook = on_eval_hook

    def on_step(self, iteration: int, scalars: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.buffer += [Metric(c.TRAIN_CURVE.format(k), float(v), now, int(iteration))
                        for k, v in scalars.items() if _is_number(v)]
        if len(self.buffer) >= self.flush_every or time.monotonic() - self.last_flush > self.flush_seconds:
            self.flush()

    def on_eval(self, iteration: int, metrics: Mapping[str, float]) -> None:
        now = int(time.time() * 1000)
        self.buffer += [Metric(c.VAL_CURVE.format(k), float(v), now, int(iteration))
                        for k, v in metrics.items() if _is_number(v)]
        self.flush()
        if self.on_eval_hook is not None:
            self.on_eval_hook(iteration, metrics)

    def on_end(self, result: Any) -> None:
        self.flush()

    def flush(self) -> None:
        for i in range(0, len(self.buffer), 1000):
            self.client.log_batch(self.run_id, metrics=self.buffer[i:i + 1000])
        self.buffer = []
        self.last_flush = time.monotonic()


# ---------------------------------------------------------------------------------- depth panels
class PanelLogger:
    """Trainer callback: a depth panel (labelled 2 x 2 grid: input, prediction, ground truth, error) of one fixed
    validation frame after every validation and at the end, as ``mlflow.log_image(key=panels, step=iteration)``."""

    def __init__(self, client: MlflowClient, run_id: str, cfg):
        self.client, self.run_id, self.cfg = client, run_id, cfg
        self._item = None
        self._failed = False

    def item(self) -> dict:
        if self._item is None:
            from fadepth.data import build_test_set

            try:  # a validation frame (what the curves measure); the test set if there is no val split
                test_set = build_test_set(self.cfg.data, self.cfg.eval.model_copy(update={"split": "val", "max_images": 1}))
            except Exception:  # noqa: BLE001
                test_set = build_test_set(self.cfg.data, self.cfg.eval.model_copy(update={"max_images": 1}))
            self._item = test_set[0]
        return self._item

    def on_model(self, iteration: int, depth_net) -> None:
        if self._failed:
            return
        try:
            from fadepth.visual import depth_panel

            panel = depth_panel(depth_net, self.item(), next(depth_net.parameters()).device)
            self.client.log_image(self.run_id, panel, key=c.PANELS_DIR, step=int(iteration))
        except Exception as exc:  # noqa: BLE001 - a panel must never fail a run; say so once
            self._failed = True
            self.client.set_tag(self.run_id, "fadepth.panels", f"not logged: {type(exc).__name__}: {exc}"[:500])


# ---------------------------------------------------------------------------------- sweep-level numbers
def scheme_metric_name(metric: str, scheme: str) -> str:
    """``abs_rel/sch4*`` as an MLflow metric name (letters, digits, ``_-. /:``): ``abs_rel/sch4_star``."""
    return f"{metric}/" + "".join(ch if ch.isalnum() or ch in "_-. :" else "_" for ch in scheme.replace("*", "_star"))


def log_scheme_metrics(client: MlflowClient, experiment_id: str, study: str, parent_run_id: str,
                       metrics: list[str]) -> dict[str, float]:
    """On the sweep run, each metric's mean over the finished seeds of each scheme, as ``<metric>/<scheme>``:
    the sweep run's charts then compare the schemes (one bar per scheme) without grouping child runs.
    A cell run twice counts once (its latest run).  Returns what was logged."""
    runs = client.search_runs([experiment_id], f"tags.`{STUDY}` = '{study}' and tags.`{ROLE}` = 'run' and "
                              "attributes.status = 'FINISHED'", max_results=5000, order_by=["attributes.start_time ASC"])
    latest = {(r.data.tags.get(SCHEME), r.data.tags.get(SEED)): r for r in runs if r.data.tags.get(SCHEME)}
    values: dict[str, list[float]] = {}
    for (scheme, _), run in latest.items():
        for metric in metrics:
            if _is_number(run.data.metrics.get(metric)):
                values.setdefault(scheme_metric_name(metric, scheme), []).append(float(run.data.metrics[metric]))
    means = {name: sum(v) / len(v) for name, v in values.items()}
    log_final_metrics(client, parent_run_id, means)
    return means


def log_sweep_fps(client: MlflowClient, parent_run_id: str, fps: Mapping[str, float]) -> None:
    """FPS per architecture (measured once per sweep) on the sweep's parent run: ``fps/<architecture>``."""
    log_final_metrics(client, parent_run_id, {c.FPS_METRIC.format(k): v for k, v in fps.items()})


# ---------------------------------------------------------------------------------- fadepth train
def start_train_run(tracking_uri: str, cfg, experiment: str = "fadepth-train") -> tuple[MlflowClient, str]:
    """A run for a standalone ``fadepth train`` (tag ``fadepth.role=train``), params = the resolved config."""
    client = configure(tracking_uri)
    root = Path(tracking_uri[len("sqlite:///"):]).parent / "mlartifacts" if tracking_uri.startswith("sqlite:///") else None
    experiment_id = get_or_create_experiment(client, experiment, root)
    name = Path(cfg.train.out_dir).name or "train"
    tags = {ROLE: c.ROLE_TRAIN, GIT: git_commit(Path(__file__).resolve().parent), VERSIONS: versions(),
            "fadepth.out_dir": str(Path(cfg.train.out_dir).resolve())}
    run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    items = [Param(k, _param_value(v)) for k, v in sorted(cfg.to_flat_dict().items())]
    for i in range(0, len(items), MAX_BATCH):
        client.log_batch(run_id, params=items[i:i + MAX_BATCH])
    return client, run_id
