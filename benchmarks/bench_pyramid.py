"""One SmallDepth training step with L_cr, L_py (sum mode) and L_py (per-level mode), side by side.

    python benchmarks/bench_pyramid.py --height 128 --width 416 --batch 2 [--steps 2] [--device cpu|cuda]

Every mode runs in a fresh subprocess.  Memory is the step's peak above a baseline that only builds the nets:
on CPU, peak RSS (``ru_maxrss``) of the mode's process minus that of a baseline process; on CUDA,
``torch.cuda.max_memory_allocated`` minus the memory allocated once the nets and inputs are in place.
All four pyramid levels (lr, hr, flip, color) use their config defaults (Table IX weights).
The last line is ``peak_per_level_vs_sum=<ratio> step_time_py_vs_cr=<ratio>``.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MODES = ("baseline", "cr", "py_sum", "py_per_level")


def experiment_config(mode: str, args):
    from fadepth.config import ExperimentConfig

    pyramid = {"enabled": mode.startswith("py"), "mode": "per_level" if mode == "py_per_level" else "sum"}
    for level in ("lr", "hr", "flip", "color"):
        pyramid[level] = {"enabled": True}
    return ExperimentConfig.model_validate({
        "data": {"height": args.height, "width": args.width},
        "loss": {"pyramid": pyramid if mode.startswith("py") else {}},
        "train": {"batch_size": args.batch},
    })


def worker(mode: str, args) -> dict:
    import torch

    from fadepth.losses.objective import build_objective
    from fadepth.models import build_depth_model, build_pose_model

    torch.manual_seed(0)
    device = torch.device(args.device)
    cfg = experiment_config(mode, args)
    depth, pose = build_depth_model(cfg.model).to(device).train(), build_pose_model(cfg.model).to(device).train()
    images = torch.rand(args.batch, 3, 3, args.height, args.width, device=device)
    K = torch.tensor([[0.58 * args.width, 0, 0.5 * args.width], [0, 1.92 * args.height, 0.5 * args.height], [0, 0, 1]])
    batch = {"images": images, "K": K.expand(args.batch, 3, 3).to(device), "id": [str(i) for i in range(args.batch)]}
    if mode == "baseline":
        return {"peak_mb": peak_mb(device, 0.0), "step_s": 0.0}
    objective = build_objective(cfg, depth, device)
    params = list(depth.parameters()) + list(pose.parameters()) + list(objective.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    resident = torch.cuda.memory_allocated(device) if device.type == "cuda" else 0.0
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(args.steps + 1):  # the first step is a warm-up (optimizer state, allocator)
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        out = objective(depth, pose, batch)
        if not out.backward_done:
            out.loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return {"peak_mb": peak_mb(device, resident), "step_s": sum(times[1:]) / args.steps}


def peak_mb(device, resident: float) -> float:
    import torch

    if device.type == "cuda":
        return (torch.cuda.max_memory_allocated(device) - resident) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_mode(mode: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", mode, "--height", str(args.height), "--width", str(args.width),
           "--batch", str(args.batch), "--steps", str(args.steps), "--device", args.device]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"mode {mode} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--width", type=int, default=416)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up step")
    p.add_argument("--device", default="cuda" if _cuda_available() else "cpu")
    p.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args)))
        return 0
    results = {mode: run_mode(mode, args) for mode in MODES}
    base = results["baseline"]["peak_mb"] if args.device == "cpu" else 0.0
    print(f"SmallDepth {args.height}x{args.width}, batch {args.batch}, device {args.device}, "
          f"{args.steps} timed step(s); memory = peak above {'a nets-only process' if base else 'resident nets'}")
    print(f"{'mode':<14}{'step time (s)':>15}{'peak memory (MiB)':>20}")
    for mode in MODES[1:]:
        r = results[mode]
        print(f"{mode:<14}{r['step_s']:>15.3f}{r['peak_mb'] - base:>20.1f}")
    mem = {m: results[m]["peak_mb"] - base for m in MODES[1:]}
    print(f"per-level / sum memory: {mem['py_per_level'] / mem['py_sum']:.3f} (target <= 0.70); "
          f"py_sum / cr time: {results['py_sum']['step_s'] / results['cr']['step_s']:.2f}; "
          f"py_per_level / cr time: {results['py_per_level']['step_s'] / results['cr']['step_s']:.2f}")
    print(f"peak_per_level_vs_sum={mem['py_per_level'] / mem['py_sum']:.3f} "
          f"step_time_py_vs_cr={results['py_sum']['step_s'] / results['cr']['step_s']:.3f}")
    return 0


def _cuda_available() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    raise SystemExit(main())
