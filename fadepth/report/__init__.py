"""Reports: the paper's tables with our numbers beside the paper's, figures, one LaTeX document.

* :mod:`fadepth.report.runs`      read one sweep's FINISHED child runs from MLflow (values per scheme x seed)
* :mod:`fadepth.report.stats`     mean and t-interval over seeds, paired Δ to the baseline, verdicts (also of claims)
* :mod:`fadepth.report.claims`    the spec's declared claims, judged: the claims table (on top of ``<name>.md``)
* :mod:`fadepth.report.rounds`    ``--until-resolved`` rounds and the verdict ``sweeps/run.py`` ends on
* :mod:`fadepth.report.tables`    ours beside the paper's rows: the claims and all-metrics frames
* :mod:`fadepth.report.render`    those frames -> ``table_x.tex`` (Styler), ``.md``, ``.csv`` with the verdict summary
* :mod:`fadepth.report.figures`   seaborn figures (PNG + PDF)
* :mod:`fadepth.report.document`  ``report.tex`` with every table and figure built so far

This module holds the steps of one build (:func:`build_spec`) and the ``reports/build.py`` command line
(:func:`main`).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import pandas as pd

from fadepth import contracts
from fadepth.report import claims, document, figures, render, runs, tables
from fadepth.report.runs import ReportError, default_tracking_uri

REPO_ROOT = Path(__file__).resolve().parents[2]
PREFERRED_PROFILE = "paper"


@dataclass
class BuildResult:
    spec_name: str
    profile: str | None
    files: list[Path] = field(default_factory=list)
    figures: list[figures.FigureFile] = field(default_factory=list)
    document: Path | None = None
    logged_to: str | None = None  # run id of the sweep run that received the artifacts
    study: str | None = None  # the sweep (Optuna study) whose runs make the table
    comparisons: dict[str, tables.Comparison] = field(default_factory=dict)
    claims_md: dict[str, str] = field(default_factory=dict)  # per table: verdicts + claims table (Markdown)
    summary: list[str] = field(default_factory=list)  # the best scheme and the claims line: the last lines printed


def load_spec(path: str | Path):
    from fadepth.sweep.spec import load_spec as _load  # the spec loader owns validation and hashing

    return _load(path)


# ----------------------------------------------------------------------------------- profiles
def choose_profile(spec, tracking_uri: str, requested: str | None) -> str:
    """The requested profile, else 'paper' if it has runs, else the only profile with runs."""
    if requested:
        return requested
    found = runs.profiles_with_runs(spec, tracking_uri)
    if PREFERRED_PROFILE in found or not found:
        return PREFERRED_PROFILE
    if len(found) == 1:
        return found[0]
    raise ReportError(f"{spec.name}: finished runs exist for profiles {found}; choose one with --profile")


def no_runs_message(spec, tracking_uri: str, profile: str) -> str:
    lines = [f"{spec.name} ({spec.path}): no FINISHED runs for spec hash {spec.spec_hash} and profile "
             f"'{profile}' in the MLflow store {tracking_uri}; nothing to tabulate."]
    others = [p for p in runs.profiles_with_runs(spec, tracking_uri) if p != profile]
    if others:
        lines.append(f"  Finished runs exist for profile(s) {', '.join(others)}: pass --profile.")
    old = runs.spec_hashes_with_runs(spec, tracking_uri, profile)
    if old:
        lines.append(f"  Runs exist for other version(s) of this spec (hash {', '.join(old)}): "
                     "the YAML changed since; re-run the sweep.")
    lines.append(f"  Run: python sweeps/run.py {spec.path} --profile {profile}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- comparisons
def comparison_for(spec, summary: runs.RunSummary, unfinished: dict[str, str]) -> tables.Comparison:
    """Ours (the sweep's logged metrics) beside the paper's rows, with statistics and verdicts."""
    paper = tables.load_paper_table(spec.paper_table)
    statistical = spec.kind != "complexity"
    if statistical:
        metrics = tables.ordered_metrics(spec.metrics.columns, paper)
        primary = tables.PAPER_COLUMN.get(spec.metrics.primary, spec.metrics.primary)
    else:
        metrics, primary = tables.complexity_metrics(spec, paper)
    ours = tables.ours_from_summary(summary, metrics, primary, spec.baseline if statistical else None)
    return tables.build_comparison(spec, ours, paper, metrics, primary, unfinished, statistical)


def logged_metric_names(spec) -> list[str]:
    """The MLflow metric names a spec's runs carry (complexity: every ComplexityRow field)."""
    if spec.kind == "complexity":
        return [f.name for f in fields(contracts.ComplexityRow)]
    return list(spec.metrics.columns)


def model_of(summary: runs.RunSummary) -> dict[str, str]:
    """``{scheme: model.name}`` from the runs' params."""
    frame = summary.runs
    if frame.empty or "params.model.name" not in frame:
        return {}
    return frame.groupby(runs.SCHEME_TAG)["params.model.name"].last().dropna().to_dict()


def speed_accuracy_points(spec, summary: runs.RunSummary, tracking_uri: str, profile: str) -> pd.DataFrame:
    """Our architectures with their logged complexity and best finished AbsRel (the speed-accuracy scatter)."""
    models = model_of(summary)
    try:
        best = runs.best_abs_rel_by_model(tracking_uri, profile, sorted(set(models.values())))
    except ReportError:
        return pd.DataFrame()
    points = []
    for scheme in summary.schemes:
        model = models.get(scheme)
        if model not in best:
            continue
        seeds = summary.values.loc[scheme]
        points.append({"label": f"{scheme} (ours)", "gflops": seeds["gflops"].mean() if "gflops" in seeds else None,
                       "fps": seeds["fps"].mean() if "fps" in seeds else None, "abs_rel": best[model]})
    return pd.DataFrame(points)


# Table IV's bottom half (encoder/decoder complexity of three DepthNets) is built from the same counts as
# Table I: complexity spec's paper table -> (companion paper table, its name, {model name: paper scheme}).
COMPANIONS = {"table01_complexity.csv": ("table04_complexity.csv", "table_iv_complexity",
                                         {"rn18": "RN18", "mobilenetv3": "MobileNetV3", "smalldepth": "SmallDepth"})}


def companion_spec(spec, models: dict[str, str]):
    """A spec-like view of ``spec`` restricted to the companion table's architectures, or None."""
    if spec.paper_table not in COMPANIONS:
        return None
    paper_table, name, by_model = COMPANIONS[spec.paper_table]
    schemes = [SimpleNamespace(name=s.name, overrides=s.overrides, paper={"scheme": by_model[models[s.name]]})
               for s in spec.schemes if models.get(s.name) in by_model]
    if not schemes:
        return None
    baseline = spec.baseline if spec.baseline in {s.name for s in schemes} else None
    title = "Table IV (bottom): encoder / decoder complexity of the DepthNets (same counts as Table I)"
    metrics = SimpleNamespace(primary="gflops", direction="minimize", columns=["params_m", "gflops", "fps"])
    return SimpleNamespace(name=name, title=title, paper_table=paper_table, kind="complexity", baseline=baseline,
                           schemes=schemes, metrics=metrics, overrides={}, path=spec.path, spec_hash=spec.spec_hash,
                           figures=[])


# ----------------------------------------------------------------------------------- one build
def build_spec(spec, *, tracking_uri: str, out_dir: Path, profile: str | None = None, study: str | None = None,
               log_artifacts: bool = True, say: Callable[[str], None] = print) -> BuildResult:
    """Tables (+ figures, report.tex, MLflow artifacts) for one spec.  Raises ReportError with the reason."""
    profile = choose_profile(spec, tracking_uri, profile)
    study = runs.choose_study(spec, tracking_uri, profile, study)
    summary = runs.load_summary(spec, tracking_uri, profile, logged_metric_names(spec), study)
    if summary.empty:
        raise ReportError(no_runs_message(spec, tracking_uri, profile))
    from fadepth.outputs import ensure_folder

    ensure_folder(out_dir, "--out", say)  # once there is something to write; says so when it creates it
    unfinished = runs.unfinished_schemes(spec, tracking_uri, profile, study, summary.schemes)
    comparison = comparison_for(spec, summary, unfinished)
    context = {"accuracy_profile": profile}
    if spec.kind == "complexity":
        context["ours_speed_accuracy"] = speed_accuracy_points(spec, summary, tracking_uri, profile)
        what = "Ours: the counts the sweep logged (fadepth.complexity)"
    else:
        what = "Ours: the sweep's finished runs"
    result = BuildResult(spec.name, profile, study=study)
    _write_tables(spec, comparison, profile, summary.seeds, what, out_dir, result, context, tracking_uri, say)
    frame = write_claims(spec, summary, profile, out_dir, result, say) if getattr(spec, "claims", None) else None
    result.summary = claims.summary_lines(spec, summary, frame)
    companion = companion_spec(spec, model_of(summary)) if spec.kind == "complexity" else None
    if companion is not None:
        comparison = comparison_for(companion, summary, {})
        _write_tables(companion, comparison, profile, summary.seeds, what, out_dir, result, {}, tracking_uri, say)
    if log_artifacts:
        result.logged_to = log_to_sweep_run(spec, tracking_uri, profile, study, result)
    return result


def _write_tables(spec, comparison, profile, seeds, what, out_dir, result, context, tracking_uri, say) -> None:
    caption_tex = render.caption_text(spec, comparison, profile, seeds, what, latex=True)
    caption_md = render.caption_text(spec, comparison, profile, seeds, what, latex=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        files = render.write_table_files(comparison, out_dir, spec.name, caption_tex, caption_md, seeds)
    for warning in {str(w.message) for w in caught}:
        say(f"[report] {spec.name}: warning: {warning}")
    made = figures.make_figures(spec, comparison, out_dir / "figures", context, say=say)
    entry = document.entry_for(spec, profile, files[0], made, out_dir)
    result.document = document.write_document(out_dir, entry, tracking_uri)
    result.files += files
    result.figures += made
    result.comparisons[spec.name] = comparison
    result.claims_md[spec.name] = claims_markdown(comparison, caption_md, seeds)


def claims_markdown(comparison: tables.Comparison, caption: str, seeds) -> str:
    """The claims / verdict table of one comparison as Markdown: what the MLflow experiment's description shows.
    One call, so the claims work (issue 22) can put its own table here."""
    return render.claims_markdown(comparison, caption, seeds)


def experiment_note(spec, profile: str, study: str | None, result: BuildResult) -> str:
    """The experiment's description: who wins, per table, then where the full report is."""
    command = f"python reports/build.py ablations/{Path(str(spec.path)).name} --profile {profile}"
    parts = [f"## {spec.title or spec.name}", "",
             f"Profile **{profile}**, sweep `{study or '-'}` (`{command}`). The sweep run's metrics "
             "`<metric>/<scheme>` (mean over seeds) chart the schemes side by side.", ""]
    for text in result.claims_md.values():
        parts += [text, ""]
    parts.append("Full tables (all metrics), figures and the LaTeX report: the sweep run's `report/` artifacts.")
    return "\n".join(parts)


def write_claims(spec, summary: runs.RunSummary, profile: str, out_dir: Path, result: BuildResult,
                 say: Callable[[str], None]) -> pd.DataFrame:
    """The spec's declared claims, judged (:mod:`fadepth.report.claims`): ``<name>_paper_claims.md`` / ``.csv``,
    the same table on top of ``<name>.md``, and printed."""
    frame = claims.claims_frame(spec, summary, profile)
    text = claims.to_markdown(frame)
    paths = [out_dir / f"{spec.name}_paper_claims.md", out_dir / f"{spec.name}_paper_claims.csv"]
    paths[0].write_text(f"# {spec.name}: the paper's claims\n\n{text}")
    frame.to_csv(paths[1], index=False)
    table_md = out_dir / f"{spec.name}.md"
    if table_md.is_file():
        table_md.write_text(f"## The paper's claims\n\n{text}\n{table_md.read_text()}")
    result.files += paths
    say(f"[report] {spec.name}: the paper's claims\n{text}")
    return frame


def log_to_sweep_run(spec, tracking_uri: str, profile: str, study: str | None, result: BuildResult) -> str | None:
    """Attach the tables (files and an MLflow table) and figures to the sweep's parent run, when it exists."""
    if runs.sqlite_path(tracking_uri) is not None and not runs.sqlite_path(tracking_uri).is_file():
        return None
    run_id = runs.find_sweep_run(spec, tracking_uri, profile, study)
    if run_id is None:
        return None
    runs.log_artifacts(tracking_uri, run_id, result.files, "report")
    figure_files = [p for f in result.figures for p in (f.png, f.pdf)]
    runs.log_artifacts(tracking_uri, run_id, figure_files, "report/figures")
    for name, comparison in result.comparisons.items():
        runs.log_table(tracking_uri, run_id, comparison.claims, f"report/{name}_claims.json")
    runs.set_experiment_note(tracking_uri, spec.name, experiment_note(spec, profile, study, result))
    return run_id


# ----------------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None, prog: str = "reports/build.py") -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
        "examples:\n"
        "  python reports/build.py ablations/table_v.yaml --profile smoke     # same as: fadepth report ...\n"
        "  python reports/build.py --all\n"
        "  python reports/build.py ablations/table_v.yaml --profile synthetic --out reports/synth\n"
        "  cd reports/out && pdflatex report.tex\n"), description=(
        "Build the paper's tables (ours beside the paper's: .tex/.md/.csv), figures and report.tex "
        "from the sweep's MLflow runs."))
    parser.add_argument("spec", nargs="?", help="an ablations/table_*.yaml spec")
    parser.add_argument("--all", action="store_true", help="every ablations/table_*.yaml with finished runs")
    parser.add_argument("--profile", help="run profile (smoke|paper); default: paper, or the only one with runs")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default sqlite:///$PWD/runs/mlflow.db)")
    parser.add_argument("--out", default="reports/out", help="output folder (default reports/out)")
    parser.add_argument("--study", help="the sweep (Optuna study name, printed by sweeps/run.py) whose runs to "
                                        "tabulate, when several sweeps of one spec and profile differ in --set")
    parser.add_argument("--no-log", action="store_true", help="do not attach the outputs to the sweep run")
    args = parser.parse_args(argv)
    if bool(args.spec) == bool(args.all):
        parser.error("give exactly one of SPEC or --all")
    from fadepth.sweep.names import name_problem

    if args.study is not None and name_problem(args.study, "--study"):  # a filter value: no quotes, no '/'
        parser.error(name_problem(args.study, "--study"))
    return args


def _build_one(path: Path, args: argparse.Namespace, tracking_uri: str) -> BuildResult:
    spec = load_spec(path)
    result = build_spec(spec, tracking_uri=tracking_uri, out_dir=Path(args.out), profile=args.profile,
                        study=args.study, log_artifacts=not args.no_log)
    print(f"[report] {spec.name} (profile {result.profile}, sweep {result.study or '-'}): "
          + ", ".join(str(p) for p in [*result.files, *(f.png for f in result.figures)]))
    if result.logged_to:
        print(f"[report] {spec.name}: logged to the sweep run {result.logged_to}")
    return result


def print_next_steps(out: Path, tracking_uri: str, experiments: Sequence[str] = ()) -> None:
    """Where the tables are and how to look at the runs: the last lines of the README's main command.  The link
    opens a table's runs in MLflow's model-training view (a first open without it shows the GenAI one)."""
    from fadepth.sweep.tracking import UI_LOCAL, runs_page_url

    print(f"\nTables (ours beside the paper's): {out.resolve()}/table_*.tex (.md, .csv); "
          f"compile everything with: cd {out} && pdflatex report.tex")
    local = tracking_uri.startswith("sqlite:")
    if local:
        print("Browse and compare the runs in the MLflow UI:\n"
              f"  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {tracking_uri} "
              "--workers 1 --port 5000")
    else:
        print(f"Browse and compare the runs in the MLflow UI at {tracking_uri}")
    if local or tracking_uri.startswith(("http://", "https://")):  # (a database store's UI has its own address)
        for name in experiments:
            for experiment_id in runs.experiment_ids(tracking_uri, [name]):
                print(f"  then open {runs_page_url(experiment_id, UI_LOCAL if local else tracking_uri)}   ({name})")


def print_summaries(built: Sequence[BuildResult]) -> None:
    """The last lines: each table's best scheme (with its interval) and claims line, as the sweep ends."""
    print()
    for result in built:
        for line in result.summary:
            print(f"{result.spec_name}: {line}" if len(built) > 1 else line)


def main(argv: Sequence[str] | None = None, prog: str = "reports/build.py") -> int:
    """``reports/build.py`` (and ``fadepth report``, `prog`)."""
    args = parse_args(argv, prog)
    tracking_uri = args.tracking_uri or default_tracking_uri()
    paths = sorted((REPO_ROOT / "ablations").glob("table_*.yaml")) if args.all else [Path(args.spec)]
    built: list[BuildResult] = []
    for path in paths:
        try:
            built.append(_build_one(path, args, tracking_uri))
        except (ReportError, ImportError, ValueError) as why:  # ValueError: the spec loader's SpecError
            print(f"[report] {'skipped' if args.all else 'error'}: {path}: {why}", file=sys.stderr)
    if built:
        print(f"[report] {Path(args.out) / 'report.tex'}: {len(built)} table(s) built in this call")
        print_next_steps(Path(args.out), tracking_uri, [result.spec_name for result in built])
        print_summaries(built)
    if len(built) == len(paths) or (args.all and built):
        return 0
    return 1 if args.all else 2  # one spec that cannot be built: a user error (its line is above)
