"""Seaborn figures for the ablation tables: ours beside the paper's, PNG + PDF under ``figures/``.

Each figure is built from a :class:`~fadepth.report.tables.Comparison` (ours = means over the finished
seeds, paper = the CSV rows), keyed by the spec's ``paper_table``.  A figure whose data is missing is
skipped with a message (:class:`SkipFigure`), never drawn empty.  Matplotlib's object API is used
(``Figure``, no pyplot), so no GUI backend is touched.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from fadepth.report.tables import METRICS, PAPER_DIR, Comparison

sns.set_theme(style="whitegrid", context="paper")
SOURCE_MARKERS = {"ours": "o", "paper": "X"}
SOURCE_DASHES = {"ours": "", "paper": (4, 2)}


class SkipFigure(Exception):
    """The data a figure needs is missing; the message says what."""


@dataclass(frozen=True)
class FigureFile:
    name: str
    caption: str
    png: Path
    pdf: Path


def _label(metric: str) -> str:
    info = METRICS.get(metric)
    if info is None:
        return metric
    return f"{info.text} ({'lower' if info.lower_is_better else 'higher'} is better)"


def _numeric(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in columns if c not in frame]
    if missing:
        raise SkipFigure(f"column(s) {missing} missing")
    out = frame.copy()
    for column in columns:
        out[column] = pd.to_numeric(out[column], errors="coerce")
    return out


def one_factor(frame: pd.DataFrame, factor: str, reference: Mapping[str, float]) -> pd.DataFrame:
    """Rows where only ``factor`` varies: every other reference key is at its value (or not set)."""
    keep = frame[factor].notna()
    for key, value in reference.items():
        if key != factor:
            keep &= frame[key].isna() | np.isclose(frame[key].fillna(np.inf), value)
    return frame[keep].sort_values(factor)


def _line_panel(ax, data: pd.DataFrame, x: str, y: str, hue: str | None, log_x: bool = False,
                hue_title: str = "paper scheme") -> None:
    if hue:
        data, hue = data.rename(columns={hue: hue_title}), hue_title
    sns.lineplot(data=data, x=x, y=y, hue=hue, style="source", markers=SOURCE_MARKERS, dashes=SOURCE_DASHES,
                 style_order=["ours", "paper"], ax=ax, errorbar=None)
    ours = data[(data["source"] == "ours") & data.get(f"{y}_std", pd.Series(np.nan, index=data.index)).notna()]
    if len(ours):  # our seed-to-seed spread
        ax.errorbar(ours[x], ours[y], yerr=ours[f"{y}_std"], fmt="none", ecolor="0.4", capsize=3, lw=1)
    if log_x:
        ax.set_xscale("log")
    ax.set_ylabel(_label(y))


def _metric(comparison: Comparison, preferred: str) -> str:
    return preferred if preferred in comparison.metrics else comparison.primary


def _require_ours(data: pd.DataFrame, what: str) -> None:
    if data.empty:
        raise SkipFigure(f"no rows for {what}")
    if not (data["source"] == "ours").any():
        raise SkipFigure(f"none of our finished schemes belongs to {what}")


# ----------------------------------------------------------------------------------- figures
def lr_robustness(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table IV: AbsRel against the learning rate, one line per architecture."""
    metric = _metric(comparison, "abs_rel")
    data = _numeric(comparison.frame, ["lr"]).dropna(subset=["lr", metric])
    _require_ours(data, "the LR sweep")
    fig = Figure(figsize=(6.4, 4.2), layout="constrained")
    ax = fig.subplots()
    _line_panel(ax, data, "lr", metric, hue="paper_label", log_x=True, hue_title="architecture")
    ax.set_xlabel("learning rate")
    ax.legend(title=None, fontsize="small")
    return fig, f"Table IV: {METRICS[metric].latex} against the learning rate per architecture (ours: solid, paper: dashed)."


def drop_rates(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table V: the metric against pb_dsr (pb_sd = 0) and against pb_sd (pb_dsr = 0.9), scheduled rates."""
    metric = _metric(comparison, "abs_rel")
    data = _numeric(comparison.frame, ["pb_dsr", "pb_sd"]).dropna(subset=[metric])
    if "constant_rate" in data:
        data = data[data["constant_rate"].astype(str).str.lower() != "true"]
    reference = {"pb_dsr": 0.9, "pb_sd": 0.0}
    fig = Figure(figsize=(9, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, factor in zip(axes, reference):
        panel = one_factor(data, factor, reference)
        _require_ours(panel, f"the {factor} curve")
        _line_panel(ax, panel, factor, metric, hue=None)
        ax.set_xlabel(factor)
    return fig, (f"Table V: {METRICS[metric].latex} against the DSR drop rate $pb_{{dsr}}$ ($pb_{{sd}}=0$) and "
                 "the sparse-downsampling drop rate $pb_{sd}$ ($pb_{dsr}=0.9$); scheduled rates only.")


def etm_drop(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table VII: delta_1 against pb_t, r1 and r2, one factor at a time around (0.1, 0.1, 1)."""
    metric = _metric(comparison, "a1")
    data = _numeric(comparison.frame, ["pb_t", "r1", "r2"]).dropna(subset=[metric])
    reference = {"pb_t": 0.1, "r1": 0.1, "r2": 1.0}
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 3, sharey=True)
    drawn = 0
    for ax, factor in zip(axes, reference):
        panel = one_factor(data, factor, reference)
        if panel.empty or not (panel["source"] == "ours").any():
            ax.set_title(f"{factor}: no runs of ours")
            continue
        _line_panel(ax, panel, factor, metric, hue="paper_label")
        ax.set_xlabel(factor)
        if drawn and ax.get_legend():
            ax.get_legend().remove()  # the first panel's legend names every line
        drawn += 1
    if not drawn:
        raise SkipFigure("none of our finished schemes varies pb_t, r1 or r2")
    return fig, (f"Table VII: {METRICS[metric].latex} against the ETM drop settings $pb_t$, $r_1$, $r_2$, "
                 "one at a time around $(0.1, 0.1, 1)$.")


def pyramid_weights(comparison: Comparison, context: Mapping[str, Any]) -> tuple[Figure, str]:
    """Table X: a heatmap per pyramid level, schemes x (ours, paper), coloured by delta_1."""
    metric = _metric(comparison, "a1")
    data = comparison.frame.dropna(subset=[metric])
    if "i" not in data or not (data["source"] == "ours").any():
        raise SkipFigure("no level column 'i' or no finished scheme of ours")
    levels = [lvl for lvl in dict.fromkeys(data["i"]) if lvl]
    fig = Figure(figsize=(3.2 * len(levels) + 1, 4.8), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(levels)))
    limits = {"vmin": data[metric].min(), "vmax": data[metric].max()}
    for ax, level in zip(axes, levels):
        rows = data[data["i"] == level]
        grid = rows.pivot_table(index="scheme", columns="source", values=metric, sort=False)
        grid = grid.reindex(columns=["ours", "paper"])
        sns.heatmap(grid, annot=True, fmt=".4f", cmap="viridis", cbar=ax is axes[-1], ax=ax,
                    annot_kws={"fontsize": 6}, **limits)
        ax.set_title(f"i = {level}")
        ax.set_xlabel("")
        ax.set_ylabel("")
    return fig, f"Table X: {METRICS[metric].latex} per weight scheme and pyramid level, ours beside the paper's."


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
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
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
        ax.set_ylabel(_label("abs_rel"))
    profile = context.get("accuracy_profile", "?")
    return fig, ("Speed against accuracy: paper = Table I (RTX 4090, batch 1, 128x416) with Table II's "
                 f"Eigen AbsRel; ours = measured complexity with our best finished AbsRel (profile {profile}).")


FIGURES: dict[str, list[tuple[str, Callable[[Comparison, Mapping[str, Any]], tuple[Figure, str]]]]] = {
    "table04_lr.csv": [("lr_robustness", lr_robustness)],
    "table05_drop.csv": [("drop_rates", drop_rates)],
    "table07_etm_drop.csv": [("etm_drop", etm_drop)],
    "table10_pyramid_weights.csv": [("pyramid_weights", pyramid_weights)],
    "table01_complexity.csv": [("speed_accuracy", speed_accuracy)],
}


def make_figures(spec, comparison: Comparison, out_dir: Path, context: Mapping[str, Any] | None = None,
                 say: Callable[[str], None] = print) -> list[FigureFile]:
    """Draw every figure registered for the spec's paper table; skipped ones are reported via ``say``."""
    made = []
    for suffix, draw in FIGURES.get(spec.paper_table or "", []):
        name = f"{spec.name}_{suffix}"
        try:
            fig, caption = draw(comparison, context or {})
        except SkipFigure as why:
            say(f"[report] {spec.name}: figure {name} skipped: {why}")
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        png, pdf = out_dir / f"{name}.png", out_dir / f"{name}.pdf"
        fig.savefig(png, dpi=150)
        fig.savefig(pdf)
        made.append(FigureFile(name, caption, png, pdf))
    return made
