"""A :class:`~fadepth.report.tables.Comparison` as text: the verdict summary, the paste-ready claims table,
the all-metrics table, the caption and the list of schemes without a finished run, in Markdown and LaTeX.

Numbers carry a real minus sign (U+2212 in Markdown, ``$-$`` in LaTeX); bold marks only our rows.  LaTeX goes
through :meth:`pandas.io.formats.style.Styler.to_latex` (booktabs); text cells are escaped or transliterated
by :func:`fadepth.report.text.latex_text` (a warning when that loses characters, which the build prints).
Bold marks only what a paired Δ resolves (:func:`resolved_best`); the verdict column states the claim it judges.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

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
from fadepth.report.text import Style, latex_escape, latex_text, markdown_escape


def metric_name(metric: str, latex: bool) -> str:
    info = METRICS.get(metric, MetricInfo(metric.replace("_", " "), metric, True))
    arrow = (r"$\downarrow$" if latex else "↓") if info.lower_is_better else (r"$\uparrow$" if latex else "↑")
    return f"{info.latex if latex else info.text} {arrow}"


def setting_header(column: str, latex: bool) -> str:
    return SETTING_HEADERS_LATEX.get(column, latex_escape(column)) if latex else column


# ----------------------------------------------------------------------------------- claims table
def claims_display(comparison: Comparison, style: Style) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paste-ready table as text cells, and where to bold (:func:`resolved_best`, resolved Δs)."""
    claims = comparison.claims
    decimals = comparison.decimals.get(comparison.primary, 4)
    name = metric_name(comparison.primary, style.latex)
    delta_name = f"{style.delta} " + name.rsplit(" ", 1)[0]
    shown = pd.DataFrame(index=claims.index)
    shown["Scheme"] = claims["scheme"].map(style.text)
    for column in comparison.shown_settings:
        shown[setting_header(column, style.latex)] = claims[column].map(lambda v: "" if comparable(v) is None
                                                                        else style.setting(v))
    shown["Seeds" if comparison.statistical else "Counted"] = claims["n"].map(lambda n: str(int(n)) if n else "0")
    shown[f"Paper {name}"] = claims["paper"].map(lambda v: style.number(v, decimals))
    shown[f"Ours {name}"] = claims.apply(lambda r: _ours_cell(r, style, decimals, comparison.statistical), axis=1)
    if comparison.baseline:
        shown[f"{delta_name} paper"] = claims.apply(
            lambda r: "baseline" if r["verdict"] == stats.BASELINE else style.number(r["delta_paper"], decimals, True),
            axis=1)
        shown[f"{delta_name} ours"] = claims.apply(lambda r: _delta_cell(r, style, decimals), axis=1)
        if comparison.statistical:
            shown["Verdict"] = claims.apply(lambda r: verdict_cell(r, comparison, style), axis=1)
    mask = pd.DataFrame(False, index=shown.index, columns=shown.columns)
    if not comparison.statistical:  # deterministic counts: the best is simply the best
        eligible = claims[claims["status"] == "finished"]["ours"].dropna()
        if len(eligible) >= 2:
            best = eligible.min() if lower_is_better(comparison.primary) else eligible.max()
            mask.loc[eligible.index[np.isclose(eligible, best, rtol=1e-9, atol=0.0)], f"Ours {name}"] = True
        return shown, mask
    mask.loc[resolved_best(comparison), f"Ours {name}"] = True
    if comparison.baseline:
        mask[f"{delta_name} ours"] = claims.apply(lambda r: resolved_sign(r) != 0, axis=1)
    return shown, mask


def resolved_sign(row: pd.Series) -> int:
    """+1 / -1 when the paired Δ's interval lies above / below 0, 0 when it includes 0 or does not exist."""
    low, high = row.get("delta_low", np.nan), row.get("delta_high", np.nan)
    if pd.isna(low) or pd.isna(high):
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def resolved_best(comparison: Comparison) -> list:
    """The claims rows to bold: our best mean (at least 2 seeds) only when the paired Δ resolves it -- it beats
    the baseline with an interval that excludes 0, or it is the baseline and every other paired Δ is resolved
    against its scheme.  Nothing when it is not resolved (no bold 'best' on noise)."""
    claims = comparison.claims
    eligible = claims[(claims["status"] == "finished") & (claims["n"] >= 2)]["ours"].dropna()
    if len(eligible) < 2 or not comparison.baseline:
        return []
    lower = lower_is_better(comparison.primary)
    best = eligible.min() if lower else eligible.max()
    better = -1 if lower else 1  # the sign of a Δ (scheme - baseline) that favours the scheme
    rows = []
    for index in eligible.index[np.isclose(eligible, best, rtol=1e-9, atol=0.0)]:
        row = claims.loc[index]
        if row["verdict"] == stats.BASELINE:
            others = claims[(claims.index != index) & claims["delta_ours"].notna()]
            ok = len(others) > 0 and all(resolved_sign(r) == -better for _, r in others.iterrows())
        else:
            ok = resolved_sign(row) == better
        if ok:
            rows.append(index)
    return rows


def verdict_cell(row: pd.Series, comparison: Comparison, style: Style) -> str:
    """The claim the verdict judges, then the verdict: 'pb_dsr 0.9 beats 0.0 · not resolved'.  The claim is the
    paper's: the sign of its Δ to the baseline; the schemes are named by the settings that tell them apart."""
    verdict = row["verdict"]
    if verdict in ("", stats.BASELINE):
        return verdict
    base = comparison.claims[comparison.claims["scheme"] == comparison.baseline]
    if base.empty:
        return style.text(verdict)
    base = base.iloc[0]
    differ = [c for c in comparison.shown_settings if comparable(row[c]) is not None
              and comparable(base[c]) is not None and comparable(row[c]) != comparable(base[c])]
    name = lambda c: setting_header(c, style.latex)  # noqa: E731
    if len(differ) == 1:
        ours, theirs = f"{name(differ[0])} {style.setting(row[differ[0]])}", style.setting(base[differ[0]])
    elif differ:
        ours = ", ".join(f"{name(c)} {style.setting(row[c])}" for c in differ)
        theirs = ", ".join(f"{name(c)} {style.setting(base[c])}" for c in differ)
    else:
        ours, theirs = style.text(row["scheme"]), style.text(base["scheme"])
    paper = row["delta_paper"]
    if pd.isna(paper):
        verb = "vs"
    elif paper == 0:
        verb = "ties"
    else:
        verb = "beats" if (paper < 0) == lower_is_better(comparison.primary) else "trails"
    dot = r" $\cdot$ " if style.latex else " · "
    return f"{ours} {verb} {theirs}{dot}{style.text(verdict)}"


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
            lambda v: "" if comparable(v) is None else style.setting(v))
    shown["Seeds" if comparison.statistical else "Counted"] = frame["n"].map(lambda n: "" if pd.isna(n) else str(int(n)))
    names = {}
    for metric in comparison.metrics:
        decimals = comparison.decimals.get(metric, 4)
        names[metric] = metric_name(metric, style.latex)
        shown[names[metric]] = frame.apply(lambda r, m=metric, d=decimals: _metric_cell(r, m, d, style), axis=1)
    if not comparison.statistical:
        mask = best_mask(comparison)[comparison.metrics].rename(columns=names).reindex(columns=shown.columns,
                                                                                       fill_value=False)
        return shown, mask
    mask = pd.DataFrame(False, index=shown.index, columns=shown.columns)  # bold: as in the claims table, only
    bold = set(comparison.claims.loc[resolved_best(comparison), "scheme"])  # what a paired Δ resolves
    if comparison.primary in names:
        mask[names[comparison.primary]] = (frame["source"] == "ours") & frame["scheme"].isin(bold)
    return shown, mask


def bold_rule(comparison: Comparison) -> str:
    """What bold means, for the captions."""
    if not comparison.statistical:
        return "Bold: best among our rows."
    return ("Bold: our best scheme only where its paired Δ to the baseline is resolved (its interval excludes 0), "
            "and every resolved Δ; nothing bold is nothing resolved.")


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
    if not comparison.baseline:  # no baseline: no Δ columns either (claims_display)
        return f"This table has no baseline scheme: no {style.delta} and no verdict."
    counts = comparison.verdict_counts()
    with_paper = sum(counts[v] for v in (stats.REPRODUCED, stats.CONTRADICTED, stats.UNRESOLVED, stats.NO_INTERVAL))
    metric = METRICS.get(comparison.primary, MetricInfo(comparison.primary, comparison.primary, True))
    delta = style.delta
    pct = r"\%" if style.latex else "%"
    parts = [f"Verdict on {with_paper} paper claim(s) ({delta} {metric.latex if style.latex else metric.text} "
             f"to the baseline {style.text(comparison.baseline)}, ours paired over shared seeds, 95 {pct} Student-t "
             f"interval): {counts[stats.REPRODUCED]} reproduced, {counts[stats.CONTRADICTED]} contradicted, "
             f"{counts[stats.UNRESOLVED]} not resolved (our interval includes 0)"]
    if counts[stats.NO_INTERVAL]:
        flag = r"\texttt{-{}-seeds 0,1,2}" if style.latex else "`--seeds 0,1,2`"
        parts.append(f"{counts[stats.NO_INTERVAL]} with one seed only: no interval exists, so no verdict "
                     f"(run at least 2 seeds, e.g. {flag})")
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
    # the verdict summary: the largest text after the section title (\large; captions and tables are smaller)
    parts = [r"\noindent{\large " + summary_text(comparison, style, seeds) + "\\par}\n\\medskip\n",
             _styler_latex(claims, claims_mask, caption, label)]
    if under:
        parts.append(r"\noindent " + under + "\n")
    parts.append(_styler_latex(full, full_mask, "All metrics of the same runs (ours: mean $\\pm$ half-width of the "
                               "95\\,\\% Student-t interval over seeds), the paper's rows beside them. "
                               + latex_text(bold_rule(comparison)), f"{label}-all"))
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
    parts += ["", f"All metrics (ours: mean ± half-width of the 95 % interval). {bold_rule(comparison)}", "",
              _markdown(full, full_mask)]
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
    esc = latex_text if latex else markdown_escape
    style = Style(latex)
    pm, delta, pct = style.pm, style.delta, (r"\%" if latex else "%")
    title = _title_without_number(spec.title or spec.name)
    parts = [f"{esc(title)}."]
    if profile:
        parts.append(f"Profile {esc(profile)}, seeds {', '.join(map(str, seeds)) or 'none'} (n per row).")
    parts.append(f"{what}; paper: FA-Depth's own numbers.")
    constant = [c for c in comparison.settings if c not in comparison.shown_settings]
    present = {c: comparison.frame[c][comparison.frame[c].map(comparable).notna()] for c in constant}
    values = [f"{esc(c)}={style.setting(v.iloc[0])}" for c, v in present.items() if len(v)]
    if values:
        parts.append("All rows: " + ", ".join(values) + ".")
    if comparison.statistical:
        parts.append(f"Ours: mean {pm} half-width of the 95 {pct} Student-t interval over seeds; one seed: no interval.")
    if comparison.baseline:
        parts.append(f"{delta}: scheme minus the baseline {esc(str(comparison.baseline))}"
                     + (f"; ours paired over the seeds both share, with its 95 {pct} t-interval in brackets. "
                        "Verdict: reproduced / contradicted when our interval excludes 0 with / against the "
                        "paper's sign, not resolved when it includes 0." if comparison.statistical else "."))
    parts.append(esc(bold_rule(comparison)))
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
