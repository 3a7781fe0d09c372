"""Reading a sweep's results back from MLflow (the layout is fixed in docs/architecture.md).

Only child runs count: tag ``fadepth.role=run``, the spec's ``fadepth.spec_hash``, one ``fadepth.profile``,
status FINISHED.  If a (scheme, seed) cell was run twice, the latest run wins.  Everything else
(grouping, mean, std, counts) is pandas.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import mlflow
import pandas as pd
from mlflow.tracking import MlflowClient

SCHEME_TAG = "tags.fadepth.scheme"
SEED_TAG = "tags.fadepth.seed"
PROFILE_TAG = "tags.fadepth.profile"


class ReportError(RuntimeError):
    """A report cannot be built (no store, no finished runs, no paper table, ...). The message says why."""


def default_tracking_uri() -> str:
    """``sqlite:///<abs>/runs/mlflow.db`` under the working directory, like ``sweeps/run.py``."""
    return f"sqlite:///{(Path.cwd() / 'runs' / 'mlflow.db').resolve()}"


def sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def check_store_exists(tracking_uri: str) -> None:
    """Refuse to read a sqlite store that is not there (MLflow would silently create an empty one)."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        raise ReportError(f"MLflow store {tracking_uri} does not exist (no file {path}); "
                          "run a sweep first (python sweeps/run.py SPEC) or pass --tracking-uri")


@contextlib.contextmanager
def tracking(tracking_uri: str) -> Iterator[None]:
    """Point the ``mlflow`` fluent API at ``tracking_uri`` for the duration of the block."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous)


def _tag_filter(tags: dict[str, str]) -> str:
    clauses = [f"tags.`{key}` = '{value}'" for key, value in tags.items()]
    return " and ".join(clauses + ["attributes.status = 'FINISHED'"])


def _experiment_ids(tracking_uri: str, names: Sequence[str] | None) -> list[str]:
    """Ids of the named experiments that exist (all experiments when ``names`` is None)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    if names is None:
        return [e.experiment_id for e in client.search_experiments()]
    found = (client.get_experiment_by_name(name) for name in names)
    return [e.experiment_id for e in found if e is not None]


def search_runs(tracking_uri: str, filter_string: str, experiment_names: Sequence[str] | None) -> pd.DataFrame:
    """``mlflow.search_runs`` on one store; an empty frame when no experiment matches."""
    check_store_exists(tracking_uri)
    experiment_ids = _experiment_ids(tracking_uri, experiment_names)
    if not experiment_ids:
        return pd.DataFrame()
    with tracking(tracking_uri):
        return mlflow.search_runs(experiment_ids=experiment_ids, filter_string=filter_string)


def search_finished(tracking_uri: str, tags: dict[str, str], experiment_names: Sequence[str] | None = None
                    ) -> pd.DataFrame:
    """FINISHED runs carrying every tag in ``tags`` (all experiments when ``experiment_names`` is None)."""
    return search_runs(tracking_uri, _tag_filter(tags), experiment_names)


def fetch_child_runs(spec, tracking_uri: str, profile: str | None) -> pd.DataFrame:
    """The spec's finished child runs (one profile, or all profiles when ``profile`` is None)."""
    tags = {"fadepth.role": "run", "fadepth.spec_hash": spec.spec_hash}
    if profile is not None:
        tags["fadepth.profile"] = profile
    runs = search_finished(tracking_uri, tags, experiment_names=[spec.name])
    if runs.empty:
        return runs
    runs = runs.sort_values("start_time")
    return runs.drop_duplicates(subset=[SCHEME_TAG, SEED_TAG, PROFILE_TAG], keep="last")


def profiles_with_runs(spec, tracking_uri: str) -> list[str]:
    runs = fetch_child_runs(spec, tracking_uri, profile=None)
    return sorted(runs[PROFILE_TAG].dropna().unique()) if not runs.empty else []


def spec_hashes_with_runs(spec, tracking_uri: str, profile: str) -> list[str]:
    """Hashes of *other* versions of this spec that have finished runs (the spec was edited since)."""
    tags = {"fadepth.role": "run", "fadepth.profile": profile}
    runs = search_finished(tracking_uri, tags, experiment_names=[spec.name])
    if runs.empty or "tags.fadepth.spec_hash" not in runs:
        return []
    return sorted(set(runs["tags.fadepth.spec_hash"].dropna()) - {spec.spec_hash})


@dataclass(frozen=True)
class RunSummary:
    """Per-scheme statistics of the finished runs: index = scheme (spec order), columns = metrics."""

    means: pd.DataFrame
    stds: pd.DataFrame  # sample std (ddof=1); NaN with one seed
    counts: pd.Series  # number of finished seeds per scheme
    runs: pd.DataFrame  # the raw search_runs rows

    @property
    def empty(self) -> bool:
        return self.counts.empty


def summarize(runs: pd.DataFrame, scheme_order: Sequence[str], metrics: Sequence[str]) -> RunSummary:
    """Group runs by scheme -> mean and std per metric and the number of seeds."""
    columns = [f"metrics.{m}" for m in metrics]
    frame = runs.reindex(columns=[SCHEME_TAG, *columns]).rename(
        columns=lambda c: c.removeprefix("metrics."))
    grouped = frame.groupby(SCHEME_TAG, sort=False)
    order = [s for s in scheme_order if s in grouped.groups]
    return RunSummary(
        means=grouped[list(metrics)].mean().reindex(order),
        stds=grouped[list(metrics)].std(ddof=1).reindex(order),
        counts=grouped.size().reindex(order).astype(int),
        runs=runs,
    )


def load_summary(spec, tracking_uri: str, profile: str, metrics: Sequence[str]) -> RunSummary:
    runs = fetch_child_runs(spec, tracking_uri, profile)
    if runs.empty:
        return RunSummary(pd.DataFrame(), pd.DataFrame(), pd.Series(dtype=int), runs)
    return summarize(runs, [s.name for s in spec.schemes], metrics)


def find_sweep_run(spec, tracking_uri: str, profile: str) -> str | None:
    """The run id of the sweep's parent run (latest one), or None."""
    tags = {"fadepth.role": "sweep", "fadepth.spec_hash": spec.spec_hash, "fadepth.profile": profile}
    any_status = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    with contextlib.suppress(ReportError):
        runs = search_runs(tracking_uri, any_status, [spec.name])
        if not runs.empty:
            return str(runs.sort_values("start_time").iloc[-1]["run_id"])
    return None


def log_artifacts(tracking_uri: str, run_id: str, files: Sequence[Path], artifact_path: str) -> None:
    client = MlflowClient(tracking_uri=tracking_uri)
    for file in files:
        client.log_artifact(run_id, str(file), artifact_path=artifact_path)


def best_abs_rel_by_model(tracking_uri: str, profile: str, model_names: Sequence[str]) -> dict[str, float]:
    """For each architecture, the best mean AbsRel over any table's schemes that trained it (same profile).

    Used by the speed-accuracy scatter, which pairs our measured complexity with our accuracy.
    """
    runs = search_finished(tracking_uri, {"fadepth.role": "run", "fadepth.profile": profile})
    needed = {"params.model.name", "metrics.abs_rel", SCHEME_TAG, "experiment_id"}
    if runs.empty or not needed <= set(runs.columns):
        return {}
    runs = runs[runs["params.model.name"].isin(model_names)]
    per_scheme = runs.groupby(["params.model.name", "experiment_id", SCHEME_TAG])["metrics.abs_rel"].mean()
    return per_scheme.groupby(level=0).min().dropna().to_dict()
