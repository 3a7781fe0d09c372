"""Eq. (12) and where a depth network's disparity output starts.

Every depth model ends in sigmoid disparities sigma in (0, 1), read as depth by eq. (12):

    D = 1 / (10 * sigma + 0.01),  so D in (~0.0999, 100)                                       (eq. 12)

With PyTorch's default initialisation the heads start at sigma ~ 0.5, i.e. D ~ 0.2: twice eq. 12's floor.
Self-supervised training keeps the scale it starts with (the loss is invariant to scaling depth and pose
translation together), so every pixel nearer than half the scene's typical depth would need a depth below
the floor. ``start_depth`` (``model.start_depth``, docs/decisions.md row 32) starts the heads at another
depth instead by setting their output bias; the paper (and monodepth2) keep the default initialisation.
"""
from __future__ import annotations

import math

from torch import nn

MIN_DEPTH, MAX_DEPTH = 1.0 / 10.01, 100.0  # eq. 12 at sigma = 1 and sigma = 0


def disp_to_depth(disp):
    """Eq. (12): D = 1 / (10 * disp + 0.01) (monodepth2's 0.01 + 9.99 * disp, as the paper prints it)."""
    return 1.0 / (10.0 * disp + 0.01)


def disparity_logit(depth: float) -> float:
    """The pre-sigmoid value whose eq. (12) depth is `depth` (inverse of `disp_to_depth` o sigmoid)."""
    if not MIN_DEPTH < depth < MAX_DEPTH:
        raise ValueError(f"initial depth {depth} outside eq. 12's range ({MIN_DEPTH}, {MAX_DEPTH})")
    sigma = (1.0 / depth - 0.01) / 10.0
    return math.log(sigma / (1.0 - sigma))


def set_start_depth(model: nn.Module, depth: float) -> nn.Module:
    """Start every disparity head of `model` at eq. (12) depth `depth` (heads expose ``init_disparity``)."""
    heads = [m for m in model.modules() if hasattr(m, "init_disparity")]
    if not heads:
        raise ValueError(f"{type(model).__name__} has no disparity head that can start at a given depth")
    logit = disparity_logit(depth)
    for head in heads:
        head.init_disparity(logit)
    return model
