"""One paper table, ours beside the paper's, with statistics and a verdict per claim; LaTeX / Markdown / CSV.

Two frames (:class:`Comparison`):

* ``claims``: one row per scheme -- settings, the paper's primary metric and its Δ to the paper's baseline,
  ours (mean and 95 % Student-t interval over seeds, ``n``), our Δ to our baseline *paired over the seeds both
  share* with its interval, and the verdict (:mod:`fadepth.report.stats`).  This is the table to paste.
* ``frame``: every metric, one row per (scheme, source) -- ``ours`` (mean, ``<metric>_low/_high``) or
  ``paper`` (the CSV row(s) the scheme's ``paper`` mapping selects).

The setting columns (``lr``, ``pb_dsr``, ...) come from the paper row, else from the scheme's overrides.
Bold marks only our rows (best mean among schemes with an interval); negative numbers carry a real minus.
LaTeX goes through :meth:`pandas.io.formats.style.Styler.to_latex` (booktabs); text cells are escaped or
transliterated by :func:`latex_text` (a warning when that loses characters).
"""
from __future__ import annotations

import math
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from fadepth import contracts
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


def _same(cell: str, value: Any) -> bool:
    """A CSV cell equals a YAML value: numerically when both are numbers, else as lower-case text."""
    if value is None:
        return cell == ""
    if isinstance(value, bool):
        return cell.lower() == str(value).lower()
    try:
        return math.isclose(float(cell), float(value), rel_tol=1e-9)
    except (TypeError, ValueError):
        return cell.strip().lower() == str(value).strip().lower()


def select_paper_rows(paper: pd.DataFrame | None, mapping: Mapping[str, Any] | None) -> pd.DataFrame:
    if paper is None or not mapping:
        return pd.DataFrame()
    unknown = [key for key in mapping if key not in paper.columns]
    if unknown:
        raise ReportError(f"paper mapping names column(s) {unknown} absent from the paper table; "
                          f"columns: {', '.join(paper.columns)}")
    keep = np.ones(len(paper), dtype=bool)
    for key, value in mapping.items():
        keep &= paper[key].map(lambda cell: _same(cell, value)).to_numpy(dtype=bool)
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
        return [c for c in self.settings if self.frame[c].map(_comparable).dropna().nunique() > 1]

    def verdict_counts(self) -> dict[str, int]:
        verdicts = self.claims["verdict"][self.claims["verdict"].isin(stats.VERDICTS)]
        return {v: int((verdicts == v).sum()) for v in stats.VERDICTS}


def _comparable(value: Any) -> Any:
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


def _lower_is_better(metric: str) -> bool:
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
        best = values.min() if _lower_is_better(metric) else values.max()
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


# ----------------------------------------------------------------------------------- text
MINUS = "\u2212"


class Style:
    """How numbers and text become cells: Markdown (Unicode) or LaTeX."""

    def __init__(self, latex: bool):
        self.latex = latex
        self.minus = "$-$" if latex else MINUS
        self.pm = r"$\pm$" if latex else "±"

    def number(self, value: float, decimals: int, signed: bool = False) -> str:
        if value is None or pd.isna(value):
            return ""
        text = f"{abs(value):.{decimals}f}"
        if value < 0 and float(text) != 0:
            return self.minus + text
        return ("+" + text) if signed and float(text) != 0 else text

    def text(self, value: Any) -> str:
        return latex_text(str(value)) if self.latex else _markdown_escape(str(value))

    def interval(self, low: float, high: float, decimals: int) -> str:
        return f"[{self.number(low, decimals, True)}, {self.number(high, decimals, True)}]"


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (ASCII only; see :func:`latex_text` for any text)."""
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                "<": r"\textless{}", ">": r"\textgreater{}", "|": r"\textbar{}"}
    return "".join(specials.get(ch, ch) for ch in text)


GREEK_OK = set("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau upsilon "
               "phi chi psi omega".split())
LATIN1_TEXT = {"±": r"$\pm$", "×": r"$\times$", "·": r"$\cdot$", "µ": r"$\mu$", "°": r"\textdegree{}",
               "−": "$-$", "–": "--", "—": "---", "≤": r"$\leq$", "≥": r"$\geq$", "→": r"$\to$",
               "²": r"\textsuperscript{2}", "³": r"\textsuperscript{3}"}


def latex_text(text: str, warn: bool = True) -> str:
    """Any text as pdflatex-safe LaTeX: specials escaped, Greek letters as math, other non-ASCII characters
    transliterated (accents dropped); characters with no ASCII form become '?' with a warning."""
    out, lost = [], []
    for ch in text:
        if ch.isascii():
            out.append(latex_escape(ch))
            continue
        if ch in LATIN1_TEXT:
            out.append(LATIN1_TEXT[ch])
            continue
        name = unicodedata.name(ch, "")
        if name.startswith("GREEK SMALL LETTER ") and name.split()[-1].lower() in GREEK_OK:
            out.append(f"$\\{name.split()[-1].lower()}$")
            continue
        ascii_form = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
        out.append(latex_escape(ascii_form) if ascii_form else "?")
        lost.append(ch)
    if lost and warn:
        warnings.warn(f"LaTeX: {text!r}: character(s) {''.join(dict.fromkeys(lost))!r} have no pdflatex form; "
                      "transliterated (accents dropped, '?' where none exists) in the .tex; the .md and .csv keep them", stacklevel=2)
    return "".join(out)


def _markdown_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*_|`[]<>" else ch for ch in text)


def metric_name(metric: str, latex: bool) -> str:
    info = METRICS.get(metric, MetricInfo(metric.replace("_", " "), metric, True))
    arrow = (r"$\downarrow$" if latex else "↓") if info.lower_is_better else (r"$\uparrow$" if latex else "↑")
    return f"{info.latex if latex else info.text} {arrow}"


def setting_header(column: str, latex: bool) -> str:
    return SETTING_HEADERS_LATEX.get(column, latex_escape(column)) if latex else column


# ----------------------------------------------------------------------------------- claims table
def claims_display(comparison: Comparison, style: Style) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paste-ready table as text cells, and where to bold (our best mean among schemes with an interval)."""
    claims = comparison.claims
    decimals = comparison.decimals.get(comparison.primary, 4)
    name = metric_name(comparison.primary, style.latex)
    delta_name = (r"$\Delta$ " if style.latex else "Δ ") + name.rsplit(" ", 1)[0]
    shown = pd.DataFrame(index=claims.index)
    shown["Scheme"] = claims["scheme"].map(style.text)
    for column in comparison.shown_settings:
        shown[setting_header(column, style.latex)] = claims[column].map(lambda v: "" if _comparable(v) is None
                                                                        else style.text(v))
    shown["Seeds" if comparison.statistical else "Counted"] = claims["n"].map(lambda n: str(int(n)) if n else "0")
    shown[f"Paper {name}"] = claims["paper"].map(lambda v: style.number(v, decimals))
    shown[f"Ours {name}"] = claims.apply(lambda r: _ours_cell(r, style, decimals, comparison.statistical), axis=1)
    if comparison.baseline:
        shown[f"{delta_name} paper"] = claims.apply(
            lambda r: "baseline" if r["verdict"] == stats.BASELINE else style.number(r["delta_paper"], decimals, True),
            axis=1)
        shown[f"{delta_name} ours"] = claims.apply(lambda r: _delta_cell(r, style, decimals), axis=1)
        if comparison.statistical:
            shown["Verdict"] = claims["verdict"]
    mask = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    eligible = claims[(claims["status"] == "finished") & ((claims["n"] >= 2) | (not comparison.statistical))]
    values = eligible["ours"].dropna()
    if len(values) >= 2:
        best = values.min() if _lower_is_better(comparison.primary) else values.max()
        mask.loc[values.index[np.isclose(values, best, rtol=1e-9, atol=0.0)], f"Ours {name}"] = True
    return shown, mask


def _ours_cell(row: pd.Series, style: Style, decimals: int, statistical: bool) -> str:
    if row["status"] != "finished":
        return row["status"].split(":")[0].lower() if row["status"] != "no run" else "no run"
    text = style.number(row["ours"], decimals)
    if not statistical:
        return text
    if row["n"] < 2:
        return f"{text} (1 seed: no interval)"
    return f"{text} {style.pm} {style.number((row['ours_high'] - row['ours_low']) / 2, decimals)}"


def _delta_cell(row: pd.Series, style: Style, decimals: int) -> str:
    if row["verdict"] == stats.BASELINE:
        return "baseline"
    if pd.isna(row["delta_ours"]):
        return ""
    text = style.number(row["delta_ours"], decimals, True)
    if pd.isna(row["delta_low"]):
        return f"{text} (1 seed: no interval)" if row["delta_n"] == 1 else text
    return f"{text} {style.interval(row['delta_low'], row['delta_high'], decimals)}"


# ----------------------------------------------------------------------------------- all metrics
def metrics_display(comparison: Comparison, style: Style) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric, ours (mean ± half-width of the 95 % interval) and the paper's rows; bold among ours."""
    frame = comparison.frame
    shown = pd.DataFrame(index=frame.index)
    shown["Scheme"] = frame["scheme"].map(style.text)
    shown["Source"] = frame["source"]
    for column in comparison.shown_settings:
        shown[setting_header(column, style.latex)] = frame[column].map(
            lambda v: "" if _comparable(v) is None else style.text(v))
    shown["Seeds" if comparison.statistical else "Counted"] = frame["n"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    names = {}
    for metric in comparison.metrics:
        decimals = comparison.decimals.get(metric, 4)
        names[metric] = metric_name(metric, style.latex)
        shown[names[metric]] = frame.apply(lambda r, m=metric, d=decimals: _metric_cell(r, m, d, style), axis=1)
    mask = best_mask(comparison)[comparison.metrics].rename(columns=names).reindex(columns=shown.columns,
                                                                                   fill_value=False)
    return shown, mask


def _metric_cell(row: pd.Series, metric: str, decimals: int, style: Style) -> str:
    text = style.number(row[metric], decimals)
    if text and row["source"] == "ours" and row["n"] >= 2 and not pd.isna(row.get(f"{metric}_low", np.nan)):
        text += f" {style.pm} {style.number((row[f'{metric}_high'] - row[f'{metric}_low']) / 2, decimals)}"
    return text


# ----------------------------------------------------------------------------------- summary
def summary_text(comparison: Comparison, style: Style, seeds: Sequence[int]) -> str:
    """The paragraph on top of a table: how many claims reproduced / contradicted / stayed unresolved."""
    if not comparison.statistical:
        return ("Complexity counts are deterministic (one count per architecture): no interval and no verdict; "
                "the paper's numbers beside ours.")
    if not comparison.baseline:
        return "This table has no baseline scheme: no Δ and no verdict."
    counts = comparison.verdict_counts()
    with_paper = sum(counts[v] for v in (stats.REPRODUCED, stats.CONTRADICTED, stats.UNRESOLVED, stats.NO_INTERVAL))
    metric = METRICS.get(comparison.primary, MetricInfo(comparison.primary, comparison.primary, True))
    delta = r"$\Delta$" if style.latex else "Δ"
    pct = r"\%" if style.latex else "%"
    parts = [f"Verdict on {with_paper} paper claim(s) ({delta} {metric.latex if style.latex else metric.text} "
             f"to the baseline {style.text(comparison.baseline)}, ours paired over shared seeds, 95 {pct} Student-t "
             f"interval): {counts[stats.REPRODUCED]} reproduced, {counts[stats.CONTRADICTED]} contradicted, "
             f"{counts[stats.UNRESOLVED]} not resolved (our interval includes 0)"]
    if counts[stats.NO_INTERVAL]:
        parts.append(f"{counts[stats.NO_INTERVAL]} with one seed only: no interval exists, so no verdict "
                     f"(run at least 2 seeds, e.g. --seeds 0,1,2)")
    if counts[stats.NO_PAPER_ROW]:
        parts.append(f"{counts[stats.NO_PAPER_ROW]} scheme(s) without a paper row")
    text = "; ".join(parts) + f". Seeds: {', '.join(map(str, seeds)) or 'none'}."
    if comparison.unfinished:
        text += (f" {len(comparison.unfinished)} of {len(comparison.claims)} schemes have no finished run "
                 "(listed under the table).")
    return text


def unfinished_text(comparison: Comparison, style: Style) -> str:
    """The line under a table naming every scheme that failed or never ran (empty when none)."""
    if not comparison.unfinished:
        return ""
    items = [f"{style.text(s)} ({style.text(why[:160])})" for s, why in comparison.unfinished.items()]
    return "Not in the table (no finished run): " + "; ".join(items) + "."


# ----------------------------------------------------------------------------------- writers
def _styler_latex(shown: pd.DataFrame, mask: pd.DataFrame, caption: str, label: str) -> str:
    text_columns = [c for c in shown.columns if c in ("Scheme", "Source", "Verdict")]
    styler = (shown.style.hide(axis="index")
              .format_index(lambda key: key, axis=1)
              .apply(lambda _: np.where(mask.to_numpy(), "textbf:--rwrap;", ""), axis=None))
    column_format = "".join("l" if c in text_columns else "r" for c in shown.columns)
    if len(shown) > 30:  # longer than a page: longtable breaks across pages
        return styler.to_latex(environment="longtable", hrules=True, caption=caption, label=label,
                               column_format=column_format)
    return styler.to_latex(hrules=True, caption=caption, label=label, position="!htbp",
                           position_float="centering", column_format=column_format)


def to_latex(comparison: Comparison, caption: str, label: str, seeds: Sequence[int]) -> str:
    style = Style(latex=True)
    claims, claims_mask = claims_display(comparison, style)
    full, full_mask = metrics_display(comparison, style)
    under = unfinished_text(comparison, style)
    parts = [r"\noindent " + summary_text(comparison, style, seeds) + "\n",
             _styler_latex(claims, claims_mask, caption, label)]
    if under:
        parts.append(r"\noindent " + under + "\n")
    parts.append(_styler_latex(full, full_mask, "All metrics of the same runs (ours: mean $\\pm$ half-width of the "
                               "95\\,\\% Student-t interval over seeds), the paper's rows beside them. Bold: best "
                               "among our rows with at least 2 seeds.", f"{label}-all"))
    return "\n".join(parts)


def _markdown(shown: pd.DataFrame, mask: pd.DataFrame) -> str:
    shown = shown.mask(mask & (shown != ""), "**" + shown + "**")
    return shown.to_markdown(index=False, disable_numparse=True)


def to_markdown(comparison: Comparison, caption: str, seeds: Sequence[int]) -> str:
    style = Style(latex=False)
    claims, claims_mask = claims_display(comparison, style)
    full, full_mask = metrics_display(comparison, style)
    under = unfinished_text(comparison, style)
    parts = [summary_text(comparison, style, seeds), "", _markdown(claims, claims_mask), "", f"*{caption}*"]
    if under:
        parts += ["", under]
    parts += ["", "All metrics (ours: mean ± half-width of the 95 % interval; bold: best among our rows with "
              "at least 2 seeds):", "", _markdown(full, full_mask)]
    return "\n".join(parts) + "\n"


def caption_text(spec, comparison: Comparison, profile: str | None, seeds: Sequence[int], what: str,
                 latex: bool = True) -> str:
    """Caption: the table, profile, seeds, what ours and the interval are, Δ and bold rules."""
    esc = latex_text if latex else _markdown_escape
    pm, delta, pct = (r"$\pm$", r"$\Delta$", r"\%") if latex else ("±", "Δ", "%")
    title = _title_without_number(spec.title or spec.name)
    parts = [f"{esc(title)}."]
    if profile:
        parts.append(f"Profile {esc(profile)}, seeds {', '.join(map(str, seeds)) or 'none'} (n per row).")
    parts.append(f"{what}; paper: FA-Depth's own numbers.")
    constant = [c for c in comparison.settings if c not in comparison.shown_settings]
    present = {c: comparison.frame[c][comparison.frame[c].map(_comparable).notna()] for c in constant}
    values = [f"{esc(c)}={esc(str(v.iloc[0]))}" for c, v in present.items() if len(v)]
    if values:
        parts.append("All rows: " + ", ".join(values) + ".")
    if comparison.statistical:
        parts.append(f"Ours: mean {pm} half-width of the 95 {pct} Student-t interval over seeds; one seed: no interval.")
    if comparison.baseline:
        parts.append(f"{delta}: scheme minus the baseline {esc(str(comparison.baseline))}"
                     + (f"; ours paired over the seeds both share, with its 95 {pct} t-interval in brackets. "
                        "Verdict: reproduced / contradicted when our interval excludes 0 with / against the "
                        "paper's sign, not resolved when it includes 0." if comparison.statistical else "."))
    parts.append("Bold: best among our rows" + (" with at least 2 seeds." if comparison.statistical else "."))
    return " ".join(parts)


def _title_without_number(title: str) -> str:
    """'Table V: drop rates' -> 'drop rates' (the number is LaTeX's, see document.table_number)."""
    import re

    match = re.match(r"^\s*Table\s+[IVXLC]+\b[^:]*:\s*(.+)$", title)
    return match.group(1)[0].upper() + match.group(1)[1:] if match else title


def to_csv(comparison: Comparison) -> str:
    return comparison.claims.to_csv(index=False)


def write_table_files(comparison: Comparison, out_dir: Path, name: str, caption_tex: str, caption_md: str,
                      seeds: Sequence[int]) -> list[Path]:
    """``name.tex`` (summary, table, unfinished schemes, all metrics), ``name.md``, ``name.csv`` (claims) and
    ``name_all.csv`` (every metric)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.tex", out_dir / f"{name}.md", out_dir / f"{name}.csv", out_dir / f"{name}_all.csv"]
    paths[0].write_text(to_latex(comparison, caption_tex, f"tab:{name}", seeds))
    paths[1].write_text(to_markdown(comparison, caption_md, seeds))
    paths[2].write_text(to_csv(comparison))
    paths[3].write_text(comparison.frame.to_csv(index=False))
    return paths
