"""Side-by-side inference speed (Table IV protocol): SmallDepth, deployed SmallDepth+ETM, RN18, MobileNetV3.

All models are deployed (ETM and BN folded), eval, no_grad, batch 1. Repetitions are interleaved (one
forward of each model per round) and the median time is reported. Both memory formats (contiguous and
channels_last) are tried on every model for a few rounds; the one with the lower summed median is kept
for all models (design note section 3.3: channels_last helps the depthwise convs on CPU).

    python benchmarks/bench_fps.py --reps 30 [--height 128 --width 416 --device auto]

The last line is `smalldepth_vs_rn18=<ratio> etm_deployed_vs_plain=<ratio>` (FPS ratios).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from fadepth.models import create
from fadepth.models.deploy import deploy
from fadepth.utils import resolve_device

MODELS = {  # label: (registry name, options)
    "smalldepth": ("smalldepth", {}),
    "smalldepth_etm_deployed": ("smalldepth", {"etm": True}),
    "rn18": ("rn18", {}),
    "mobilenetv3": ("mobilenetv3", {}),
}
FORMATS = {"contiguous": torch.contiguous_format, "channels_last": torch.channels_last}


def build(device: torch.device, memory_format: torch.memory_format) -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {label: deploy(create(name, **opts)).to(device, memory_format=memory_format)
            for label, (name, opts) in MODELS.items()}


def timed_forward(model: torch.nn.Module, image: torch.Tensor, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    model(image)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def median_times(models: dict, image: torch.Tensor, device: torch.device, reps: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        for model in models.values():
            model(image)
    samples = {label: [] for label in models}
    for _ in range(reps):  # interleaved: every model once per round
        for label, model in models.items():
            samples[label].append(timed_forward(model, image, device))
    return {label: statistics.median(times) for label, times in samples.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--reps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    print(f"device={device} threads={torch.get_num_threads()} input=1x3x{args.height}x{args.width} "
          f"torch={torch.__version__}")
    trial_reps = max(3, args.reps // 5)
    totals = {}
    for fmt_name, fmt in FORMATS.items():
        image = torch.rand(1, 3, args.height, args.width, device=device).contiguous(memory_format=fmt)
        totals[fmt_name] = sum(median_times(build(device, fmt), image, device, trial_reps, args.warmup).values())
        print(f"memory format trial {fmt_name}: summed median {1e3 * totals[fmt_name]:.2f} ms")
    fmt_name = min(totals, key=totals.get)
    fmt = FORMATS[fmt_name]
    print(f"memory format used for all models: {fmt_name}")

    models = build(device, fmt)
    image = torch.rand(1, 3, args.height, args.width, device=device).contiguous(memory_format=fmt)
    times = median_times(models, image, device, args.reps, args.warmup)
    fps = {label: 1.0 / t for label, t in times.items()}
    for label in MODELS:
        ratio = fps[label] / fps["rn18"]
        print(f"{label:26s} {1e3 * times[label]:8.2f} ms  {fps[label]:8.1f} FPS  x{ratio:.2f} vs rn18")
    print(f"smalldepth_vs_rn18={fps['smalldepth'] / fps['rn18']:.3f} "
          f"etm_deployed_vs_plain={fps['smalldepth_etm_deployed'] / fps['smalldepth']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
