"""Depth panels for MLflow: input | prediction | ground truth | error map, side by side in one RGB image.
An image computation beside evaluation, below the sweeps' tracking and the reports that show it.

The prediction is the network's finest disparity (colourised, near = bright).  Where the frame has ground
truth, the depth is median-aligned to it as in the evaluation (monodepth2), the ground truth is shown in the
same colour scale, and the error map is the per-pixel |pred - gt| / gt (AbsRel), black where there is no
ground truth (sky, LiDAR gaps).  Without ground truth the panel holds input and prediction only.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

ERROR_CAP = 0.5  # AbsRel mapped to the top of the colour scale


def _resize_nearest(array: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=shape, mode="nearest")[0, 0].numpy()


def _colour(values: np.ndarray, vmin: float, vmax: float, cmap: str) -> np.ndarray:
    import matplotlib

    norm = np.clip((values - vmin) / max(vmax - vmin, 1e-8), 0.0, 1.0)
    return (matplotlib.colormaps[cmap](norm)[..., :3] * 255).astype(np.uint8)


def depth_panel(depth_net: torch.nn.Module, item: dict[str, Any], device: Any = None) -> np.ndarray:
    """``(H, k*W, 3)`` uint8: input | prediction [| ground truth | error map] of one test item."""
    from fadepth.evaluation import predict_disparities

    image = torch.as_tensor(item["image"], dtype=torch.float32)
    (disp,) = predict_disparities(depth_net, [image], device)
    height, width = image.shape[-2:]
    disp = _resize_nearest(disp, (height, width)) if disp.shape != (height, width) else disp
    rgb = (image.permute(1, 2, 0).numpy().clip(0, 1) * 255).astype(np.uint8)
    inverse = 1.0 / np.maximum(disp, 1e-6)  # depth up to scale
    gt = item.get("gt")
    if gt is None or not np.any(np.asarray(gt) > 0):
        lo, hi = np.percentile(disp, [1, 99])
        return np.concatenate([rgb, _colour(disp, lo, hi, "magma")], axis=1)
    gt = _resize_nearest(np.asarray(gt), (height, width))
    valid = gt > 0
    depth = inverse * (np.median(gt[valid]) / np.median(inverse[valid]))  # median alignment, as evaluated
    near, far = np.percentile(gt[valid], [1, 99])
    to_disp = lambda d: 1.0 / np.maximum(d, 1e-6)  # noqa: E731 - colour depth as disparity (near = bright)
    scale = (to_disp(far), to_disp(near))
    gt_image = np.where(valid[..., None], _colour(to_disp(gt), *scale, "magma"), 0).astype(np.uint8)
    error = np.where(valid, np.abs(depth - gt) / np.maximum(gt, 1e-6), 0.0)
    error_image = np.where(valid[..., None], _colour(error, 0.0, ERROR_CAP, "inferno"), 0).astype(np.uint8)
    return np.concatenate([rgb, _colour(to_disp(depth), *scale, "magma"), gt_image, error_image], axis=1)
