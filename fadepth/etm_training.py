"""What training does to ETM besides its forward pass: pb_t over the iterations, and p_t's weight decay.

* ``apply_etm_drop_rates``: ``model.etm.pb_schedule`` "constant" (default) keeps the printed pb_t for every
  iteration; "cosine" / "printed" run pb_t through eq. 5, as pb_dsr and pb_sd are (``fadepth.schedules``), with
  the peak pb_t and ``model.drop_fraction``'s M. The branch drop (eq. 15a: pb_t, r1 pb_t) and dropconv
  (eq. 14: r2 pb_t) follow it. Decisions row 35.
* ``parameter_groups``: AdamW's groups; with ``optim.weight_decay_etm`` set, ETM's p_t (the per-branch,
  per-channel scales of eq. 15b) get that decay instead of ``optim.weight_decay``. Decisions row 39.
"""
from __future__ import annotations

from typing import Iterable

from torch import nn

from fadepth.models.etm import ETMConv2d
from fadepth.schedules import drop_rate


def apply_etm_drop_rates(model: nn.Module, iteration: int, total: int, model_cfg) -> float | None:
    """Set pb_t of every ETM conv for this iteration (a ``ModelConfig``); returns it, None without ETM."""
    etm = model_cfg.etm
    if not etm.enabled:
        return None
    rate = drop_rate(iteration, total, etm.pb_t, model_cfg.drop_fraction, etm.pb_schedule)
    for module in model.modules():
        if isinstance(module, ETMConv2d):
            module.pb_t = rate
    return rate


def parameter_groups(modules: Iterable[nn.Module], optim_cfg) -> list[dict]:
    """AdamW parameter groups of the trainable parameters of ``modules`` (an ``OptimConfig``): one group with
    ``weight_decay`` (as before), or, with ``weight_decay_etm`` set, a second group of ETM's p_t with it."""
    modules = list(modules)
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    if optim_cfg.weight_decay_etm is None:
        return [{"params": params, "weight_decay": optim_cfg.weight_decay}]
    etm_ids = {id(m.scale) for root in modules for m in root.modules() if isinstance(m, ETMConv2d)}
    groups = [{"params": [p for p in params if id(p) not in etm_ids], "weight_decay": optim_cfg.weight_decay},
              {"params": [p for p in params if id(p) in etm_ids], "weight_decay": optim_cfg.weight_decay_etm}]
    return [g for g in groups if g["params"]]
