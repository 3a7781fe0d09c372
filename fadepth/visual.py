"""Depth panels for MLflow: a labelled 2 x 2 grid -- input, prediction / ground truth, error map -- with colour
bars.  An image computation beside evaluation, below the sweeps' tracking and the reports that show it.

The prediction is the network's finest disparity as depth.  Where the frame has ground truth, the depth is
median-aligned to it as in the evaluation (monodepth2) and shown in metres on the ground truth's colour scale
(log, near = bright), and the error map is the per-pixel |pred - gt| / gt (AbsRel, capped at ``ERROR_CAP``), grey
where there is no ground truth (sky, LiDAR gaps).  Without ground truth the prediction is relative depth (up to
scale) and the two lower tiles say so.  Rendered with matplotlib's object API (no pyplot state: safe in workers).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ERROR_CAP = 0.5  # AbsRel mapped to the top of the colour scale
MIN_TILE_WIDTH = 416  # small training images are enlarged so the labels stay readable
NO_GT = "#9e9e9e"  # pixels without ground truth (sky, LiDAR gaps): grey, a colour neither map uses


def _resize_nearest(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=shape, mode="nearest")[0, 0].numpy()


def panel_tiles(depth_net: torch.nn.Module, item: dict[str, Any], device: Any = None) -> dict[str, np.ndarray | None]:
    """The four tiles as arrays: ``rgb`` (H, W, 3) in [0, 1], ``depth`` (median-aligned to the ground truth when
    there is one, else relative), ``gt`` (0 = none) and ``error`` (AbsRel, NaN without ground truth);
    ``gt`` and ``error`` are None when the frame has no ground truth."""
    from fadepth.evaluation import predict_disparities

    image = torch.as_tensor(item["image"], dtype=torch.float32)
    (disp,) = predict_disparities(depth_net, [image], device)
    height, width = image.shape[-2:]
    disp = _resize_nearest(disp, (height, width)) if disp.shape != (height, width) else disp
    rgb = image.permute(1, 2, 0).numpy().clip(0, 1)
    depth = 1.0 / np.maximum(disp, 1e-6)  # depth up to scale
    gt = item.get("gt")
    if gt is None or not np.any(np.asarray(gt) > 0):
        return {"rgb": rgb, "depth": depth, "gt": None, "error": None}
    gt = _resize_nearest(np.asarray(gt), (height, width))
    valid = gt > 0
    depth = depth * (np.median(gt[valid]) / np.median(depth[valid]))  # median alignment, as evaluated
    error = np.where(valid, np.abs(depth - gt) / np.maximum(gt, 1e-6), np.nan)
    return {"rgb": rgb, "depth": depth, "gt": gt, "error": error}


def depth_panel(depth_net: torch.nn.Module, item: dict[str, Any], device: Any = None) -> np.ndarray:
    """``(h, w, 3)`` uint8: the labelled 2 x 2 panel of one test item (see the module docstring)."""
    return render_panel(panel_tiles(depth_net, item, device))


def render_panel(tiles: dict[str, np.ndarray | None]) -> np.ndarray:
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.colors import LogNorm, Normalize
    from matplotlib.figure import Figure

    height, width = tiles["rgb"].shape[:2]
    zoom = max(1.0, MIN_TILE_WIDTH / width)
    dpi = 100
    fig = Figure(figsize=(2 * width * zoom / dpi + 2.0, 2 * height * zoom / dpi + 0.7), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, 2)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    gt, error, depth = tiles["gt"], tiles["error"], tiles["depth"]
    near, far = np.percentile(gt[gt > 0] if gt is not None else depth, [1, 99])
    norm = LogNorm(vmin=max(float(near), 1e-3), vmax=max(float(far), float(near) * 1.01, 1e-3 * 1.01))
    depth_cmap = matplotlib.colormaps["magma_r"].with_extremes(bad=NO_GT)  # near = bright
    axes[0, 0].imshow(tiles["rgb"])
    axes[0, 0].set_title("input", fontsize=9)
    shown = axes[0, 1].imshow(np.clip(depth, norm.vmin, norm.vmax), cmap=depth_cmap, norm=norm)
    unit = "depth (m, median-aligned)" if gt is not None else "depth (relative: up to scale)"
    axes[0, 1].set_title("prediction", fontsize=9)
    _depth_bar(fig.colorbar(shown, ax=axes[0, 1], pad=0.02), norm, unit)
    if gt is None:
        for ax in axes[1]:
            ax.set_facecolor(NO_GT)
            ax.text(0.5, 0.5, "no ground truth", color="white", ha="center", va="center", transform=ax.transAxes)
        axes[1, 0].set_title("ground truth", fontsize=9)
        axes[1, 1].set_title("error", fontsize=9)
    else:
        masked = np.ma.masked_less_equal(gt, 0)
        shown = axes[1, 0].imshow(np.ma.clip(masked, norm.vmin, norm.vmax), cmap=depth_cmap, norm=norm)
        axes[1, 0].set_title("ground truth (grey: none)", fontsize=9)
        _depth_bar(fig.colorbar(shown, ax=axes[1, 0], pad=0.02), norm, "depth (m)")
        error_cmap = matplotlib.colormaps["inferno"].with_extremes(bad=NO_GT)
        shown = axes[1, 1].imshow(np.ma.masked_invalid(error), cmap=error_cmap, norm=Normalize(0.0, ERROR_CAP))
        axes[1, 1].set_title(f"error |pred - gt| / gt (mean {np.nanmean(error):.3f})", fontsize=9)
        bar = fig.colorbar(shown, ax=axes[1, 1], pad=0.02, extend="max")
        bar.set_label(f"AbsRel (capped at {ERROR_CAP})", fontsize=7)
        bar.ax.tick_params(labelsize=7)
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _depth_bar(bar, norm, label: str) -> None:
    """A log colour bar for depth, ticked at 1-2-5 values in plain numbers (not 2 x 10^1)."""
    from matplotlib.ticker import NullFormatter

    decades = np.arange(np.floor(np.log10(norm.vmin)), np.ceil(np.log10(norm.vmax)) + 1)
    ticks = [m * 10 ** d for d in decades for m in (1, 2, 5) if norm.vmin <= m * 10 ** d <= norm.vmax]
    if len(ticks) < 2:  # a narrow range (relative depth): three ticks across it
        ticks = list(np.geomspace(norm.vmin, norm.vmax, 3))
    bar.set_ticks(ticks, labels=[f"{t:.3g}" for t in ticks])
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    bar.ax.tick_params(labelsize=7)
    bar.set_label(label, fontsize=7)
