"""Reading a sweep's results back from MLflow (the layout is fixed in docs/architecture.md).

Only child runs count: tag ``fadepth.role=run``, the spec's ``fadepth.spec_hash``, one ``fadepth.profile``
and one ``fadepth.study`` (the sweep: spec hash, profile and ``--set`` overrides), status FINISHED.  Runs of
different sweeps are never mixed (:func:`choose_study`).  If a (scheme, seed) cell was run twice, the latest
run wins.  Tag names come from :mod:`fadepth.contracts`.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no artifact download bars in the report

import mlflow  # noqa: E402
import pandas as pd  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from fadepth import contracts as c  # noqa: E402

logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial MLflow database tables" at INFO

SCHEME_TAG, SEED_TAG = f"tags.{c.SCHEME}", f"tags.{c.SEED}"
PROFILE_TAG, STUDY_TAG = f"tags.{c.PROFILE}", f"tags.{c.STUDY}"


class ReportError(RuntimeError):
    """A report cannot be built (no store, no finished runs, no paper table, ...). The message says why."""


def default_tracking_uri() -> str:
    """``sqlite:///<abs>/runs/mlflow.db`` under the working directory, like ``sweeps/run.py``."""
    return f"sqlite:///{(Path.cwd() / 'runs' / 'mlflow.db').resolve()}"


def sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(tracking_uri[len(prefix):]) if tracking_uri.startswith(prefix) else None


def check_store_exists(tracking_uri: str) -> None:
    """Refuse to read a sqlite store that is not there (MLflow would silently create an empty one) or is not
    an SQLite database."""
    path = sqlite_path(tracking_uri)
    if path is not None and not path.is_file():
        raise ReportError(f"MLflow store {tracking_uri} does not exist (no file {path}); "
                          "run a sweep first (python sweeps/run.py SPEC) or pass --tracking-uri")
    from fadepth.sweep.stores import check_sqlite_store

    check_sqlite_store(tracking_uri, "MLflow store", "--tracking-uri")  # a damaged file: one line naming it


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


def experiment_ids(tracking_uri: str, names: Sequence[str] | None) -> list[str]:
    """Ids of the named experiments that exist (all experiments when ``names`` is None)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    if names is None:
        return [e.experiment_id for e in client.search_experiments()]
    found = (client.get_experiment_by_name(name) for name in names)
    return [e.experiment_id for e in found if e is not None]


def search_runs(tracking_uri: str, filter_string: str, experiment_names: Sequence[str] | None) -> pd.DataFrame:
    """``mlflow.search_runs`` on one store; an empty frame when no experiment matches."""
    check_store_exists(tracking_uri)
    ids = experiment_ids(tracking_uri, experiment_names)
    if not ids:
        return pd.DataFrame()
    with tracking(tracking_uri):
        return mlflow.search_runs(experiment_ids=ids, filter_string=filter_string)


def search_finished(tracking_uri: str, tags: dict[str, str], experiment_names: Sequence[str] | None = None
                    ) -> pd.DataFrame:
    """FINISHED runs carrying every tag in ``tags`` (all experiments when ``experiment_names`` is None)."""
    return search_runs(tracking_uri, _tag_filter(tags), experiment_names)


def fetch_child_runs(spec, tracking_uri: str, profile: str | None, study: str | None = None) -> pd.DataFrame:
    """The spec's finished child runs (one profile, or all profiles when ``profile`` is None; one sweep when
    ``study`` is given)."""
    tags = {c.ROLE: c.ROLE_RUN, c.SPEC_HASH: spec.spec_hash}
    if profile is not None:
        tags[c.PROFILE] = profile
    if study:
        tags[c.STUDY] = study
    runs = search_finished(tracking_uri, tags, experiment_names=[spec.name])
    if runs.empty:
        return runs
    if STUDY_TAG not in runs:
        runs[STUDY_TAG] = ""
    runs[STUDY_TAG] = runs[STUDY_TAG].fillna("")
    runs = runs.sort_values("start_time")
    return runs.drop_duplicates(subset=[STUDY_TAG, SCHEME_TAG, SEED_TAG, PROFILE_TAG], keep="last")


def profiles_with_runs(spec, tracking_uri: str) -> list[str]:
    runs = fetch_child_runs(spec, tracking_uri, profile=None)
    return sorted(runs[PROFILE_TAG].dropna().unique()) if not runs.empty else []


def spec_hashes_with_runs(spec, tracking_uri: str, profile: str) -> list[str]:
    """Hashes of *other* versions of this spec that have finished runs (the spec was edited since)."""
    tags = {c.ROLE: c.ROLE_RUN, c.PROFILE: profile}
    runs = search_finished(tracking_uri, tags, experiment_names=[spec.name])
    column = f"tags.{c.SPEC_HASH}"
    if runs.empty or column not in runs:
        return []
    return sorted(set(runs[column].dropna()) - {spec.spec_hash})


def studies_with_runs(spec, tracking_uri: str, profile: str) -> dict[str, int]:
    """``{study name: finished runs}`` of this spec version and profile ('' for runs without the tag)."""
    runs = fetch_child_runs(spec, tracking_uri, profile)
    return {} if runs.empty else runs.groupby(STUDY_TAG).size().astype(int).to_dict()


def study_overrides(spec, tracking_uri: str, study: str) -> str:
    """The ``--set`` overrides of a sweep as its parent run recorded them ('' when none)."""
    if not study:
        return ""
    runs = search_runs(tracking_uri, f"tags.`{c.ROLE}` = '{c.ROLE_SWEEP}' and tags.`{c.STUDY}` = '{study}'",
                       [spec.name])
    column = f"tags.{c.EXTRA}"
    return str(runs[column].dropna().iloc[0]) if not runs.empty and column in runs and runs[column].notna().any() else ""


def choose_study(spec, tracking_uri: str, profile: str, requested: str | None) -> str | None:
    """The sweep whose runs make the table: ``requested``, or the only one; never a mix of several."""
    found = studies_with_runs(spec, tracking_uri, profile)
    if requested:
        if requested not in found:
            raise ReportError(f"{spec.name}: --study {requested!r} has no finished runs for spec hash "
                              f"{spec.spec_hash} and profile '{profile}'; sweeps with runs: "
                              f"{', '.join(n or '<untagged>' for n in found) or 'none'}")
        return requested
    if len(found) <= 1:
        return next(iter(found), None) or None
    described = []
    for name, count in sorted(found.items()):
        extra = study_overrides(spec, tracking_uri, name)
        described.append(f"{name or '<untagged>'} ({count} runs" + (f", --set {extra}" if extra else "") + ")")
    raise ReportError(f"{spec.name}: {len(found)} sweeps of spec hash {spec.spec_hash}, profile '{profile}' "
                      f"differ in their --set overrides and are not mixed: {'; '.join(described)}; "
                      "choose one with --study NAME")


@dataclass(frozen=True)
class RunSummary:
    """The finished runs of one sweep: per-seed values, index = (scheme, seed), columns = metrics."""

    values: pd.DataFrame
    runs: pd.DataFrame  # the raw search_runs rows
    scheme_order: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return self.values.empty

    @property
    def schemes(self) -> list[str]:
        present = set(self.values.index.get_level_values(0))
        return [s for s in self.scheme_order if s in present]

    def seeds_of(self, scheme: str, metric: str) -> dict[int, float]:
        """``{seed: value}`` of one scheme and metric (NaNs left out)."""
        if scheme not in self.values.index.get_level_values(0):
            return {}
        column = self.values.loc[scheme, metric].dropna()
        return {int(seed): float(value) for seed, value in column.items()}

    @property
    def counts(self) -> pd.Series:
        """Finished seeds per scheme (spec order)."""
        return self.values.groupby(level=0).size().reindex(self.schemes).astype(int)

    @property
    def seeds(self) -> list[int]:
        return sorted({int(s) for s in self.values.index.get_level_values(1)})


def summarize(runs: pd.DataFrame, scheme_order: Sequence[str], metrics: Sequence[str]) -> RunSummary:
    """Runs -> one row per (scheme, seed) with the metric values."""
    columns = {f"metrics.{m}": m for m in metrics}
    frame = runs.reindex(columns=[SCHEME_TAG, SEED_TAG, *columns]).rename(columns=columns)
    frame = frame.assign(**{SEED_TAG: pd.to_numeric(frame[SEED_TAG], errors="coerce").fillna(-1).astype(int)})
    frame = frame[frame[SCHEME_TAG].isin(scheme_order)]
    values = frame.set_index([SCHEME_TAG, SEED_TAG])[list(metrics)].astype(float).sort_index()
    values.index.names = ["scheme", "seed"]
    return RunSummary(values, runs, tuple(scheme_order))


def load_summary(spec, tracking_uri: str, profile: str, metrics: Sequence[str], study: str | None = None
                 ) -> RunSummary:
    runs = fetch_child_runs(spec, tracking_uri, profile, study)
    if runs.empty:
        return RunSummary(pd.DataFrame(), runs, tuple(s.name for s in spec.schemes))
    return summarize(runs, [s.name for s in spec.schemes], metrics)


def unfinished_schemes(spec, tracking_uri: str, profile: str, study: str | None, finished: Sequence[str]
                       ) -> dict[str, str]:
    """``{scheme: why}`` for the spec's schemes without a finished run in this sweep (failed, killed, missing)."""
    missing = [s.name for s in spec.schemes if s.name not in finished]
    if not missing:
        return {}
    clauses = [f"tags.`{c.ROLE}` = '{c.ROLE_RUN}'", f"tags.`{c.SPEC_HASH}` = '{spec.spec_hash}'",
               f"tags.`{c.PROFILE}` = '{profile}'"] + ([f"tags.`{c.STUDY}` = '{study}'"] if study else [])
    runs = search_runs(tracking_uri, " and ".join(clauses), [spec.name])
    reasons = {}
    for scheme in missing:
        rows = runs[runs[SCHEME_TAG] == scheme] if not runs.empty and SCHEME_TAG in runs else pd.DataFrame()
        if rows.empty:
            reasons[scheme] = "no run"
            continue
        last = rows.sort_values("start_time").iloc[-1]
        error = last.get(f"tags.{c.ERROR}")
        reasons[scheme] = str(last["status"]) + (f": {error}" if isinstance(error, str) and error else "")
    return reasons


def find_sweep_run(spec, tracking_uri: str, profile: str, study: str | None = None) -> str | None:
    """The run id of the sweep's parent run (latest one of this study, when given), or None."""
    tags = {c.ROLE: c.ROLE_SWEEP, c.SPEC_HASH: spec.spec_hash, c.PROFILE: profile}
    if study:
        tags[c.STUDY] = study
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


NOTE_TAG = "mlflow.note.content"  # the experiment's description, rendered as Markdown by the MLflow UI
NOTE_LIMIT = 19_000  # MLflow refuses experiment tag values over 20,000 characters


def set_experiment_note(tracking_uri: str, experiment: str, markdown: str) -> None:
    """Make `markdown` the description of the experiment named `experiment` (shown when it is opened)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return
    if len(markdown) > NOTE_LIMIT:
        markdown = markdown[:NOTE_LIMIT] + "\n\n... (cut: see the report's Markdown artifact on the sweep run)\n"
    client.set_experiment_tag(exp.experiment_id, NOTE_TAG, markdown)


def log_table(tracking_uri: str, run_id: str, frame: pd.DataFrame, artifact_file: str) -> None:
    """A table as an MLflow table artifact (shown in the run's artifact view and the evaluation tab)."""
    with tracking(tracking_uri):
        mlflow.log_table(data=frame.astype(object).where(frame.notna(), None), artifact_file=artifact_file,
                         run_id=run_id)


def best_abs_rel_by_model(tracking_uri: str, profile: str, model_names: Sequence[str]) -> dict[str, float]:
    """For each architecture, the best mean AbsRel over any table's schemes that trained it (same profile).

    Used by the speed-accuracy scatter, which pairs our measured complexity with our accuracy.
    """
    runs = search_finished(tracking_uri, {c.ROLE: c.ROLE_RUN, c.PROFILE: profile})
    needed = {"params.model.name", "metrics.abs_rel", SCHEME_TAG, "experiment_id"}
    if runs.empty or not needed <= set(runs.columns):
        return {}
    runs = runs[runs["params.model.name"].isin(model_names)]
    per_scheme = runs.groupby(["params.model.name", "experiment_id", SCHEME_TAG])["metrics.abs_rel"].mean()
    return per_scheme.groupby(level=0).min().dropna().to_dict()
