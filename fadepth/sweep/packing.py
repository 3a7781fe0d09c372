"""Which device each sweep worker gets (:func:`resolve_gpus`, :func:`worker_devices`: used by the launcher to
start them and by :mod:`fadepth.sweep.estimate` to count them), and how many runs share one GPU when
``sweeps/run.py`` is not told (``--workers-per-gpu`` left at auto).

Small runs leave a large GPU idle (one `synthetic` run keeps an H200 a few percent busy, issue 21), so the launcher
packs several workers per GPU: as many as the measured peak memory of one run allows (with headroom), and no more
than the CPU cores can feed (one core per worker). The peak is measured, not guessed: two training steps of the
sweep's first cell on the first GPU, before any worker starts.
"""
from __future__ import annotations

import os
import tempfile

GIB = 1024**3
CONTEXT_BYTES = 0.6 * GIB  # a CUDA context and allocator slack per worker process
MEMORY_HEADROOM = 0.8  # use at most this share of the GPU's memory
MAX_WORKERS_PER_GPU = 16


def resolve_gpus(text: str | None) -> list[str]:
    """GPU ids to put one worker on each: explicit ids, every visible GPU for 'auto', none for 'none'."""
    if text in (None, "", "none"):
        return []
    if text == "auto":
        import torch

        return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return [g.strip() for g in text.split(",") if g.strip()]


def worker_devices(gpu_ids: list[str], workers_per_gpu: int = 1, cpu_workers: int | None = None) -> list:
    """The device of each worker: every GPU id `workers_per_gpu` times, or `None` (CPU) per CPU worker."""
    if gpu_ids:
        return [gpu for gpu in gpu_ids for _ in range(workers_per_gpu)]
    return [None] * max(1, cpu_workers or min(8, os.cpu_count() or 1))


def choose_workers_per_gpu(run_peak_bytes: int, gpu_bytes: int, cpu_cores: int, n_gpus: int) -> int:
    """Workers per GPU: bounded by memory (peak + context each, within the headroom) and by cores (one each)."""
    by_memory = int(MEMORY_HEADROOM * gpu_bytes // (1.2 * run_peak_bytes + CONTEXT_BYTES))
    by_cores = max(1, cpu_cores // max(1, n_gpus))
    return max(1, min(by_memory, by_cores, MAX_WORKERS_PER_GPU))


def measure_run_peak(cfg, gpu: str) -> tuple[int, int]:
    """(peak bytes of two training steps of ``cfg`` on GPU ``gpu``, that GPU's total bytes)."""
    import torch

    from fadepth.data import build_dataset
    from fadepth.train import Trainer, batches

    device = torch.device(f"cuda:{gpu}")
    cfg = cfg.model_copy(update={"train": cfg.train.model_copy(update={
        "device": str(device), "out_dir": tempfile.mkdtemp(prefix="fadepth-probe-"), "progress": False})})
    torch.cuda.reset_peak_memory_stats(device)
    trainer = Trainer(cfg)
    dataset = build_dataset(cfg.data, "train", augment=cfg.data.augment.enabled,
                            color_level=trainer.objective.needs_color_level)
    stream = batches(dataset, cfg, 0, device)
    for _ in range(2):
        trainer.train_step(next(stream))
    torch.cuda.synchronize(device)
    peak = torch.cuda.max_memory_allocated(device)
    total = torch.cuda.get_device_properties(device).total_memory
    del trainer, stream
    torch.cuda.empty_cache()
    return peak, total


def auto_workers_per_gpu(plan, gpu_ids: list[str]) -> int:
    """Measure the first cell's run on the first GPU and print the choice (one line)."""
    cell = plan.cells[0]
    scheme = cell.scheme
    cfg = plan.spec.resolve(scheme, cell.seed, plan.profile, plan.extra)
    peak, total = measure_run_peak(cfg, gpu_ids[0])
    cores = os.cpu_count() or 1
    chosen = choose_workers_per_gpu(peak, total, cores, len(gpu_ids))
    print(f"workers per GPU: {chosen} (one {scheme} run peaks at {peak / GIB:.2f} GiB of {total / GIB:.0f} GiB; "
          f"{cores} CPU cores over {len(gpu_ids)} GPU(s); --workers-per-gpu N to choose)", flush=True)
    return chosen
