"""Depth evaluation exactly as monodepth2's ``evaluate_depth.py`` (protocol note section 2), plus AdaSearch.

Pipeline for one image (``evaluate_depths``):

1. ``pred`` is the network's sigmoid disparity (``outputs["disp"][0]``, any resolution). It is resized
   **as a disparity** to the GT's (H, W) with bilinear interpolation (half-pixel centres, no antialiasing:
   ``F.interpolate(..., align_corners=False)``, the same sampling as monodepth2's ``cv2.resize``), then
   turned into depth with eq. (12), D = 1 / (10 disp + 0.01). Resizing sigma or the scaled disparity
   10 sigma + 0.01 is the same thing (the map is affine). ``sigmoid=False`` takes ``pred`` as an inverse
   depth 1/D instead.
2. Valid pixels by protocol (``PROTOCOLS``): ``eigen`` 1e-3 < gt < 80 inside the Garg crop;
   ``eigen_benchmark`` gt > 0 (no crop, no cap on GT); ``ddad`` 0 < gt < 200; ``synthetic`` gt > 0.
3. Alignment per image: ``median`` (ratio = median(gt) / median(pred) over valid pixels), ``adasearch``
   (below) or ``none``; then pred is clamped to [1e-3, cap] (cap 80, or 200 for ddad).
4. ``depth_metrics`` per image; the result is the mean over images, plus ``median_ratio`` (median of the
   per-image ratios), ``ratio_std`` (std of ratios / median_ratio, as monodepth2 prints) and ``num_images``.

**AdaSearch reading.** HQDec [31] (Table II's double-dagger rows) aligns with "AdaSearch"; its exact rule is
not public. We read it as a per-image scale search that minimises AbsRel: a log-spaced grid of
33 candidates over [r/2, 2r] around the median ratio r, refined twice around the best candidate
(each refinement spans +-1 previous grid step), scoring each candidate on the *clamped* prediction.
The grid always contains the median ratio, so AdaSearch AbsRel <= median-scaling AbsRel per image.
It uses the GT more aggressively than median scaling: report it only beside the median rows.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

log = logging.getLogger(__name__)
METRICS = ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")
MIN_DEPTH = 1e-3


@dataclass(frozen=True)
class Protocol:
    min_gt: float  # valid: min_gt < gt
    max_gt: float  # valid: gt < max_gt
    garg_crop: bool
    cap: float  # pred clamped to [MIN_DEPTH, cap] after alignment


PROTOCOLS = {
    "eigen": Protocol(MIN_DEPTH, 80.0, True, 80.0),
    "eigen_benchmark": Protocol(0.0, math.inf, False, 80.0),
    "ddad": Protocol(0.0, 200.0, False, 200.0),
    "synthetic": Protocol(0.0, math.inf, False, 80.0),
}


# ---------------------------------------------------------------------------------------- metrics
def depth_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Standard metrics over already-selected valid pixels (1-D or any shape, same as gt)."""
    gt = np.asarray(gt, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    thresh = np.maximum(gt / pred, pred / gt)
    diff = pred - gt
    return {
        "abs_rel": float(np.mean(np.abs(diff) / gt)),
        "sq_rel": float(np.mean(diff**2 / gt)),
        "rmse": float(np.sqrt(np.mean(diff**2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(pred) - np.log(gt)) ** 2))),
        "a1": float(np.mean(thresh < 1.25)),
        "a2": float(np.mean(thresh < 1.25**2)),
        "a3": float(np.mean(thresh < 1.25**3)),
    }


def garg_crop_mask(h: int, w: int) -> np.ndarray:
    """Boolean (h, w): rows [int(0.40810811 h), int(0.99189189 h)), cols [int(0.03594771 w), int(0.96405229 w))."""
    mask = np.zeros((h, w), dtype=bool)
    top, bottom = int(0.40810811 * h), int(0.99189189 * h)
    left, right = int(0.03594771 * w), int(0.96405229 * w)
    mask[top:bottom, left:right] = True
    return mask


def valid_mask(gt: np.ndarray, protocol: str) -> np.ndarray:
    """Pixels that count under `protocol` (see PROTOCOLS)."""
    p = PROTOCOLS[protocol]
    mask = (gt > p.min_gt) & (gt < p.max_gt)
    if p.garg_crop:
        mask &= garg_crop_mask(*gt.shape)
    return mask


# ---------------------------------------------------------------------------------- predictions
def resize_disparity(disp: Any, height: int, width: int) -> np.ndarray:
    """Bilinear (half-pixel, no antialias) resize of a 2-D disparity to (height, width), float32."""
    t = torch.as_tensor(np.asarray(disp, dtype=np.float32)).reshape(1, 1, *np.shape(disp)[-2:])
    if tuple(t.shape[-2:]) != (height, width):
        t = F.interpolate(t, size=(height, width), mode="bilinear", align_corners=False)
    return t[0, 0].numpy()


def disparity_to_depth(disp: np.ndarray, sigmoid: bool = True) -> np.ndarray:
    """Eq. (12) for a sigmoid disparity (1 / (10 d + 0.01)); 1 / d for an inverse depth."""
    disp = disp.astype(np.float64)
    return 1.0 / (10.0 * disp + 0.01) if sigmoid else 1.0 / np.maximum(disp, 1e-8)


def _abs_rel(pred: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean(np.abs(pred - gt) / gt))


def adasearch_ratio(pred: np.ndarray, gt: np.ndarray, cap: float, points: int = 33, rounds: int = 3) -> float:
    """Per-image scale minimising AbsRel of clip(ratio * pred) (module docstring: our reading of AdaSearch)."""
    r0 = float(np.median(gt) / np.median(pred))
    best_u, half = 0.0, math.log(2.0)
    best = _abs_rel(np.clip(pred * r0, MIN_DEPTH, cap), gt)
    for _ in range(rounds):
        grid = best_u + np.linspace(-half, half, points)
        grid[points // 2] = best_u  # keep the current best exactly
        for u in grid:
            score = _abs_rel(np.clip(pred * (r0 * math.exp(u)), MIN_DEPTH, cap), gt)
            if score < best:
                best, best_u = score, float(u)
        half = 2.0 * half / (points - 1)
    return r0 * math.exp(best_u)


# ----------------------------------------------------------------------------------- evaluation
def evaluate_depths(
    preds: Sequence[Any],
    gts: Sequence[np.ndarray],
    protocol: str,
    align: str = "median",
    sigmoid: bool = True,
) -> dict[str, float]:
    """Mean metrics over images (module docstring). `preds`: network disparities; `gts`: native-res GT."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if align not in ("median", "adasearch", "none"):
        raise ValueError(f"unknown align {align!r}; expected median, adasearch or none")
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions for {len(gts)} ground-truth maps")
    cap = PROTOCOLS[protocol].cap
    rows, ratios, without_gt = [], [], 0
    for disp, gt in zip(preds, gts):
        gt = np.asarray(gt, dtype=np.float32).squeeze()
        mask = valid_mask(gt, protocol)
        if not mask.any():
            without_gt += 1
            continue
        depth = disparity_to_depth(resize_disparity(np.squeeze(np.asarray(disp)), *gt.shape), sigmoid)
        pred, g = depth[mask], gt[mask].astype(np.float64)
        if align == "median":
            ratio = float(np.median(g) / np.median(pred))
        elif align == "adasearch":
            ratio = adasearch_ratio(pred, g, cap)
        else:
            ratio = 1.0
        rows.append(depth_metrics(g, np.clip(pred * ratio, MIN_DEPTH, cap)))
        ratios.append(ratio)
    if not rows:
        raise ValueError(f"none of the {len(gts)} images has a valid ground-truth pixel under protocol {protocol}")
    out = {name: float(np.mean([r[name] for r in rows])) for name in METRICS}
    ratios_arr = np.asarray(ratios)
    med = float(np.median(ratios_arr))
    out["median_ratio"] = med
    out["ratio_std"] = float(np.std(ratios_arr / med))
    out["num_images"] = len(rows)
    out["num_without_gt"] = without_gt  # images skipped: no valid ground-truth pixel under the protocol
    if without_gt:
        log.warning("%d of %d images have no valid ground-truth pixel under protocol %s: skipped, "
                    "metrics average the other %d", without_gt, len(gts), protocol, len(rows))
    return out


@torch.no_grad()
def predict_disparities(depth_net, images: Sequence[Any], device: Any = None, batch_size: int = 8) -> list[np.ndarray]:
    """Run the depth net (eval mode) on (3,H,W) images; return the finest disparities as 2-D float32 arrays."""
    device = torch.device(device) if device is not None else next(depth_net.parameters()).device
    was_training = depth_net.training
    depth_net.eval()
    preds: list[np.ndarray] = []
    try:
        for start in range(0, len(images), batch_size):
            batch = torch.stack([torch.as_tensor(im, dtype=torch.float32) for im in images[start : start + batch_size]])
            disp = depth_net(batch.to(device))["disp"][0]
            preds.extend(d[0] for d in disp.float().cpu().numpy())
    finally:
        depth_net.train(was_training)
    return preds


def evaluate_model(
    depth_net,
    test_set,
    align: str = "median",
    device: Any = None,
    batch_size: int = 8,
    max_images: int | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Evaluate `depth_net` on a test set following the test-sample contract (uses `test_set.protocol`);
    `progress`: a tqdm bar over the images on stderr."""
    from tqdm import tqdm

    n = len(test_set) if max_images is None else min(len(test_set), max_images)
    preds, gts = [], []
    bar = tqdm(total=n, desc=f"eval ({test_set.protocol})", unit="image", disable=not progress, dynamic_ncols=True,
               leave=False)
    for start in range(0, n, batch_size):
        items = [test_set[i] for i in range(start, min(n, start + batch_size))]
        preds.extend(predict_disparities(depth_net, [it["image"] for it in items], device, batch_size))
        gts.extend(it["gt"] for it in items)
        bar.update(len(items))
    bar.close()
    return evaluate_depths(preds, gts, test_set.protocol, align)


def constant_depth_metrics(test_set) -> dict[str, float]:
    """Metrics of one constant depth everywhere, median-scaled: the level a collapsed network sits at.

    Per-image median scaling turns any constant into that image's ground-truth median, so this is also the best
    constant prediction; a trained run is judged against it (``abs_rel`` ratio, or "ended at the constant").
    """
    items = [test_set[i] for i in range(len(test_set))]
    flat = [np.full(tuple(np.shape(it["image"])[-2:]), 0.5, np.float32) for it in items]
    return evaluate_depths(flat, [it["gt"] for it in items], test_set.protocol, align="median")


# ------------------------------------------------------------------------------------- printing
def format_header() -> str:
    return " & ".join(f"{name:>8}" for name in METRICS) + r" \\"


def format_row(metrics: dict[str, float], header: bool = True) -> str:
    """The paper's row: abs_rel & sq_rel & rmse & rmse_log & a1 & a2 & a3 (3 decimals), LaTeX-ready.

    With ``header`` (default) the metric names come first on their own line, as monodepth2 prints them.
    """
    row = " & ".join(f"{metrics[name]:8.3f}" for name in METRICS) + r" \\"
    return f"{format_header()}\n{row}" if header else row
