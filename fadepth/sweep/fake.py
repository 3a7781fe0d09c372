"""A stand-in for ``fadepth.train.train`` with the same contract, for exercising the runner fast.

Select it with ``FADEPTH_SWEEP_TRAIN_FN=fadepth.sweep.fake:train``.  It sleeps
``FADEPTH_FAKE_STEP_S`` (default 0.02 s) per iteration, calls the callbacks like the real trainer, writes
a checkpoint file, and returns metrics that depend on the config.  It fails like the real one would:
an unknown ``model.name`` raises ``KeyError``; ``optim.lr >= 1`` raises ``NonFiniteLossError``.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

KNOWN_MODELS = {"smalldepth", "rn18", "mobilenetv3", "hqdecv2", "hqdec"}


class NonFiniteLossError(FloatingPointError):
    pass


@dataclass
class TrainResult:
    metrics: dict[str, float]
    checkpoint: Path
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    seconds: float = 0.0


def train(cfg, callbacks: Iterable[Any] = (), resume: bool = True) -> TrainResult:
    t0 = time.perf_counter()
    if cfg.model.name not in KNOWN_MODELS:
        raise KeyError(f"unknown model {cfg.model.name!r}")
    out = Path(cfg.train.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    step_s = float(os.environ.get("FADEPTH_FAKE_STEP_S", "0.02"))
    history = []
    for it in range(1, cfg.train.iterations + 1):
        time.sleep(step_s)
        loss = cfg.optim.lr * 100 / it + 0.01 * cfg.train.seed
        if cfg.optim.lr >= 1.0:
            loss = math.nan
        if not math.isfinite(loss):
            raise NonFiniteLossError(f"loss is {loss} at iteration {it}")
        scalars = {"loss": loss, "lr": cfg.optim.lr}
        history.append({"iteration": it, **scalars})
        for cb in callbacks:
            getattr(cb, "on_step", lambda *a: None)(it, scalars)
    base = 0.12 + 0.01 * cfg.model.pb_dsr + 0.001 * cfg.train.seed
    metrics = {"abs_rel": base, "sq_rel": 0.9, "rmse": 5.0, "rmse_log": 0.2, "a1": 0.85, "a2": 0.95, "a3": 0.98}
    for cb in callbacks:
        getattr(cb, "on_eval", lambda *a: None)(cfg.train.iterations, metrics)
    checkpoint = out / "checkpoint.pt"
    checkpoint.write_text(json.dumps({"iterations": cfg.train.iterations}))
    result = TrainResult(metrics, checkpoint, history, cfg.train.iterations, time.perf_counter() - t0)
    for cb in callbacks:
        getattr(cb, "on_end", lambda *a: None)(result)
    return result
