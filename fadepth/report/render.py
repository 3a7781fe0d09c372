"""A :class:`~fadepth.report.tables.Comparison` as text: the verdict summary, the paste-ready claims table,
the all-metrics table, the caption and the list of schemes without a finished run, in Markdown and LaTeX.

Numbers carry a real minus sign (U+2212 in Markdown, ``$-$`` in LaTeX); bold marks only our rows.  LaTeX goes
through :meth:`pandas.io.formats.style.Styler.to_latex` (booktabs); text cells are escaped or transliterated
by :func:`latex_text` (a warning when that loses characters, which the build prints).
"""
from __future__ import annotations

import re
import unicodedata
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from fadepth.report import stats
from fadepth.report.tables import (
    METRICS,
    SETTING_HEADERS_LATEX,
    Comparison,
    MetricInfo,
    best_mask,
    comparable,
    lower_is_better,
)

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
        shown[setting_header(column, style.latex)] = claims[column].map(lambda v: "" if comparable(v) is None
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
        best = values.min() if lower_is_better(comparison.primary) else values.max()
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
            lambda v: "" if comparable(v) is None else style.text(v))
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


def claims_markdown(comparison: Comparison, caption: str, seeds: Sequence[int]) -> str:
    """The verdict summary and the claims table (no all-metrics table), in Markdown: the MLflow experiment's
    description (:func:`fadepth.report.experiment_note`)."""
    style = Style(latex=False)
    claims, claims_mask = claims_display(comparison, style)
    parts = [summary_text(comparison, style, seeds), "", _markdown(claims, claims_mask), "", f"*{caption}*"]
    under = unfinished_text(comparison, style)
    return "\n".join(parts + (["", under] if under else [])) + "\n"


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
    present = {c: comparison.frame[c][comparison.frame[c].map(comparable).notna()] for c in constant}
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
