"""Complexity and speed of a sweep's architectures, as MLflow metrics (``fadepth.complexity`` under the hood)."""
from __future__ import annotations

import logging
from typing import Any

from fadepth import contracts

log = logging.getLogger(__name__)


def complexity_metrics(cfg, required: bool, fps_reps: int = 20) -> dict[str, float]:
    """``fadepth.complexity`` counts of the config's depth net at the run's resolution, as the metrics of a
    :class:`fadepth.contracts.ComplexityRow` (``params_m``, ``gflops``, enc/dec splits, MAC; ``fps`` only
    when ``fps_reps``).  If it is unavailable: a warning (or the error when ``required``, i.e. for
    ``kind: complexity`` specs)."""
    try:
        from fadepth.complexity import count_complexity, deployed, measure_fps
        from fadepth.models import build_depth_model, create, entry

        name, h, w = cfg.model.name, cfg.data.height, cfg.data.width
        model = build_depth_model(cfg.model) if entry(name).kind == "depth" else create(name)
        row = count_complexity(model.eval(), h, w)
        if fps_reps:
            row["fps"] = measure_fps(deployed(model)[0], h, w, cfg.train.device, warmup=3, reps=fps_reps, deploy=False)
    except Exception as exc:  # noqa: BLE001 - ImportError until the module lands, or a model it can't count
        if required:
            raise
        log.warning("complexity not logged: %s: %s", type(exc).__name__, exc)
        return {}
    return contracts.ComplexityRow.from_counts(row).metrics()


def architecture_key(cfg) -> str:
    """What FPS depends on: the network, its inference-time options and the resolution."""
    etm = "_etm" if getattr(getattr(cfg.model, "etm", None), "enabled", False) else ""
    return f"{cfg.model.name}{etm}_{cfg.data.height}x{cfg.data.width}"


def sweep_fps(spec, profile: str, extra: dict[str, Any], schemes: list[str], reps: int = 50
              ) -> dict[str, float]:
    """FPS once per architecture of a sweep (after its runs, on an otherwise idle machine), not per run:
    per-run timings on a busy machine varied 2x between identical architectures."""
    if spec.kind != "train":
        return {}
    seed = spec.seeds_for(profile)[0]
    configs = {}
    for scheme in schemes:
        cfg = spec.resolve(scheme, seed, profile, extra)
        configs.setdefault(architecture_key(cfg), cfg)
    out = {}
    for key, cfg in configs.items():
        fps = complexity_metrics(cfg, required=False, fps_reps=reps).get("fps")
        if fps is not None:
            out[key] = fps
    return out
