"""Figures for the ablation tables: the Δ to the baseline, paper and ours on one axis; PNG + PDF under ``figures/``.

Absolute numbers of a small reproduction and of the paper can differ by a factor (e.g. AbsRel 0.52 vs 0.12),
which flattens both curves on a shared y axis; the claims are about differences, so every figure plots
Δ = scheme minus baseline of the table's primary metric (:class:`~fadepth.report.tables.Comparison`'s
``claims``): the paper's Δ (dashed, crosses) and ours (solid, circles) with its 95 % paired t-interval as
error bars.  The baseline is Δ = 0 by definition.  Which figures a spec gets is its ``figures`` field
(names in :data:`fadepth.contracts.FIGURES`).  A figure whose data is missing is skipped with a message
(:class:`SkipFigure`), never drawn empty.  Fonts: Computer Modern at 9 pt, like the LaTeX document; the
figures are drawn at the width they are printed (0.8 of the landscape text width), so sizes match.
Matplotlib's object API is used (``Figure``, no pyplot), so no GUI backend is touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from fadepth import contracts
from fadepth.report.tables import METRICS, PAPER_DIR, Comparison
from fadepth.report.text import latex_text

PRINT_WIDTH_IN = 0.8 * (29.7 - 2) / 2.54  # 0.8 \linewidth of a landscape A4 page with 1 cm margins
DOCUMENT_FONT = {"font.family": "serif", "font.serif": ["cmr10", "DejaVu Serif"], "mathtext.fontset": "cm",
                 "axes.formatter.use_mathtext": True, "axes.unicode_minus": True, "font.size": 9,
                 "axes.labelsize": 9, "axes.titlesize": 9, "xtick.labelsize": 8, "ytick.labelsize": 8,
                 "legend.fontsize": 8}
sns.set_theme(style="whitegrid", context="paper", rc=DOCUMENT_FONT)
SOURCE_MARKERS = {"ours": "o", "paper": "X"}
AXIS_LABELS = {"pb_dsr": r"$pb_{dsr}$", "pb_sd": r"$pb_{sd}$", "pb_t": r"$pb_t$", "r1": r"$r_1$", "r2": r"$r_2$"}


class SkipFigure(Exception):
    """The data a figure needs is missing; the message says what."""


@dataclass(frozen=True)
class FigureFile:
    name: str
    caption: str
    png: Path
    pdf: Path


def _metric_text(metric: str) -> str:
    info = METRICS.get(metric)
    return info.text if info is not None else metric


def _delta_label(comparison: Comparison) -> str:
    better = "lower" if contracts.lower_is_better(comparison.primary) else "higher"
    return f"$\\Delta$ {_metric_text(comparison.primary)} to {comparison.baseline} ({better} is better)"


def delta_frame(comparison: Comparison) -> pd.DataFrame:
    """The claims with numeric settings, and Δ = 0 for the baseline (paper and ours)."""
    if not comparison.baseline:
        raise SkipFigure("the spec has no baseline: no Δ to plot")
    data = comparison.claims.copy()
    for column in comparison.settings:
        data[column] = pd.to_numeric(data[column], errors="coerce")
    base = data["scheme"] == comparison.baseline
    data.loc[base & data["paper"].notna(), "delta_paper"] = 0.0
    data.loc[base & data["ours"].notna(), ["delta_ours"]] = 0.0
    return data


def one_factor(frame: pd.DataFrame, factor: str, reference: Mapping[str, float]) -> pd.DataFrame:
    """Rows where only ``factor`` varies: every other reference key is at its value (or not set)."""
    keep = frame[factor].notna()
    for key, value in reference.items():
        if key != factor:
            keep &= frame[key].isna() | np.isclose(frame[key].fillna(np.inf), value)
    return frame[keep].sort_values(factor)


def _delta_lines(ax, data: pd.DataFrame, x: str, label: str = "", color=None) -> bool:
    """Paper Δ (dashed) and ours (solid, paired 95 % CI bars) against a numeric ``x``; False if ours is empty."""
    paper = data.dropna(subset=[x, "delta_paper"])
    ours = data.dropna(subset=[x, "delta_ours"])
    line = None
    if len(ours):
        err = np.vstack([ours["delta_ours"] - ours["delta_low"], ours["delta_high"] - ours["delta_ours"]])
        line = ax.errorbar(ours[x], ours["delta_ours"], yerr=np.nan_to_num(err), fmt="-o", ms=4, capsize=3,
                           lw=1.2, color=color, label=f"{label}ours".strip())
    if len(paper):
        ax.plot(paper[x], paper["delta_paper"], "--X", ms=5, lw=1,
                color=line[0].get_color() if line else color, label=f"{label}paper".strip())
    ax.axhline(0.0, color="0.3", lw=0.8)
    return bool(len(ours))


def _require_ours(data: pd.DataFrame, what: str) -> None:
    if data.empty:
        raise SkipFigure(f"no rows for {what}")
    if not data["delta_ours"].notna().any():
        raise SkipFigure(f"none of our finished schemes belongs to {what}")


def _figure(n_panels: int, height: float = 3.0) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(PRINT_WIDTH_IN, height), layout="constrained")
    return fig, np.atleast_1d(fig.subplots(1, n_panels, sharey=True))


def _caption(comparison: Comparison, what: str) -> str:
    metric = METRICS[comparison.primary].latex if comparison.primary in METRICS else comparison.primary
    return (f"{what}: $\\Delta$ {metric} to the baseline {latex_text(str(comparison.baseline))} (paper: dashed; "
            "ours: solid, bars = 95\\,\\% paired Student-t interval over seeds; none with one seed).")


# ----------------------------------------------------------------------------------- figures
def lr_robustness(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table IV: Δ against the learning rate, one line per architecture."""
    data = delta_frame(comparison).dropna(subset=["lr"])
    _require_ours(data, "the LR sweep")
    fig, (ax,) = _figure(1)
    for label, rows in data.groupby("label", sort=False):
        _delta_lines(ax, rows.sort_values("lr"), "lr", label=f"{label} ")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel(_delta_label(comparison))
    ax.legend(ncol=2)
    return fig, _caption(comparison, "Table IV, learning rate per architecture")


def drop_rates(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table V: Δ against pb_dsr (pb_sd = 0) and against pb_sd (pb_dsr = 0.9), scheduled rates."""
    data = delta_frame(comparison)
    if "constant_rate" in comparison.claims:
        data = data[comparison.claims["constant_rate"].astype(str).str.lower() != "true"]
    reference = {"pb_dsr": 0.9, "pb_sd": 0.0}
    fig, axes = _figure(2)
    for ax, factor in zip(axes, reference):
        panel = one_factor(data, factor, reference)
        _require_ours(panel, f"the {factor} curve")
        _delta_lines(ax, panel, factor)
        ax.set_xlabel(AXIS_LABELS.get(factor, factor))
    axes[0].set_ylabel(_delta_label(comparison))
    axes[0].legend()
    return fig, _caption(comparison, "Table V, drop rates $pb_{dsr}$ ($pb_{sd}=0$) and $pb_{sd}$ ($pb_{dsr}=0.9$), "
                                     "scheduled rates")


def etm_drop(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table VII: Δ against pb_t, r1 and r2, one factor at a time around (0.1, 0.1, 1)."""
    data = delta_frame(comparison)
    reference = {"pb_t": 0.1, "r1": 0.1, "r2": 1.0}
    fig, axes = _figure(3)
    drawn = 0
    for ax, factor in zip(axes, reference):
        panel = one_factor(data, factor, reference)
        if not _delta_lines(ax, panel, factor):
            ax.set_title(f"{factor}: no runs of ours")
        else:
            drawn += 1
        ax.set_xlabel(AXIS_LABELS.get(factor, factor))
    if not drawn:
        raise SkipFigure("none of our finished schemes varies pb_t, r1 or r2")
    axes[0].set_ylabel(_delta_label(comparison))
    axes[0].legend()
    return fig, _caption(comparison, "Table VII, ETM drop settings $pb_t$, $r_1$, $r_2$ one at a time around "
                                     "$(0.1, 0.1, 1)$")


def pyramid_weights(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table X: Δ per weight scheme, one panel per pyramid level; paper and ours side by side."""
    data = delta_frame(comparison)
    if "i" not in comparison.claims:
        raise SkipFigure("no level column 'i'")
    data["i"] = comparison.claims["i"]
    _require_ours(data, "the weight schemes")
    levels = [lvl for lvl in dict.fromkeys(data["i"].dropna()) if str(lvl)]
    fig, axes = _figure(len(levels), height=3.4)
    for ax, level in zip(axes, levels):
        rows = data[data["i"] == level].reset_index(drop=True)
        y = np.arange(len(rows))
        ours = rows["delta_ours"]
        err = np.nan_to_num(np.vstack([ours - rows["delta_low"], rows["delta_high"] - ours]))
        ax.errorbar(ours, y - 0.12, xerr=err, fmt="o", ms=4, capsize=3, label="ours")
        ax.plot(rows["delta_paper"], y + 0.12, "X", ms=5, label="paper")
        ax.axvline(0.0, color="0.3", lw=0.8)
        ax.set_yticks(y, rows["scheme"])
        ax.set_title(f"i = {level}")
        ax.set_xlabel(_delta_label(comparison))
    axes[0].legend()
    return fig, _caption(comparison, "Table X, pyramid weight schemes per level")


def paper_speed_accuracy(paper_dir: Path = PAPER_DIR) -> pd.DataFrame:
    """Table I (complexity) joined with Table II (KITTI Eigen, median scaling; 128x416 rows first)."""
    complexity = pd.read_csv(paper_dir / "table01_complexity.csv", dtype=str, keep_default_na=False)
    kitti = pd.read_csv(paper_dir / "table02_kitti.csv", dtype=str, keep_default_na=False)
    kitti = kitti[(kitti["test_set"] == "eigen") & (kitti["aligned"] == "median")]
    kitti = kitti.assign(low_res=kitti["resolution"] != "128x416").sort_values("low_res", kind="stable")
    kitti = kitti.drop_duplicates(subset=["method", "ref"])
    joined = complexity.merge(kitti[["method", "ref", "abs_rel"]], on=["method", "ref"])
    joined["label"] = joined["method"] + joined["ref"].map(lambda r: f" [{r}]" if r else "")
    joined = joined.rename(columns={"param_m": "params"})
    for column in ("gflops", "fps", "abs_rel"):
        joined[column] = pd.to_numeric(joined[column], errors="coerce")
    return joined.assign(source="paper")[["label", "source", "gflops", "fps", "abs_rel"]]


def speed_accuracy(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table I + II: AbsRel against GFLOPs and against FPS, paper methods and our measured models."""
    ours = context.get("ours_speed_accuracy")
    if ours is None or ours.empty:
        raise SkipFigure("no architecture of ours has both a complexity count and a finished training run")
    data = pd.concat([paper_speed_accuracy(), ours.assign(source="ours")], ignore_index=True)
    fig, axes = _figure(2, height=3.4)
    for ax, x in zip(axes, ("gflops", "fps")):
        points = data.dropna(subset=[x, "abs_rel"])
        sns.scatterplot(data=points, x=x, y="abs_rel", hue="source", style="source", markers=SOURCE_MARKERS,
                        s=60, ax=ax)
        for _, point in points.iterrows():
            ax.annotate(point["label"], (point[x], point["abs_rel"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")
        if x == "gflops":  # GFLOPs span two decades; FPS stays linear
            ax.set_xscale("log")
        ax.set_xlabel("GFLOPs" if x == "gflops" else "FPS")
        ax.set_ylabel("AbsRel (lower is better)")
    profile = context.get("accuracy_profile", "?")
    return fig, ("Speed against accuracy: paper = Table I (RTX 4090, batch 1, 128x416) with Table II's "
                 f"Eigen AbsRel; ours = measured complexity with our best finished AbsRel (profile {profile}).")


FIGURES: dict[str, Callable[[Comparison, Mapping[str, Any]], tuple[Figure, str]]] = {
    "lr_robustness": lr_robustness, "drop_rates": drop_rates, "etm_drop": etm_drop,
    "pyramid_weights": pyramid_weights, "speed_accuracy": speed_accuracy,
}
assert tuple(FIGURES) == contracts.FIGURES, "fadepth.contracts.FIGURES names the figures drawn here"


def make_figures(spec, comparison: Comparison, out_dir: Path, context: Mapping[str, Any] | None = None,
                 say: Callable[[str], None] = print) -> list[FigureFile]:
    """Draw the figures the spec names (field ``figures``); skipped ones are reported via ``say``."""
    made = []
    for suffix in getattr(spec, "figures", None) or []:
        name = f"{spec.name}_{suffix}"
        try:
            fig, caption = FIGURES[suffix](comparison, context or {})
        except SkipFigure as why:
            say(f"[report] {spec.name}: figure {name} skipped: {why}")
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
        fig.savefig(png, dpi=150)
        fig.savefig(pdf)
        made.append(FigureFile(name, caption, png, pdf))
    return made
