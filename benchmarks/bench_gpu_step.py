"""Training-step and inference throughput on one GPU, side by side in one process (``gpu_check.sh`` calls it).

``--part step``: iterations/s of ``Trainer.train_step`` on a fixed batch (no data loading), for the
`synthetic` step (SmallDepth + L_cr, 64x208, batch 4) and the KITTI-size recipe (128x416, batch 8, L_py
per-level + APX, synthetic data), in fp32, bf16, train.compile and train.cuda_graphs. Prints one
``SUMMARY step <recipe> <mode> <it/s>`` line each.
``--part worker``: one process's it/s of the synthetic step in CUDA graphs for ``--seconds`` (the workers
check starts several at once and adds them up).
``--part fps``: frames/s of the deployed (folded) SmallDepth and RN18 at 128x416, batch 1, 8 and 32: eager and
replayed from a CUDA graph in fp32, and replayed in bf16 with channels-last weights. Prints ``SUMMARY fps <model> b<batch> <runtime> <fps>`` and the ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from bench_overhead import KITTI_SIZE, SYNTHETIC, step_trainer  # noqa: E402

MODES = {"fp32": [], "bf16": ["train.precision=bf16"], "compile": ["train.compile=true"],
         "cuda_graphs": ["train.cuda_graphs=true"], "bf16_cuda_graphs": ["train.precision=bf16", "train.cuda_graphs=true"]}


def steps_per_second(overrides: list[str], warmup: int, seconds: float) -> float:
    trainer, batch = step_trainer(overrides, "cuda")
    for _ in range(warmup):
        trainer.train_step(batch)
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(10):
            trainer.train_step(batch)
        n += 10
        torch.cuda.synchronize()
    rate = n / (time.perf_counter() - t0)
    trainer.read(trainer.train_step(batch))  # the non-finite flag: a fast NaN is not a result
    return rate


def part_step(args) -> None:
    recipes = {"synthetic": SYNTHETIC, "kitti": KITTI_SIZE}
    for recipe in args.recipes.split(","):
        for mode in args.modes.split(","):
            t0 = time.perf_counter()
            try:
                rate = steps_per_second(recipes[recipe] + MODES[mode], args.warmup, args.seconds)
                print(f"SUMMARY step {recipe} {mode} {rate:.1f} it/s (setup+warm-up+timing "
                      f"{time.perf_counter() - t0:.0f} s)", flush=True)
            except Exception as exc:  # one failing mode must not hide the others
                print(f"SUMMARY step {recipe} {mode} FAILED: {type(exc).__name__}: {str(exc)[:200]}", flush=True)


def part_worker(args) -> None:
    rate = steps_per_second(SYNTHETIC + MODES[args.modes], args.warmup, args.seconds)
    print(f"WORKER {rate:.2f}", flush=True)


@torch.no_grad()
def fps(net, batch: int, graphs: bool, seconds: float = 2.0, bf16: bool = False) -> float:
    x = torch.rand(batch, 3, 128, 416, device="cuda")
    if bf16:
        net, x = net.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16, cache_enabled=False):
            return net(x)

    if graphs:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                run()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            run()
        run = graph.replay
    for _ in range(10):
        run()
    torch.cuda.synchronize()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for _ in range(20):
            run()
        n += 20
        torch.cuda.synchronize()
    return n * batch / (time.perf_counter() - t0)


def part_fps(args) -> None:
    from fadepth.models import create, deploy

    torch.backends.cudnn.benchmark = True
    nets = {name: deploy(create(name).eval()).cuda() for name in ("smalldepth", "rn18")}
    runtimes = {"eager": (False, False), "cuda_graph": (True, False), "cuda_graph_bf16_nhwc": (True, True)}
    for batch in (1, 8, 32):
        for runtime in args.runtimes.split(","):
            graphs, bf16 = runtimes[runtime]
            rates = {name: fps(net, batch, graphs, bf16=bf16) for name, net in nets.items()}
            for name, rate in rates.items():
                print(f"SUMMARY fps {name} b{batch} {runtime} {rate:.0f}", flush=True)
            print(f"SUMMARY fps ratio b{batch} {runtime} smalldepth/rn18={rates['smalldepth'] / rates['rn18']:.2f}",
                  flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=("step", "worker", "fps"), required=True)
    parser.add_argument("--recipes", default="synthetic,kitti")
    parser.add_argument("--modes", default="fp32,bf16,cuda_graphs,bf16_cuda_graphs,compile")
    parser.add_argument("--runtimes", default="eager,cuda_graph,cuda_graph_bf16_nhwc", help="for --part fps")
    parser.add_argument("--warmup", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to measure")
        return
    tempfile.tempdir = tempfile.mkdtemp()
    {"step": part_step, "worker": part_worker, "fps": part_fps}[args.part](args)


if __name__ == "__main__":
    main()
