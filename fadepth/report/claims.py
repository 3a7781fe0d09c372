"""The claims table: every claim a spec declares (``claims:``), judged on one sweep's finished runs.

One row per claim -- the paper's Δ, ours with its t-interval and its sign-flip interval, the collapse counts of
both schemes, ``n``, the deciding test and its p, the verdict and the seeds that would resolve it.  The
verdicts come from :func:`fadepth.report.stats.judge_claims` (the one place that decides; docs/claims.md).

* :func:`claims_frame`     the table as a DataFrame (numbers), for one spec's summary;
* :func:`claims_markdown`  the same as Markdown, read from the MLflow store (for the experiment description);
* :func:`claims_line`      ``claims reproduced=… contradicted=… unresolved=…``;
* :func:`best_scheme`      the best scheme of a sweep by its primary metric, with its t-interval.
"""
from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any, Mapping, Sequence

import pandas as pd

from fadepth import contracts
from fadepth.report import runs, stats

COLUMNS = ["table", "claim", "kind", "paper_delta", "ours", "t_low", "t_high", "flip_low", "flip_high",
           "collapsed_scheme", "collapsed_reference", "n", "test", "p", "verdict", "seeds_needed", "note"]


@lru_cache(maxsize=32)
def _constant(data_eval: str, metric: str) -> float:
    from fadepth.config import ExperimentConfig
    from fadepth.data import build_test_set
    from fadepth.evaluation import constant_depth_metrics

    cfg = ExperimentConfig.model_validate(json.loads(data_eval))
    return float(constant_depth_metrics(build_test_set(cfg.data, cfg.eval))[metric])


def constant_value(spec, profile: str, scheme: str, metric: str, extra: Mapping[str, Any] | None = None) -> float:
    """The metric of the best constant prediction on the test set ``scheme``'s runs were scored on (a collapsed
    run's value); NaN when the test set cannot be built here (e.g. KITTI is absent)."""
    try:
        cfg = spec.resolve(scheme, 0, profile, extra)
        key = json.dumps({"data": cfg.data.model_dump(mode="json"), "eval": cfg.eval.model_dump(mode="json")},
                         sort_keys=True)
        return _constant(key, metric)
    except Exception:  # noqa: BLE001 - no test set here: no collapse can be called
        return math.nan


def claim_data(spec, summary: runs.RunSummary, profile: str, extra: Mapping[str, Any] | None = None,
               constants: Mapping[str, float] | None = None) -> list[stats.ClaimData]:
    """The inputs of each declared claim (``constants``: ``{scheme: value}`` to skip building test sets)."""
    out = []
    for claim in getattr(spec, "claims", []) or []:
        constant = (constants or {}).get(claim.scheme)
        if constant is None:
            constant = constant_value(spec, profile, claim.scheme, claim.metric, extra)
        out.append(stats.ClaimData(claim.kind, claim.paper_delta, summary.seeds_of(claim.scheme, claim.metric),
                                   summary.seeds_of(claim.reference, claim.metric), constant,
                                   contracts.LOWER_IS_BETTER.get(claim.metric, True)))
    return out


def claims_frame(spec, summary: runs.RunSummary, profile: str, looks: int = 1,
                 extra: Mapping[str, Any] | None = None, constants: Mapping[str, float] | None = None
                 ) -> pd.DataFrame:
    """One row per declared claim of ``spec`` (empty frame when it declares none)."""
    data = claim_data(spec, summary, profile, extra, constants)
    rows = []
    for claim, d, j in zip(spec.claims if data else [], data, stats.judge_claims(data, looks)):
        rows.append({"table": spec.name, "claim": claim.label, "kind": claim.kind,
                     "paper_delta": claim.paper_delta, "ours": j.effect, "t_low": j.delta.low,
                     "t_high": j.delta.high, "flip_low": j.flip_low, "flip_high": j.flip_high,
                     "collapsed_scheme": _count(j.scheme_rate, d.constant),
                     "collapsed_reference": _count(j.reference_rate, d.constant), "n": j.delta.n, "test": j.test,
                     "p": j.p, "verdict": j.verdict, "seeds_needed": j.seeds_needed, "note": claim.note or ""})
    return pd.DataFrame(rows, columns=COLUMNS)


def _count(rate: stats.Rate, constant: float) -> str:
    if not math.isfinite(constant):
        return "-"
    return f"{rate.k}/{rate.n}" + (f" [{rate.low:.2f}, {rate.high:.2f}]" if rate.n else "")


def counts(frame: pd.DataFrame) -> dict[str, int]:
    verdicts = frame["verdict"] if len(frame) else pd.Series([], dtype=str)
    reproduced, contradicted = int((verdicts == stats.REPRODUCED).sum()), int((verdicts == stats.CONTRADICTED).sum())
    return {"reproduced": reproduced, "contradicted": contradicted, "unresolved": len(verdicts) - reproduced - contradicted}


def claims_line(frame: pd.DataFrame) -> str:
    c = counts(frame)
    return f"claims reproduced={c['reproduced']} contradicted={c['contradicted']} unresolved={c['unresolved']}"


def unresolved_schemes(spec, frame: pd.DataFrame) -> list[str]:
    """Schemes (and references) of the claims not yet reproduced or contradicted, in spec order."""
    open_claims = {row["claim"] for _, row in frame.iterrows()
                   if row["verdict"] not in (stats.REPRODUCED, stats.CONTRADICTED)}
    wanted = {name for c in spec.claims if c.label in open_claims for name in (c.scheme, c.reference)}
    return [s for s in spec.scheme_names if s in wanted]


def _signed(value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return "−∞" if value < 0 else "+∞"
    return f"{value:+.4f}".replace("-", "−")


def display_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """The claims table as text cells: what is printed, and put on top of the report's Markdown."""
    rows = []
    for _, r in frame.iterrows():
        collapse = r["kind"] == "collapse"
        rows.append({
            "claim": f"{r['table']}: {r['claim']}", "paper Δ": _signed(r["paper_delta"]),
            "ours": _signed(r["ours"]) + (" (rate)" if collapse else ""),
            "t-interval": f"[{_signed(r['t_low'])}, {_signed(r['t_high'])}]",
            "sign-flip interval": f"[{_signed(r['flip_low'])}, {_signed(r['flip_high'])}]",
            "collapsed (scheme / ref.)": f"{r['collapsed_scheme']} / {r['collapsed_reference']}",
            "n": int(r["n"]), "test": r["test"] or "-", "p": "-" if not math.isfinite(r["p"]) else f"{r['p']:.3g}",
            "verdict": r["verdict"],
            "seeds for paper Δ": "-" if pd.isna(r["seeds_needed"]) else str(int(r["seeds_needed"])),
            "note": r["note"]})
    return pd.DataFrame(rows)


def to_markdown(frame: pd.DataFrame, looks: int = 1) -> str:
    if frame.empty:
        return ""
    alpha = stats.ALPHA / max(1, looks)
    rule = (f"Intervals at {100 * (1 - alpha):.4g} %; verdict: Holm over the table's claims at α = {alpha:.3g}"
            + (f" ({looks} planned looks)" if looks > 1 else "") + "; rule: docs/claims.md")
    table = display_frame(frame).to_markdown(index=False, disable_numparse=True)  # cells as printed: "+0.0000"
    return f"{table}\n\n{rule}\n\n{claims_line(frame)}\n"


def claims_markdown(spec, tracking_uri: str, profile: str, study: str | None = None, looks: int = 1,
                    extra: Mapping[str, Any] | None = None) -> str:
    """The claims table of one sweep as Markdown, read from the MLflow store ('' when the spec declares no
    claim).  For the MLflow experiment description and the report."""
    if not getattr(spec, "claims", None):
        return ""
    metrics = sorted({c.metric for c in spec.claims})
    summary = runs.load_summary(spec, tracking_uri, profile, metrics, study)
    return to_markdown(claims_frame(spec, summary, profile, looks, extra), looks)


def best_scheme(spec, summary: runs.RunSummary) -> tuple[str, stats.Estimate] | None:
    """The scheme with the best mean primary metric, with its t-interval (None without finished runs)."""
    metric = spec.metrics.primary
    estimates = {s: stats.mean_ci(list(summary.seeds_of(s, metric).values())) for s in summary.schemes}
    estimates = {s: e for s, e in estimates.items() if math.isfinite(e.mean)}
    if not estimates:
        return None
    pick = min if spec.metrics.direction == "minimize" else max
    name = pick(estimates, key=lambda s: estimates[s].mean)
    return name, estimates[name]


def summary_lines(spec, summary: runs.RunSummary, frame: pd.DataFrame) -> list[str]:
    """The end of a sweep: its best scheme (with interval) and, when it declares claims, the claims line."""
    lines = []
    best = best_scheme(spec, summary)
    if best is not None:
        name, est = best
        interval = f"[{est.low:.4f}, {est.high:.4f}]" if est.has_interval else "(no interval: 1 seed)"
        lines.append(f"best scheme {name}: {spec.metrics.primary} {est.mean:.4f} {interval}, n={est.n}")
    lines.append(claims_line(frame) if getattr(spec, "claims", None) else "claims: none declared in this spec")
    return lines


def metrics_needed(spec: Any) -> Sequence[str]:
    """The metrics a summary must hold to judge the spec's claims and pick its best scheme."""
    return sorted({spec.metrics.primary, *(c.metric for c in getattr(spec, "claims", []) or [])})
