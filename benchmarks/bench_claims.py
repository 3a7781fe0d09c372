"""Do the paper's two most transferable claims reproduce on the synthetic scenes?

Claims (scheme minus reference, AbsRel; the paper's Δ from reports/paper/*.csv):

* Table IV, learning-rate robustness at LR 1e-3: RN18 and MobileNetV3 degrade far more than SmallDepth
  (0.1647 and 0.2015 vs 0.1168), i.e. RN18@1e-3 − SmallDepth@1e-3 > 0 and MobileNetV3@1e-3 − SmallDepth@1e-3 > 0.
* Table VIII, the flip level: a2 (L_cr + L_flip) − a1 (L_cr alone) = −0.009.

Each scheme runs for every seed through the sweep runner (``sweeps/run.py``, so the runs are ordinary,
resumable MLflow runs under ``--runs-dir``); the differences are paired over seeds and judged with the
report's own statistics (:mod:`fadepth.report.stats`: 95 % Student-t interval of the per-seed differences).
Re-running the command skips finished runs.

Before the claims, one line per scheme: its per-seed AbsRel and how many seeds ended at the best constant
prediction (within 2 % of its AbsRel on the same test set: the run learned nothing, it collapsed).

Last line: ``claims reproduced=<n> contradicted=<n> unresolved=<n>`` (unresolved: the interval includes 0,
or fewer than two seeds finished). The table above it gives, per claim, ``seeds_for_paper_delta``: how many
seeds an interval as noisy as ours would need to exclude 0 for an effect the size of the paper's Δ
(:func:`fadepth.report.stats.seeds_to_resolve`), i.e. what would resolve a claim left open.

    python benchmarks/bench_claims.py                       # synthetic profile, seeds 0,1,2
    python benchmarks/bench_claims.py --set train.iterations=300 --seeds 0,1   # a quicker, weaker look
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fadepth.data import build_test_set  # noqa: E402
from fadepth.evaluation import constant_depth_metrics  # noqa: E402
from fadepth.report import runs, stats  # noqa: E402
from fadepth.sweep.spec import load_spec  # noqa: E402
from fadepth.sweep.study import study_name  # noqa: E402
from fadepth.sweep.tracking import default_tracking_uri  # noqa: E402
from fadepth.sweep.plan import parse_sets  # noqa: E402

METRIC = "abs_rel"
COLLAPSE_TOL = 0.02  # a run within 2 % of the constant prediction's AbsRel learned nothing (it "collapsed")


@dataclass(frozen=True)
class Claim:
    spec: str  # ablations/<spec>.yaml
    scheme: str
    reference: str
    paper_csv: str
    paper_scheme: dict  # columns that pick the scheme's paper row
    paper_reference: dict

    @property
    def label(self) -> str:
        return f"{self.spec}: {self.scheme} − {self.reference}"


CLAIMS = (
    Claim("table_iv", "RN18@1e-3", "SmallDepth@1e-3", "table04_lr.csv",
          {"scheme": "RN18", "lr": "1e-3"}, {"scheme": "SmallDepth", "lr": "1e-3"}),
    Claim("table_iv", "MobileNetV3@1e-3", "SmallDepth@1e-3", "table04_lr.csv",
          {"scheme": "MobileNetV3", "lr": "1e-3"}, {"scheme": "SmallDepth", "lr": "1e-3"}),
    Claim("table_viii", "a2", "a1", "table08_pyramid_levels.csv", {"scheme": "a2"}, {"scheme": "a1"}),
)


def paper_value(csv: str, row: dict) -> float:
    frame = pd.read_csv(ROOT / "reports" / "paper" / csv, dtype=str)
    for key, value in row.items():
        frame = frame[frame[key] == value]
    if len(frame) != 1:
        raise SystemExit(f"bench_claims: {csv}: expected one row for {row}, found {len(frame)}")
    return float(frame[METRIC].iloc[0])


def run_sweep(spec: str, schemes: list[str], args: argparse.Namespace) -> None:
    cmd = [sys.executable, str(ROOT / "sweeps" / "run.py"), str(ROOT / "ablations" / f"{spec}.yaml"),
           "--profile", args.profile, "--seeds", args.seeds, "--only", ",".join(schemes),
           "--runs-dir", str(args.runs_dir), "--no-progress"]
    cmd += [f"--set={item}" for item in args.set]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    print("$", " ".join(cmd), flush=True)
    done = subprocess.run(cmd, cwd=ROOT)
    if done.returncode not in (0, 1):  # 1: some runs failed; judged below from what finished
        raise SystemExit(f"bench_claims: the sweep of {spec} ended with rc {done.returncode}")


def seed_values(spec_name: str, args: argparse.Namespace) -> runs.RunSummary:
    spec = load_spec(ROOT / "ablations" / f"{spec_name}.yaml")
    study = study_name(spec, args.profile, parse_sets(args.set) or None)
    return runs.load_summary(spec, default_tracking_uri(args.runs_dir), args.profile, [METRIC], study)


def constant_level(spec_name: str, scheme: str, args: argparse.Namespace) -> float:
    """AbsRel of the best constant depth on the test set the runs were scored on (a collapsed run's value)."""
    spec = load_spec(ROOT / "ablations" / f"{spec_name}.yaml")
    cfg = spec.resolve(scheme, 0, args.profile, parse_sets(args.set) or None)
    return constant_depth_metrics(build_test_set(cfg.data, cfg.eval))[METRIC]


def scheme_rows(spec_name: str, schemes: list[str], summary: runs.RunSummary, args) -> list[dict]:
    """Per scheme: the seeds' values, and how many ended at the constant prediction (within COLLAPSE_TOL)."""
    constant = constant_level(spec_name, schemes[0], args)
    rows = []
    for scheme in schemes:
        values = dict(sorted(summary.seeds_of(scheme, METRIC).items()))
        rows.append({"scheme": f"{spec_name}: {scheme}", "per_seed": " / ".join(f"{v:.3f}" for v in values.values()),
                     "mean": sum(values.values()) / max(1, len(values)), "constant": constant,
                     "at_constant": f"{sum(v >= (1 - COLLAPSE_TOL) * constant for v in values.values())}/{len(values)}"})
    return rows


def judge(claim: Claim, summary: runs.RunSummary) -> dict:
    ours = stats.paired_delta(summary.seeds_of(claim.scheme, METRIC), summary.seeds_of(claim.reference, METRIC))
    paper = paper_value(claim.paper_csv, claim.paper_scheme) - paper_value(claim.paper_csv, claim.paper_reference)
    need = stats.seeds_to_resolve(ours, paper)
    return {"claim": claim.label, "paper_delta": paper, "ours_delta": ours.mean, "ci_low": ours.low,
            "ci_high": ours.high, "n": ours.n, "verdict": stats.verdict(paper, ours),
            "seeds_for_paper_delta": "-" if need is None else str(need)}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", default="synthetic", help="spec profile to train with (default: synthetic)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--runs-dir", type=Path, default=ROOT / "bench_out" / "claims", help="stores and checkpoints")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override for every run (e.g. train.iterations=300); a separate study")
    p.add_argument("--workers", type=int, default=0, help="CPU workers per sweep (default: the runner's)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    args.runs_dir = args.runs_dir.resolve()
    t0 = time.perf_counter()
    by_spec: dict[str, list[str]] = {}
    for claim in CLAIMS:
        by_spec.setdefault(claim.spec, [])
        by_spec[claim.spec] += [s for s in (claim.scheme, claim.reference) if s not in by_spec[claim.spec]]
    for spec, schemes in by_spec.items():
        run_sweep(spec, schemes, args)
    summaries = {spec: seed_values(spec, args) for spec in by_spec}
    per_scheme = pd.DataFrame([row for spec, schemes in by_spec.items()
                               for row in scheme_rows(spec, schemes, summaries[spec], args)])
    rows = pd.DataFrame([judge(claim, summaries[claim.spec]) for claim in CLAIMS])
    with pd.option_context("display.width", 160, "display.max_columns", None):
        print(per_scheme.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(rows.to_string(index=False, float_format=lambda v: f"{v:+.4f}"))
    count = rows["verdict"].value_counts()
    unresolved = len(rows) - count.get(stats.REPRODUCED, 0) - count.get(stats.CONTRADICTED, 0)
    print(f"wall {time.perf_counter() - t0:.0f} s; profile {args.profile}, seeds {args.seeds}"
          + (f", --set {' '.join(args.set)}" if args.set else ""))
    print(f"claims reproduced={count.get(stats.REPRODUCED, 0)} contradicted={count.get(stats.CONTRADICTED, 0)} "
          f"unresolved={unresolved}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
