"""One paper table, ours beside the paper's: a numeric comparison frame, then LaTeX / Markdown / CSV.

The comparison frame has one row per (scheme, source): ``source`` is ``ours`` (mean over the finished
seeds, ``<metric>_std``, ``n`` seeds) or ``paper`` (the CSV row(s) that the scheme's ``paper`` mapping
selects).  The setting columns (``lr``, ``pb_dsr``, ...) come from the paper row, else from the scheme's
overrides.  LaTeX goes through :meth:`pandas.io.formats.style.Styler.to_latex` (booktabs rules, cells
escaped by the Styler, best value per column and source in bold, ties included).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

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
PAPER_COLUMN = {"params_m": "param_m"}

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
@dataclass
class Comparison:
    frame: pd.DataFrame
    metrics: list[str]
    settings: list[str]
    primary: str
    baseline: str | None
    decimals: dict[str, int] = field(default_factory=dict)

    @property
    def delta_column(self) -> str | None:
        return f"delta_{self.primary}" if self.baseline and self.primary in self.frame else None

    @property
    def shown_settings(self) -> list[str]:
        """Setting columns whose value differs between rows (constant ones go to the caption)."""
        return [c for c in self.settings if self.frame[c].map(_comparable).dropna().nunique() > 1]


def _comparable(value: Any) -> Any:
    """A setting cell for comparison: a number when it is one ('1e-4' == 0.0001), None when empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).strip().lower()


@dataclass(frozen=True)
class OursRow:
    """Our numbers for one scheme: means and stds per metric and the number of seeds."""

    means: Mapping[str, float]
    stds: Mapping[str, float]
    n: int


def ours_from_summary(summary: RunSummary, metrics: Sequence[str]) -> dict[str, OursRow]:
    rows = {}
    for scheme, n in summary.counts.items():
        means = {PAPER_COLUMN.get(m, m): summary.means.at[scheme, m] for m in summary.means.columns}
        stds = {PAPER_COLUMN.get(m, m): summary.stds.at[scheme, m] for m in summary.stds.columns}
        rows[scheme] = OursRow({m: means.get(m, np.nan) for m in metrics},
                               {m: stds.get(m, np.nan) for m in metrics}, int(n))
    return rows


def override_settings(spec, scheme, settings: Sequence[str]) -> dict[str, str]:
    """Setting columns read from the overrides whose last dotted part names them (optim.lr -> lr)."""
    overrides = {**(spec.overrides or {}), **(scheme.overrides or {})}
    by_leaf = {key.rsplit(".", 1)[-1]: value for key, value in overrides.items()}
    return {c: str(by_leaf[c]) for c in settings if c in by_leaf}


def build_comparison(spec, ours: Mapping[str, OursRow], paper: pd.DataFrame | None, metrics: Sequence[str],
                     primary: str) -> Comparison:
    settings = setting_columns(paper, metrics)
    records = []
    for scheme in spec.schemes:
        matched = select_paper_rows(paper, scheme.paper)
        first = matched.iloc[0].to_dict() if len(matched) else {}
        label = paper_label(first) if first else scheme.name
        if scheme.name in ours:
            values = {c: first.get(c) for c in settings} if first else override_settings(spec, scheme, settings)
            row = ours[scheme.name]
            records.append({"scheme": scheme.name, "source": "ours", "paper_label": label, "n": row.n, **values,
                            **row.means, **{f"{m}_std": row.stds.get(m, np.nan) for m in metrics}})
        for _, prow in matched.iterrows():
            numbers = {m: _paper_number(prow, m) for m in metrics}
            records.append({"scheme": scheme.name, "source": "paper", "paper_label": paper_label(prow),
                            "n": np.nan, **{c: prow[c] for c in settings}, **numbers})
    columns = ["scheme", "source", "paper_label", "n", *settings, *metrics, *[f"{m}_std" for m in metrics]]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame[list(metrics)] = frame[list(metrics)].astype(float)
    comparison = Comparison(frame, list(metrics), settings, primary, spec.baseline,
                            {m: paper_decimals(paper, m) for m in metrics})
    add_delta(comparison)
    return comparison


def _paper_number(row: pd.Series, metric: str) -> float:
    """A paper cell as a number; a total absent from the paper is its encoder + decoder parts."""
    if metric in row:
        return float(pd.to_numeric(row[metric], errors="coerce"))
    parts = [pd.to_numeric(row.get(part, ""), errors="coerce") for part in TOTALS.get(metric, ())]
    return float(sum(parts)) if parts and not any(pd.isna(parts)) else np.nan


def add_delta(comparison: Comparison) -> None:
    """Δ of the primary metric against the baseline scheme, within each source."""
    column = comparison.delta_column
    if column is None:
        return
    frame = comparison.frame
    frame[column] = np.nan
    for source, rows in frame.groupby("source"):
        base = rows.loc[rows["scheme"] == comparison.baseline, comparison.primary]
        if len(base):
            frame.loc[rows.index, column] = rows[comparison.primary] - base.iloc[0]


def best_mask(comparison: Comparison) -> pd.DataFrame:
    """True where a cell holds the best value of its column among the rows of its source (ties: all)."""
    frame = comparison.frame
    mask = pd.DataFrame(False, index=frame.index, columns=frame.columns)
    for _, rows in frame.groupby("source"):
        for metric in comparison.metrics:
            values = rows[metric].dropna()
            if values.empty:
                continue
            lower = METRICS[metric].lower_is_better if metric in METRICS else True
            best = values.min() if lower else values.max()
            mask.loc[values.index, metric] = np.isclose(values, best, rtol=1e-9, atol=0.0)
    return mask


# ----------------------------------------------------------------------------------- complexity
# Paper column -> key of fadepth.complexity.complexity_rows().
COMPLEXITY_KEYS = {"param_m": "params", "gflops": "gflops", "fps": "fps", "param_enc_m": "params_enc",
                   "param_dec_m": "params_dec", "gflops_enc": "gflops_enc", "gflops_dec": "gflops_dec",
                   "mac_enc_m": "mac_enc_m", "mac_dec_m": "mac_dec_m"}
TOTALS = {"param_m": ("param_enc_m", "param_dec_m"), "gflops": ("gflops_enc", "gflops_dec")}


def complexity_metrics(spec, paper: pd.DataFrame | None) -> tuple[list[str], str]:
    """The paper's complexity columns (its order); the primary metric is appended if the paper splits it."""
    if paper is not None:
        columns = [c for c in paper.columns if c in COMPLEXITY_KEYS]
    else:
        columns = ordered_metrics(spec.metrics.columns, None)
    primary = PAPER_COLUMN.get(spec.metrics.primary, spec.metrics.primary)
    return (columns if primary in columns else [*columns, primary]), primary


def _in_paper_units(column: str, value: Any) -> float:
    """Params in M as the paper prints them (complexity_rows counts parameters; GFLOPs and MAC (M) match)."""
    value = float(value) if value is not None else np.nan
    return value / 1e6 if column.startswith("param") else value


def ours_from_complexity(rows: Mapping[str, Mapping[str, Any]], metrics: Sequence[str]) -> dict[str, OursRow]:
    """``{scheme: complexity_rows() dict}`` -> one-'seed' rows in the paper's columns and units."""
    ours = {}
    for scheme, row in rows.items():
        means = {m: _in_paper_units(m, row.get(COMPLEXITY_KEYS.get(m, m))) for m in metrics}
        ours[scheme] = OursRow(means, {m: np.nan for m in metrics}, 1)
    return ours


# ----------------------------------------------------------------------------------- rendering
def _number(value: float, decimals: int, signed: bool = False) -> str:
    if value is None or pd.isna(value):
        return ""
    return f"{value:+.{decimals}f}" if signed else f"{value:.{decimals}f}"


def _metric_cell(row: pd.Series, metric: str, decimals: int, plus_minus: str) -> str:
    text = _number(row[metric], decimals)
    std = row.get(f"{metric}_std", np.nan)
    if text and row["n"] > 1 and not pd.isna(std):
        text += f" {plus_minus} {_number(std, decimals)}"
    return text


def display_columns(comparison: Comparison) -> list[str]:
    delta = [comparison.delta_column] if comparison.delta_column else []
    return ["scheme", "source", "n", *comparison.shown_settings, *comparison.metrics, *delta]


def display_frame(comparison: Comparison, plus_minus: str) -> pd.DataFrame:
    """Every cell as text: mean, or mean ± std where more than one seed; Δ with its sign."""
    frame = comparison.frame
    shown = pd.DataFrame(index=frame.index)
    shown["scheme"], shown["source"] = frame["scheme"], frame["source"]
    shown["n"] = frame["n"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    for column in comparison.shown_settings:
        shown[column] = frame[column].fillna("").astype(str)
    for metric in comparison.metrics:
        decimals = comparison.decimals.get(metric, 4)
        shown[metric] = frame.apply(_metric_cell, axis=1, args=(metric, decimals, plus_minus))
    if comparison.delta_column:
        decimals = comparison.decimals.get(comparison.primary, 4)
        shown[comparison.delta_column] = frame[comparison.delta_column].map(lambda v: _number(v, decimals, True))
    return shown[display_columns(comparison)]


def headers(comparison: Comparison, latex: bool) -> dict[str, str]:
    down, up = (r"$\downarrow$", r"$\uparrow$") if latex else ("↓", "↑")
    names = {key: pair[0 if latex else 1] for key, pair in FIXED_HEADERS.items()}
    for column in comparison.shown_settings:
        names[column] = SETTING_HEADERS_LATEX.get(column, column.replace("_", " ")) if latex else column
    for metric in comparison.metrics:
        info = METRICS.get(metric, MetricInfo(metric.replace("_", " "), metric, True))
        names[metric] = f"{info.latex if latex else info.text} {down if info.lower_is_better else up}"
    if comparison.delta_column:
        primary = METRICS.get(comparison.primary, MetricInfo(comparison.primary, comparison.primary, True))
        names[comparison.delta_column] = rf"$\Delta$ {primary.latex}" if latex else f"Δ {primary.text}"
    return names


def latex_escape(text: str) -> str:
    """Escape free text for captions (table cells are escaped by the Styler)."""
    specials = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
    return "".join(specials.get(ch, ch) for ch in text)


def to_latex(comparison: Comparison, caption: str, label: str) -> str:
    shown = display_frame(comparison, r"$\pm$")
    mask = best_mask(comparison).reindex(columns=shown.columns, fill_value=False)
    text_columns = ["scheme", "source", *comparison.shown_settings]
    names = headers(comparison, latex=True)
    styler = (shown.style.hide(axis="index")
              .format(escape="latex", subset=text_columns)
              .format_index(lambda key: names[key], axis=1)
              .apply(lambda _: np.where(mask.to_numpy(), "textbf:--rwrap;", ""), axis=None))
    column_format = "".join("l" if c in text_columns else "r" for c in shown.columns)
    if len(shown) > 30:  # longer than a page: longtable breaks across pages
        return styler.to_latex(environment="longtable", hrules=True, caption=caption, label=label,
                               column_format=column_format)
    return styler.to_latex(hrules=True, caption=caption, label=label, position="htbp",
                           position_float="centering", column_format=column_format)


def _markdown_escape(text: str) -> str:
    return "".join("\\" + ch if ch in "\\*_|`[]<>" else ch for ch in text)


def to_markdown(comparison: Comparison) -> str:
    shown = display_frame(comparison, "±")
    mask = best_mask(comparison).reindex(columns=shown.columns, fill_value=False)
    for column in ["scheme", "source", *comparison.shown_settings]:
        shown[column] = shown[column].map(_markdown_escape)
    shown = shown.mask(mask & (shown != ""), "**" + shown + "**")
    names = headers(comparison, latex=False)
    return shown.rename(columns=names).to_markdown(index=False, disable_numparse=True) + "\n"


def to_csv(comparison: Comparison) -> str:
    return comparison.frame.to_csv(index=False)


def caption_text(spec, comparison: Comparison, profile: str | None, what: str) -> str:
    """LaTeX caption: the spec's title, what 'ours' means, the constant settings, bold and Δ rules."""
    parts = [latex_escape(spec.title or spec.name) + "."]
    parts.append(f"{what}; the paper's rows (source paper) beside ours.")
    constant = [c for c in comparison.settings if c not in comparison.shown_settings]
    present = {c: comparison.frame[c][comparison.frame[c].map(_comparable).notna()] for c in constant}
    values = [f"{latex_escape(c)}={latex_escape(str(v.iloc[0]))}" for c, v in present.items() if len(v)]
    if values:
        parts.append("All rows: " + ", ".join(values) + ".")
    parts.append("Bold: best per column within each source.")
    if comparison.delta_column:
        parts.append(f"$\\Delta$: {latex_escape(comparison.primary)} minus that of the baseline "
                     f"{latex_escape(str(comparison.baseline))} (same source).")
    if profile:
        parts.append(f"Profile: {latex_escape(profile)}.")
    return " ".join(parts)


def write_table_files(comparison: Comparison, out_dir: Path, name: str, caption: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.tex", out_dir / f"{name}.md", out_dir / f"{name}.csv"]
    paths[0].write_text(to_latex(comparison, caption, f"tab:{name}"))
    paths[1].write_text(to_markdown(comparison))
    paths[2].write_text(to_csv(comparison))
    return paths
