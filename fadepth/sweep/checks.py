"""Checks of a sweep request that no flag escapes silently (issue 25), run by :class:`fadepth.sweep.plan.Plan`
before any store is written or model built:

* ``--set`` keys the sweep owns (``train.seed``: ``--seeds``; ``train.out_dir``: ``--runs-dir``) are refused --
  the sweep overwrote them while the study name and the run tags carried them;
* ``--gpus`` ids must be visible devices (ids on a machine without a GPU trained on CPU, tagged ``gpu=0``);
* a large request (more than :data:`BIG_SEEDS` seeds or :data:`BIG_CELLS` runs) needs ``--yes``, and its size
  and estimated time (:mod:`fadepth.sweep.estimate`) are printed first;
* each run's precision and CUDA-graph settings pass the same checks ``fadepth train`` makes
  (:func:`fadepth.preflight.check_precision`, :func:`fadepth.preflight.check_cuda_graphs`).
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Mapping

from fadepth.config import ConfigError

OWNED_KEYS = {
    "train.seed": "--seeds (every cell sets its own seed)",
    "train.out_dir": "--runs-dir (each run writes to RUNS_DIR/train/<study>/<scheme>/seed<k>)",
}
BIG_SEEDS, BIG_CELLS = 64, 500


def check_owned_keys(extra: Mapping[str, Any]) -> None:
    for key, flag in OWNED_KEYS.items():
        if key in extra:
            raise ConfigError(f"--set {key}={extra[key]}: a sweep sets {key} itself; use {flag}")


def check_gpus(text: str | None, launcher: str = "local") -> None:
    """Explicit ``--gpus`` ids: whole numbers, each below the number of visible CUDA devices."""
    if launcher != "local" or text in (None, "", "auto", "none"):
        return
    ids = [g.strip() for g in text.split(",") if g.strip()]
    bad = [g for g in ids if not g.isdigit()]
    if not ids or bad:
        raise ConfigError(f"--gpus {text!r}: expected comma-separated GPU ids (0,1,...), 'auto' or 'none'")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    missing = sorted({g for g in ids if int(g) >= count}, key=int)
    if missing:
        seen = f"GPUs 0-{count - 1} are visible" if count else "no GPU is visible on this machine"
        raise ConfigError(f"--gpus {text}: no GPU {', '.join(missing)} ({seen}); "
                          + ("use --gpus none for CPU workers" if not count else "choose visible ids"))


def check_size(n_schemes: int, n_seeds: int, yes: bool, estimate: Callable[[], str] = lambda: "",
               dry_run: bool = False) -> None:
    """A large request: print its size and ``estimate()`` (the time it would take, :mod:`fadepth.sweep.estimate`)
    first; without ``--yes`` refuse it (a dry run only prints it)."""
    runs = n_schemes * n_seeds
    if n_seeds <= BIG_SEEDS and runs <= BIG_CELLS:
        return
    time = estimate()
    line = f"this request is {n_schemes} schemes x {n_seeds} seeds = {runs} runs" + (f"; {time}" if time else "")
    if not yes and not dry_run:
        raise ConfigError(f"{line}; more than {BIG_SEEDS} seeds or {BIG_CELLS} runs: add --yes to queue them, "
                          "or fewer --seeds / --only")
    print(f"note: {line} ({'--yes' if yes else '--dry-run; queueing it needs --yes'})", file=sys.stderr)


def check_device_settings(cfg) -> None:
    """The precision / CUDA-graph checks of ``fadepth train``, on the device the run resolves to here."""
    import torch

    from fadepth.preflight import check_cuda_graphs, check_precision
    from fadepth.utils import resolve_device

    try:
        device = resolve_device(cfg.train.device)
    except RuntimeError:  # cuda requested on a machine without it: the pre-flight's device check says so
        device = torch.device("cuda")
    check_precision(cfg, device)
    check_cuda_graphs(cfg, device)
