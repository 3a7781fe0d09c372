"""Reports: the paper's tables with our numbers beside the paper's, figures, one LaTeX document.

* :mod:`fadepth.report.runs`      read FINISHED child runs from MLflow, mean/std/n per scheme
* :mod:`fadepth.report.tables`    comparison frame -> ``table_x.tex`` (Styler), ``.md``, ``.csv``
* :mod:`fadepth.report.figures`   seaborn figures (PNG + PDF)
* :mod:`fadepth.report.document`  ``report.tex`` with every table and figure built so far

This module holds the steps of one build (:func:`build_spec`) and the ``reports/build.py`` command line
(:func:`main`).
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import pandas as pd

from fadepth.report import document, figures, runs, tables
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


def load_spec(path: str | Path):
    from fadepth.sweep.spec import load_spec as _load  # the spec loader owns validation and hashing

    return _load(path)


# ----------------------------------------------------------------------------------- profiles
def choose_profile(spec, tracking_uri: str, requested: str | None) -> str:
    """The requested profile, else 'paper' if it has runs, else the only profile with runs."""
    if requested or spec.kind == "complexity":
        return requested or PREFERRED_PROFILE
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
def train_comparison(spec, tracking_uri: str, profile: str) -> tuple[tables.Comparison, str]:
    paper = tables.load_paper_table(spec.paper_table)
    metrics = tables.ordered_metrics(spec.metrics.columns, paper)
    summary = runs.load_summary(spec, tracking_uri, profile, spec.metrics.columns)
    if summary.empty:
        raise ReportError(no_runs_message(spec, tracking_uri, profile))
    ours = tables.ours_from_summary(summary, metrics)
    primary = tables.PAPER_COLUMN.get(spec.metrics.primary, spec.metrics.primary)
    low, high = int(summary.counts.min()), int(summary.counts.max())
    seeds = f"{low}" if low == high else f"{low}--{high}"
    what = f"Ours: mean $\\pm$ std over {seeds} finished seed(s) per scheme"
    return tables.build_comparison(spec, ours, paper, metrics, primary), what


def measure_complexity(spec, profile: str, device: str, fps: bool) -> dict[str, dict]:
    """``complexity_rows`` per scheme, at the resolution of the scheme's resolved config."""
    from fadepth.complexity import complexity_rows

    measured = {}
    for scheme in spec.schemes:
        cfg = spec.resolve(scheme.name, spec.seeds_for(profile)[0], profile)
        (row,) = complexity_rows([cfg.model.name], height=cfg.data.height, width=cfg.data.width,
                                 device=device, fps=fps)
        measured[scheme.name] = {**row, "model": cfg.model.name, "size": f"{cfg.data.height}x{cfg.data.width}"}
    return measured


def complexity_comparison(spec, measured: dict[str, dict]) -> tuple[tables.Comparison, str]:
    paper = tables.load_paper_table(spec.paper_table)
    metrics, primary = tables.complexity_metrics(spec, paper)
    ours = tables.ours_from_complexity(measured, metrics)
    sizes = sorted({row["size"] for row in measured.values()})
    devices = sorted({str(row.get("device", "?")) for row in measured.values()})
    what = f"Ours: counted at {', '.join(sizes)} on {', '.join(devices)} (fadepth.complexity)"
    return tables.build_comparison(spec, ours, paper, metrics, primary), what


def speed_accuracy_points(measured: dict[str, dict], tracking_uri: str, profile: str) -> pd.DataFrame:
    """Our architectures with complexity and their best finished AbsRel (for the speed-accuracy scatter)."""
    try:
        best = runs.best_abs_rel_by_model(tracking_uri, profile, [r["model"] for r in measured.values()])
    except ReportError:
        return pd.DataFrame()
    points = [{"label": f"{scheme} (ours)", "gflops": tables._in_paper_units("gflops", row.get("gflops")),
               "fps": row.get("fps"), "abs_rel": best[row["model"]]}
              for scheme, row in measured.items() if row["model"] in best]
    return pd.DataFrame(points)


# Table IV's bottom half (encoder/decoder complexity of three DepthNets) is built from the same counts as
# Table I: complexity spec's paper table -> (companion paper table, its name, {model name: paper scheme}).
COMPANIONS = {"table01_complexity.csv": ("table04_complexity.csv", "table_iv_complexity",
                                         {"rn18": "RN18", "mobilenetv3": "MobileNetV3", "smalldepth": "SmallDepth"})}


def companion_spec(spec, measured: dict[str, dict]):
    """A spec-like view of ``spec`` restricted to the companion table's architectures, or None."""
    if spec.paper_table not in COMPANIONS:
        return None
    paper_table, name, by_model = COMPANIONS[spec.paper_table]
    schemes = [SimpleNamespace(name=s.name, overrides=s.overrides, paper={"scheme": by_model[measured[s.name]["model"]]})
               for s in spec.schemes if measured[s.name]["model"] in by_model]
    if not schemes:
        return None
    baseline = spec.baseline if spec.baseline in {s.name for s in schemes} else None
    title = "Table IV (bottom): encoder / decoder complexity of the DepthNets (same counts as Table I)"
    metrics = SimpleNamespace(primary="gflops", direction="minimize", columns=["params_m", "gflops", "fps"])
    return SimpleNamespace(name=name, title=title, paper_table=paper_table, kind="complexity", baseline=baseline,
                           schemes=schemes, metrics=metrics, overrides={}, path=spec.path, spec_hash=spec.spec_hash)


# ----------------------------------------------------------------------------------- one build
def build_spec(spec, *, tracking_uri: str, out_dir: Path, profile: str | None = None, device: str = "cpu",
               fps: bool = False, log_artifacts: bool = True, say: Callable[[str], None] = print) -> BuildResult:
    """Tables (+ figures, report.tex, MLflow artifacts) for one spec.  Raises ReportError with the reason."""
    profile = choose_profile(spec, tracking_uri, profile)
    context = {"accuracy_profile": profile}
    if spec.kind == "complexity":
        measured = measure_complexity(spec, profile, device, fps)
        comparison, what = complexity_comparison(spec, measured)
        context["ours_speed_accuracy"] = speed_accuracy_points(measured, tracking_uri, profile)
    else:
        comparison, what = train_comparison(spec, tracking_uri, profile)
    caption = tables.caption_text(spec, comparison, profile if spec.kind == "train" else None, what)
    result = BuildResult(spec.name, profile)
    result.files = tables.write_table_files(comparison, out_dir, spec.name, caption)
    result.figures = figures.make_figures(spec, comparison, out_dir / "figures", context, say=say)
    entry = document.entry_for(spec, profile, result.files[0], result.figures, out_dir)
    result.document = document.write_document(out_dir, entry, tracking_uri)
    companion = companion_spec(spec, measured) if spec.kind == "complexity" else None
    if companion is not None:
        comparison, _ = complexity_comparison(companion, {s.name: measured[s.name] for s in companion.schemes})
        caption = tables.caption_text(companion, comparison, None, what)
        companion_files = tables.write_table_files(comparison, out_dir, companion.name, caption)
        result.files += companion_files
        entry = document.entry_for(companion, profile, companion_files[0], [], out_dir)
        result.document = document.write_document(out_dir, entry, tracking_uri)
    if log_artifacts:
        result.logged_to = log_to_sweep_run(spec, tracking_uri, profile, result)
    return result


def log_to_sweep_run(spec, tracking_uri: str, profile: str, result: BuildResult) -> str | None:
    """Attach tables and figures to the sweep's parent run (tag fadepth.role=sweep), when it exists."""
    if runs.sqlite_path(tracking_uri) is not None and not runs.sqlite_path(tracking_uri).is_file():
        return None
    run_id = runs.find_sweep_run(spec, tracking_uri, profile)
    if run_id is None:
        return None
    runs.log_artifacts(tracking_uri, run_id, result.files, "report")
    figure_files = [p for f in result.figures for p in (f.png, f.pdf)]
    runs.log_artifacts(tracking_uri, run_id, figure_files, "report/figures")
    return run_id


# ----------------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="reports/build.py", description=(
        "Build the paper's tables (ours beside the paper's: .tex/.md/.csv), figures and report.tex "
        "from the sweep's MLflow runs."))
    parser.add_argument("spec", nargs="?", help="an ablations/table_*.yaml spec")
    parser.add_argument("--all", action="store_true", help="every ablations/table_*.yaml with finished runs")
    parser.add_argument("--profile", help="run profile (smoke|paper); default: paper, or the only one with runs")
    parser.add_argument("--tracking-uri", default=None, help="MLflow store (default sqlite:///$PWD/runs/mlflow.db)")
    parser.add_argument("--out", default="reports/out", help="output folder (default reports/out)")
    parser.add_argument("--device", default="cpu", help="device for complexity specs (default cpu)")
    parser.add_argument("--fps", action="store_true", help="also time FPS for complexity specs")
    parser.add_argument("--no-log", action="store_true", help="do not attach the outputs to the sweep run")
    args = parser.parse_args(argv)
    if bool(args.spec) == bool(args.all):
        parser.error("give exactly one of SPEC or --all")
    return args


def _build_one(path: Path, args: argparse.Namespace, tracking_uri: str) -> BuildResult:
    spec = load_spec(path)
    result = build_spec(spec, tracking_uri=tracking_uri, out_dir=Path(args.out), profile=args.profile,
                        device=args.device, fps=args.fps, log_artifacts=not args.no_log)
    print(f"[report] {spec.name} (profile {result.profile}): "
          + ", ".join(str(p) for p in [*result.files, *(f.png for f in result.figures)]))
    if result.logged_to:
        print(f"[report] {spec.name}: logged to the sweep run {result.logged_to}")
    return result


def print_next_steps(out: Path, tracking_uri: str) -> None:
    """Where the tables are and how to look at the runs: the last lines of the README's main command."""
    print(f"\nTables (ours beside the paper's): {out.resolve()}/table_*.tex (.md, .csv); "
          f"compile everything with: cd {out} && pdflatex report.tex")
    if tracking_uri.startswith("sqlite:"):
        print("Browse and compare the runs in the MLflow UI (then open http://127.0.0.1:5000):\n"
              f"  MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow ui --backend-store-uri {tracking_uri} "
              "--workers 1 --port 5000")
    else:
        print(f"Browse and compare the runs in the MLflow UI at {tracking_uri}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tracking_uri = args.tracking_uri or default_tracking_uri()
    paths = sorted((REPO_ROOT / "ablations").glob("table_*.yaml")) if args.all else [Path(args.spec)]
    built = 0
    for path in paths:
        try:
            _build_one(path, args, tracking_uri)
            built += 1
        except (ReportError, ImportError, ValueError) as why:  # ValueError: the spec loader's SpecError
            print(f"[report] {'skipped' if args.all else 'error'}: {path}: {why}", file=sys.stderr)
    if built:
        print(f"[report] {Path(args.out) / 'report.tex'}: {built} table(s) built in this call")
        print_next_steps(Path(args.out), tracking_uri)
    return 0 if built == len(paths) or (args.all and built) else 1
