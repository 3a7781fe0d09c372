"""One paper table, ours beside the paper's, with statistics and a verdict per claim; LaTeX / Markdown / CSV.

Two frames (:class:`Comparison`):

* ``claims``: one row per scheme -- settings, the paper's primary metric and its Δ to the paper's baseline,
  ours (mean and 95 % Student-t interval over seeds, ``n``), our Δ to our baseline *paired over the seeds both
  share* with its interval, and the verdict (:mod:`fadepth.report.stats`).  This is the table to paste.
* ``frame``: every metric, one row per (scheme, source) -- ``ours`` (mean, ``<metric>_low/_high``) or
  ``paper`` (the CSV row(s) the scheme's ``paper`` mapping selects).

The setting columns (``lr``, ``pb_dsr``, ...) come from the paper row, else from the scheme's overrides.
Bold marks only our rows (best mean among schemes with an interval); negative numbers carry a real minus.
Rendering (LaTeX / Markdown / CSV, the summary and the caption) is :mod:`fadepth.report.render`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fadepth import contracts
from fadepth.sweep.claims import same as same_cell  # a CSV cell equals a YAML value: one rule
from fadepth.report import stats
from fadepth.report.runs import ReportError, RunSummary

PAPER_DIR = Path(__file__).resolve().parents[2] / "reports" / "paper"
ID_COLUMNS = ("scheme", "method", "ref", "ours", "scheme_tex")
PAPER_ONLY_COLUMNS = ("gpu_util_pct", "n")  # the paper's measurements we do not take


@dataclass(frozen=True)
class MetricInfo:
    latex: str
    text: str
    lower_is_better: bool
    decimals: int = 4


METRICS: dict[str, MetricInfo] = {
    "abs_rel": MetricInfo("AbsRel", "AbsRel", True),
    "sq_rel": MetricInfo("SqRel", "SqRel", True),
    "rmse": MetricInfo("RMSE", "RMSE", True),
    "rmse_log": MetricInfo("RMSE log", "RMSE log", True),
    "a1": MetricInfo(r"$\delta<1.25$", "δ<1.25", False),
    "a2": MetricInfo(r"$\delta<1.25^2$", "δ<1.25²", False),
    "a3": MetricInfo(r"$\delta<1.25^3$", "δ<1.25³", False),
    "param_m": MetricInfo("Param (M)", "Param (M)", True, 2),
    "gflops": MetricInfo("GFLOPs", "GFLOPs", True, 2),
    "fps": MetricInfo("FPS", "FPS", False, 0),
    "param_enc_m": MetricInfo("Param enc (M)", "Param enc (M)", True, 2),
    "param_dec_m": MetricInfo("Param dec (M)", "Param dec (M)", True, 2),
    "gflops_enc": MetricInfo("GFLOPs enc", "GFLOPs enc", True, 2),
    "gflops_dec": MetricInfo("GFLOPs dec", "GFLOPs dec", True, 2),
    "mac_enc_m": MetricInfo("MAC enc (M)", "MAC enc (M)", True, 2),
    "mac_dec_m": MetricInfo("MAC dec (M)", "MAC dec (M)", True, 2),
}
# Spec / MLflow metric names whose paper CSV column is spelled differently.
PAPER_COLUMN = {logged: paper for paper, logged in contracts.PAPER_COMPLEXITY.items() if logged != paper}

SETTING_HEADERS_LATEX = {
    "lr": "LR", "pb_dsr": "$pb_{dsr}$", "pb_sd": "$pb_{sd}$", "constant_rate": "const.", "pb_t": "$pb_t$",
    "r1": "$r_1$", "r2": "$r_2$", "etm": "ETM", "uses_dropconv": "dropconv", "sup_loss": "Loss",
    "etm_init_from_smalldepth": "ETM\\#", "i": "$i$", "per_loss_grad_sum": "grad-sum",
    "alpha_cr": r"$\alpha_{cr}$", "alpha_i": r"$\alpha_i$", "beta_i": r"$\beta_i$", "gamma_i": r"$\gamma_i$",
}
FIXED_HEADERS = {"scheme": ("Scheme", "Scheme"), "source": ("Source", "Source"), "n": ("Seeds", "Seeds")}


# ----------------------------------------------------------------------------------- paper rows
def load_paper_table(file_name: str | None, paper_dir: Path = PAPER_DIR) -> pd.DataFrame | None:
    """The paper's CSV as text (cells exactly as printed, '' where the paper has none), or None."""
    if not file_name:
        return None
    path = paper_dir / file_name
    if not path.is_file():
        raise ReportError(f"paper table {path} not found (spec field paper_table: {file_name!r})")
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def select_paper_rows(paper: pd.DataFrame | None, mapping: Mapping[str, Any] | None) -> pd.DataFrame:
    if paper is None or not mapping:
        return pd.DataFrame()
    unknown = [key for key in mapping if key not in paper.columns]
    if unknown:
        raise ReportError(f"paper mapping names column(s) {unknown} absent from the paper table; "
                          f"columns: {', '.join(paper.columns)}")
    keep = np.ones(len(paper), dtype=bool)
    for key, value in mapping.items():
        keep &= paper[key].map(lambda cell: same_cell(cell, value)).to_numpy(dtype=bool)
    return paper[keep]


def paper_label(row: Mapping[str, Any]) -> str:
    if row.get("scheme"):
        return str(row["scheme"])
    ref = f" [{row['ref']}]" if row.get("ref") else ""
    return f"{row.get('method', '')}{ref}"


def setting_columns(paper: pd.DataFrame | None, metrics: Sequence[str]) -> list[str]:
    if paper is None:
        return []
    skip = set(ID_COLUMNS) | set(PAPER_ONLY_COLUMNS) | set(METRICS) | set(metrics)
    return [c for c in paper.columns if c not in skip]


def paper_decimals(paper: pd.DataFrame | None, column: str) -> int:
    default = METRICS[column].decimals if column in METRICS else 4
    if paper is None or column not in paper:
        return default
    digits = [len(v.split(".")[1]) for v in paper[column] if "." in v]
    return max(digits) if digits else (0 if (paper[column] != "").any() else default)


def ordered_metrics(columns: Sequence[str], paper: pd.DataFrame | None) -> list[str]:
    """The spec's metric columns in the paper's column order (the rest after them)."""
    names = [PAPER_COLUMN.get(c, c) for c in columns]
    in_paper = [c for c in (paper.columns if paper is not None else []) if c in names]
    return in_paper + [c for c in names if c not in in_paper]


# ----------------------------------------------------------------------------------- comparison
@dataclass(frozen=True)
class OursRow:
    """Our numbers for one scheme: an estimate (mean, t-interval, n) per metric and the paired Δ of the
    primary metric to the baseline (None for the baseline itself or without a baseline)."""

    estimates: Mapping[str, stats.Estimate]
    n: int
    delta: stats.Estimate | None = None


@dataclass
class Comparison:
    frame: pd.DataFrame  # every metric: one row per (scheme, source)
    claims: pd.DataFrame  # the primary metric: one row per scheme, with Δs and the verdict
    metrics: list[str]
    settings: list[str]
    primary: str
    baseline: str | None
    decimals: dict[str, int] = field(default_factory=dict)
    unfinished: dict[str, str] = field(default_factory=dict)  # {scheme: why it has no finished run}
    statistical: bool = True  # False for complexity counts (deterministic: no seeds, no verdict)

    @property
    def shown_settings(self) -> list[str]:
        """Setting columns whose value differs between rows (constant ones go to the caption)."""
        return [c for c in self.settings if self.frame[c].map(comparable).dropna().nunique() > 1]

    def verdict_counts(self) -> dict[str, int]:
        verdicts = self.claims["verdict"][self.claims["verdict"].isin(stats.VERDICTS)]
        return {v: int((verdicts == v).sum()) for v in stats.VERDICTS}


def comparable(value: Any) -> Any:
    """A setting cell for comparison: a number when it is one ('1e-4' == 0.0001), None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).strip().lower()


def ours_from_summary(summary: RunSummary, metrics: Sequence[str], primary: str, baseline: str | None
                      ) -> dict[str, OursRow]:
    """Per scheme: mean and t-interval of every metric over its seeds; paired Δ of the primary metric."""
    to_paper = {logged: paper for paper, logged in contracts.PAPER_COMPLEXITY.items()}
    logged = {to_paper.get(m, m): m for m in summary.values.columns}
    base = summary.seeds_of(baseline, logged[primary]) if baseline and primary in logged else {}
    rows = {}
    for scheme in summary.schemes:
        estimates = {m: stats.mean_ci(list(summary.seeds_of(scheme, logged[m]).values())) if m in logged
                     else stats.mean_ci([]) for m in metrics}
        delta = None
        if base and scheme != baseline and primary in logged:
            delta = stats.paired_delta(summary.seeds_of(scheme, logged[primary]), base)
        rows[scheme] = OursRow(estimates, int(summary.counts[scheme]), delta)
    return rows


def override_settings(spec, scheme, settings: Sequence[str]) -> dict[str, str]:
    """Setting columns read from the overrides whose last dotted part names them (optim.lr -> lr)."""
    overrides = {**(spec.overrides or {}), **(scheme.overrides or {})}
    by_leaf = {key.rsplit(".", 1)[-1]: value for key, value in overrides.items()}
    return {c: str(by_leaf[c]) for c in settings if c in by_leaf}


def build_comparison(spec, ours: Mapping[str, OursRow], paper: pd.DataFrame | None, metrics: Sequence[str],
                     primary: str, unfinished: Mapping[str, str] | None = None, statistical: bool = True
                     ) -> Comparison:
    settings = setting_columns(paper, metrics)
    records, claims = [], []
    paper_base = _paper_primary(paper, spec, spec.baseline, primary) if spec.baseline else math.nan
    for scheme in spec.schemes:
        matched = select_paper_rows(paper, scheme.paper)
        first = matched.iloc[0].to_dict() if len(matched) else {}
        label = paper_label(first) if first else scheme.name
        values = {c: first.get(c) for c in settings} if first else override_settings(spec, scheme, settings)
        row = ours.get(scheme.name)
        if row is not None:
            records.append({"scheme": scheme.name, "source": "ours", "paper_label": label, "n": row.n, **values,
                            **{m: row.estimates[m].mean for m in metrics},
                            **{f"{m}_low": row.estimates[m].low for m in metrics},
                            **{f"{m}_high": row.estimates[m].high for m in metrics}})
        for _, prow in matched.iterrows():
            records.append({"scheme": scheme.name, "source": "paper", "paper_label": paper_label(prow),
                            "n": np.nan, **{c: prow[c] for c in settings},
                            **{m: _paper_number(prow, m) for m in metrics}})
        claims.append({"label": label, **_claim(scheme.name, values, row, first, primary, paper_base,
                                                spec.baseline, (unfinished or {}).get(scheme.name), statistical)})
    columns = ["scheme", "source", "paper_label", "n", *settings, *metrics,
               *[f"{m}_{end}" for m in metrics for end in ("low", "high")]]
    frame = pd.DataFrame.from_records(records, columns=columns)
    numeric = [c for c in columns[4 + len(settings):]]
    frame[numeric] = frame[numeric].astype(float)
    claim_columns = ["scheme", "label", *settings, "n", "paper", "ours", "ours_low", "ours_high", "delta_paper",
                     "delta_ours", "delta_low", "delta_high", "delta_n", "verdict", "status"]
    return Comparison(frame, pd.DataFrame.from_records(claims, columns=claim_columns), list(metrics), settings,
                      primary, spec.baseline, {m: paper_decimals(paper, m) for m in metrics},
                      dict(unfinished or {}), statistical)


def _paper_primary(paper: pd.DataFrame | None, spec, scheme_name: str, primary: str) -> float:
    scheme = next((s for s in spec.schemes if s.name == scheme_name), None)
    rows = select_paper_rows(paper, scheme.paper) if scheme is not None else pd.DataFrame()
    return _paper_number(rows.iloc[0], primary) if len(rows) else math.nan


def _claim(scheme: str, settings: Mapping[str, Any], row: OursRow | None, paper_row: Mapping[str, Any],
           primary: str, paper_base: float, baseline: str | None, why_missing: str | None,
           statistical: bool) -> dict[str, Any]:
    """One row of the claims table: the paper's Δ beside ours and the verdict."""
    paper_value = _paper_number(pd.Series(paper_row), primary) if paper_row else math.nan
    estimate = row.estimates[primary] if row is not None else stats.mean_ci([])
    delta = row.delta if row is not None else None
    is_baseline = baseline is not None and scheme == baseline
    paper_delta = paper_value - paper_base if baseline and not is_baseline else math.nan
    if row is None:
        verdict, status = "", why_missing or "no run"
    elif is_baseline:
        verdict, status = stats.BASELINE, "finished"
    elif not statistical or baseline is None:
        verdict, status = "", "finished"
    elif not paper_row:
        verdict, status = stats.NO_PAPER_ROW, "finished"
    else:
        verdict, status = stats.verdict(paper_delta, delta), "finished"
    return {"scheme": scheme, **settings, "n": row.n if row is not None else 0, "paper": paper_value,
            "ours": estimate.mean, "ours_low": estimate.low, "ours_high": estimate.high,
            "delta_paper": paper_delta, "delta_ours": delta.mean if delta else math.nan,
            "delta_low": delta.low if delta else math.nan, "delta_high": delta.high if delta else math.nan,
            "delta_n": delta.n if delta else 0, "verdict": verdict, "status": status}


def _paper_number(row: pd.Series, metric: str) -> float:
    """A paper cell as a number; a total absent from the paper is its encoder + decoder parts."""
    if metric in row:
        return float(pd.to_numeric(row[metric], errors="coerce"))
    parts = [pd.to_numeric(row.get(part, ""), errors="coerce") for part in TOTALS.get(metric, ())]
    return float(sum(parts)) if parts and not any(pd.isna(parts)) else np.nan


def lower_is_better(metric: str) -> bool:
    return METRICS[metric].lower_is_better if metric in METRICS else True


def best_mask(comparison: Comparison) -> pd.DataFrame:
    """True where an *ours* cell holds the best mean of its column among our rows that have an interval
    (ties: all).  The paper's rows are never bold; with one seed nothing is (no silent bold)."""
    frame = comparison.frame
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    ours = frame[(frame["source"] == "ours") & ((frame["n"] >= 2) | (not comparison.statistical))]
    for metric in comparison.metrics:
        values = ours[metric].dropna()
        if len(values) < 2:
            continue
        best = values.min() if lower_is_better(metric) else values.max()
        mask.loc[values.index, metric] = np.isclose(values, best, rtol=1e-9, atol=0.0)
    return mask


# ----------------------------------------------------------------------------------- complexity
TOTALS = {"param_m": ("param_enc_m", "param_dec_m"), "gflops": ("gflops_enc", "gflops_dec")}


def complexity_metrics(spec, paper: pd.DataFrame | None) -> tuple[list[str], str]:
    """The paper's complexity columns (its order); the primary metric is appended if the paper splits it."""
    if paper is not None:
        columns = [c for c in paper.columns if c in contracts.PAPER_COMPLEXITY]
    else:
        columns = ordered_metrics(spec.metrics.columns, None)
    primary = PAPER_COLUMN.get(spec.metrics.primary, spec.metrics.primary)
    return (columns if primary in columns else [*columns, primary]), primary
