"""Do the paper's claims reproduce on the synthetic scenes?  Runs the claims the specs declare (``claims:`` in
``ablations/table_*.yaml``; all specs that declare any, or the ones given) and judges them.

Each spec's claim schemes (scheme and reference of every claim) run for every seed through the sweep runner
(:func:`fadepth.sweep.launcher.run`, in this process: ordinary, resumable MLflow runs under ``--runs-dir``;
queued seed by seed, so a run cut short still holds paired seeds).  The verdicts come from
:func:`fadepth.report.stats.judge_claims` -- the paired t-test (or, when runs collapsed, the sign-flip test) for
``delta`` claims, Boschloo's exact test for ``collapse`` claims, Holm over each table's claims; docs/claims.md.
With ``--until-resolved`` seeds are added in rounds (doubling up to ``--max-seeds``), only to the schemes of
claims still open; each round prints one line; Bonferroni over the planned looks keeps the error rate.

Before the claims, one line per scheme: its per-seed value and how many seeds ended at the best constant
prediction (:func:`fadepth.evaluation.constant_depth_metrics`, within 2 %).  Then the per-claim table, the wall
time, and last ``claims reproduced=<n> contradicted=<n> unresolved=<n>``.  Re-running skips finished runs.

    python benchmarks/bench_claims.py                                   # every declared claim, synthetic, 3 seeds
    python benchmarks/bench_claims.py ablations/table_viii.yaml ablations/table_iv.yaml
    python benchmarks/bench_claims.py --until-resolved --max-seeds 16 --gpus auto --workers-per-gpu 12
"""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from fadepth import contracts  # noqa: E402
from fadepth.errors import guarded  # noqa: E402
from fadepth.report import claims as cl  # noqa: E402
from fadepth.report import rounds, runs, stats  # noqa: E402
from fadepth.sweep import launcher  # noqa: E402
from fadepth.sweep.plan import parse_ints, parse_sets  # noqa: E402
from fadepth.sweep.spec import load_spec  # noqa: E402
from fadepth.sweep.study import study_name  # noqa: E402
from fadepth.sweep.tracking import default_tracking_uri  # noqa: E402


def sweep_argv(spec, seeds: list[int], schemes: list[str], args: argparse.Namespace) -> list[str]:
    argv = [str(spec.path), "--profile", args.profile, "--seeds", ",".join(map(str, seeds)), "--only",
            ",".join(schemes), "--runs-dir", str(args.runs_dir), "--gpus", args.gpus, "--no-progress"]
    if args.workers_per_gpu:  # else the sweep measures one run and chooses
        argv += ["--workers-per-gpu", str(args.workers_per_gpu)]
    argv += [f"--set={item}" for item in args.set]
    for flag, value in (("--workers", args.workers), ("--storage", args.storage),
                        ("--tracking-uri", args.tracking_uri)):
        if value:
            argv += [flag, str(value)]
    return argv


def run_spec(spec, args: argparse.Namespace) -> pd.DataFrame:
    """The rounds of one spec (one round without --until-resolved); its final claims table."""
    extra = parse_sets(args.set)
    study = study_name(spec, args.profile, extra or None)
    tracking_uri = args.tracking_uri or default_tracking_uri(args.runs_dir)
    seeds = parse_ints(args.seeds, "--seeds")

    def launch(new_seeds: list[int], schemes: list[str]) -> int:
        argv = sweep_argv(spec, new_seeds, schemes, args)
        print("$ sweeps/run.py " + " ".join(argv), flush=True)
        return launcher.run(launcher.build_parser().parse_args(argv))  # 1: some runs failed; judged on the rest

    def judge(looks: int) -> pd.DataFrame:
        summary = runs.load_summary(spec, tracking_uri, args.profile, cl.metrics_needed(spec), study)
        return cl.claims_frame(spec, summary, args.profile, looks, extra)

    frame = rounds.run_rounds(spec, seeds, args.max_seeds if args.until_resolved else len(seeds), launch, judge,
                              first_done=False)
    summary = runs.load_summary(spec, tracking_uri, args.profile, cl.metrics_needed(spec), study)
    shown = dict.fromkeys((s, c.metric) for c in spec.claims for s in (c.scheme, c.reference))
    for scheme, metric in shown:
        constant = cl.constant_value(spec, args.profile, scheme, metric, extra)
        values = dict(sorted(summary.seeds_of(scheme, metric).items()))
        at = sum(stats.collapsed(v, constant, contracts.LOWER_IS_BETTER.get(metric, True)) for v in values.values())
        print(f"  {spec.name}: {scheme} {metric} per seed: " + " / ".join(f"{v:.3f}" for v in values.values())
              + f"; at the constant ({constant:.3f}): {at}/{len(values)}")
    return frame


def only_schemes(spec, schemes: str | None):
    """``spec`` with only the claims whose scheme and reference are both in ``schemes`` (all when None)."""
    if not schemes:
        return spec
    keep = {s.strip() for s in schemes.split(",") if s.strip()}
    return spec.model_copy(update={"claims": [c for c in spec.claims if {c.scheme, c.reference} <= keep]})


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="*", help="specs whose claims to run (default: every ablations/table_*.yaml "
                                            "that declares claims)")
    p.add_argument("--profile", default="synthetic", help="spec profile to train with (default: synthetic)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds of the first round (default 0,1,2)")
    p.add_argument("--until-resolved", action="store_true",
                   help="add seeds in rounds (doubling) to the schemes of unresolved claims, up to --max-seeds")
    p.add_argument("--max-seeds", type=launcher.positive_int, default=16, metavar="N",
                   help="with --until-resolved: the most seeds per scheme (default 16)")
    p.add_argument("--schemes", help="comma-separated schemes: run only the claims whose scheme and reference are "
                                     "both among them (e.g. a1,a2 for Table VIII's flip level)")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "bench_out" / "claims", help="stores and checkpoints")
    p.add_argument("--storage", help="Optuna storage passed to the sweep (default: <runs-dir>/optuna.journal)")
    p.add_argument("--tracking-uri", help="MLflow tracking URI passed to the sweep (default: <runs-dir>/mlflow.db)")
    p.add_argument("--gpus", default="auto", help="passed to the sweep: GPU ids, 'auto' (default) or 'none'")
    p.add_argument("--workers-per-gpu", type=launcher.positive_int, default=None, metavar="N",
                   help="passed to the sweep: workers sharing each GPU (default 1)")
    p.add_argument("--workers", type=int, default=0, help="CPU workers per sweep (default: the runner's)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (e.g. train.iterations=300); a separate study")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.runs_dir = args.runs_dir.resolve()
    paths = [Path(s) for s in args.specs] or sorted((ROOT / "ablations").glob("table_*.yaml"))
    specs = [only_schemes(spec, args.schemes) for spec in map(load_spec, paths)]
    specs = [spec for spec in specs if spec.claims]
    if not specs:
        raise SystemExit(f"bench_claims: no claims declared in {', '.join(map(str, paths))}")
    t0 = time.perf_counter()
    frames = [run_spec(spec, args) for spec in specs]
    frame = pd.concat(frames, ignore_index=True)
    looks = len(stats.planned_looks(len(parse_ints(args.seeds, "--seeds")), args.max_seeds)) \
        if args.until_resolved else 1
    with pd.option_context("display.width", 250, "display.max_columns", None, "display.max_colwidth", 60):
        print(cl.display_frame(frame).drop(columns=["note"]).to_string(index=False))
    print(f"wall {time.perf_counter() - t0:.0f} s; profile {args.profile}, seeds {args.seeds}"
          + (f", --until-resolved --max-seeds {args.max_seeds} ({looks} planned looks)" if args.until_resolved else "")
          + (f", --set {' '.join(args.set)}" if args.set else ""))
    print(cl.claims_line(frame))
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    raise SystemExit(guarded("bench_claims.py", main))
