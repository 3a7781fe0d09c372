"""Drop-rate schedule of eq. 5 and its application to every `DropFunction` of a model.

Eq. 5 is read as in design note section 5: a continuous cosine hump that rises from 0 to pb_max over the
first M = floor(N * fraction) iterations and falls back to 0 at N, the second branch using (i - M)
(as printed it uses i, which makes pb jump at i = M). `mode="constant"` is Table V's starred constant rate.
`mode="printed"` is eq. 5 read literally: the second branch is (pb_max/2)(1 - cos(pi i/(N - M) + pi)) with i,
so with M = N/2 pb resets from pb_max to 0 at i = M and ramps up again to pb_max at N (decision 5).
"""
from __future__ import annotations

import math

import torch
from torch import nn

from fadepth.models.blocks import DropFunction


def drop_rate(iteration: int, total: int, pb_max: float, fraction: float = 0.5, mode: str = "cosine") -> float:
    """pb(i) of eq. 5 (cosine: continuous hump; printed: as typeset) or the constant pb_max."""
    if mode == "constant":
        return float(pb_max)
    if mode not in ("cosine", "printed"):
        raise ValueError(f"drop schedule mode must be 'cosine', 'constant' or 'printed', got {mode!r}")
    if total <= 0 or iteration < 0 or iteration >= total:
        return 0.0
    ramp = math.floor(total * fraction)  # M
    if iteration < ramp:  # 0 <= i < M: rises 0 -> pb_max
        return 0.5 * pb_max * (1.0 - math.cos(math.pi * iteration / ramp))
    if mode == "printed":  # M <= i < N with i as printed (not i - M)
        return 0.5 * pb_max * (1.0 - math.cos(math.pi * iteration / (total - ramp) + math.pi))
    # M <= i < N: falls pb_max -> 0
    return 0.5 * pb_max * (1.0 - math.cos(math.pi + math.pi * (iteration - ramp) / (total - ramp)))


def apply_drop_rates(model: nn.Module, iteration: int, total: int, model_cfg) -> dict[str, float]:
    """Set the rate of every DropFunction: pb_dsr for kind "dsr", pb_sd for kind "sd" (a ModelConfig).

    All DropFunctions of one kind share one device tensor (bound here on first use), so a step writes two
    values in place, not one per layer, and a captured or compiled step sees the new rate without a rebuild.
    Returns the rates set per kind (for logging)."""
    pb_max = {"dsr": model_cfg.pb_dsr, "sd": model_cfg.pb_sd}
    rates = {kind: drop_rate(iteration, total, peak, model_cfg.drop_fraction, model_cfg.drop_schedule)
             for kind, peak in pb_max.items()}
    for kind, keep in shared_keep_probs(model).items():
        keep.fill_(1.0 - rates[kind])
    return rates


def shared_keep_probs(model: nn.Module) -> dict[str, torch.Tensor]:
    """One keep-probability tensor per drop kind, bound to every DropFunction of `model` (rebound if a
    ``.to()`` gave the layers copies of their own)."""
    drops = [m for m in model.modules() if isinstance(m, DropFunction)]
    shared: dict[str, torch.Tensor] = {}
    for module in drops:
        keep = shared.setdefault(module.kind, module.keep_prob)
        if module.keep_prob is not keep:
            module.keep_prob = keep
    return shared
