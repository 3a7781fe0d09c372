"""Side-by-side inference speed (Table IV protocol) across runtimes: SmallDepth, deployed SmallDepth+ETM, RN18,
MobileNetV3, each in PyTorch eager (NCHW and channels_last), torch.compile and ONNX Runtime (on CUDA also
torch.compile with CUDA graphs: `--runtimes ...,compile_cudagraphs`).

Every model is the deployed one (ETM and BN folded) wrapped as exported (`fadepth.export.FullResolutionDisparity`:
image -> full-resolution disparity), eval, no_grad, batch 1. All (model, runtime) pairs run in one interleaved
loop (one forward of each pair per round, warm-up rounds first) and the median time is reported, so a load
change on a shared machine hits every pair alike. ONNX Runtime: the file `fadepth export` writes (opset 18),
all graph optimisations, intra-op threads = torch's thread count (= cores, or --threads), and intra-op spinning off
(`session.intra_op.allow_spinning=0`): spinning threads keep burning the cores after each run and slow down
whichever runtime is timed next. torch.compile: inductor, default mode, NCHW input.

    python benchmarks/bench_fps.py [--reps 30 --height 128 --width 416 --device auto --runtimes ...]

Last line: `smalldepth_vs_rn18=<r> etm_deployed_vs_plain=<r> smalldepth_vs_rn18_ort=<r>
best_smalldepth_fps=<fps>@<runtime>` (the first two in PyTorch eager, the better memory format).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import torch

from fadepth.export import ExportRecord, OPSET, deployed_module, export_onnx, ort_session
from fadepth.models import create
from fadepth.utils import resolve_device

MODELS = {  # label: (registry name, options)
    "smalldepth": ("smalldepth", {}),
    "smalldepth_etm_deployed": ("smalldepth", {"etm": True}),
    "rn18": ("rn18", {}),
    "mobilenetv3": ("mobilenetv3", {}),
}
RUNTIMES = ("eager_nchw", "eager_channels_last", "compile", "ort")
CUDA_RUNTIMES = ("compile_cudagraphs",)  # torch.compile(mode="reduce-overhead"): CUDA graphs
Runner = Callable[[], object]


def eager(module: torch.nn.Module, image: torch.Tensor, channels_last: bool) -> Runner:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    module = module.to(image.device, memory_format=fmt)
    image = image.contiguous(memory_format=fmt)
    return lambda: module(image)


def compiled(module: torch.nn.Module, image: torch.Tensor, mode: str | None = None) -> Runner:
    fn = torch.compile(module.to(image.device), mode=mode)
    for _ in range(3):  # compile (and record the CUDA graph) now, outside the timed loop
        fn(image)
    return lambda: fn(image)


def onnx_runtime(module: torch.nn.Module, image: torch.Tensor, folder: Path, label: str, device: str) -> Runner:
    _, _, h, w = image.shape
    path = export_onnx(module.cpu(), h, w, folder / f"{label}.onnx",
                       ExportRecord("onnx", label, h, w, False, ["disp"], OPSET, "etm" in label))
    session = ort_session(path, device, threads=torch.get_num_threads(), spinning=False)
    feed = {"image": image.cpu().numpy()}
    return lambda: session.run(None, feed)


def unavailable(runtime: str, device: torch.device) -> str | None:
    """Why ``runtime`` cannot run on ``device`` here (None: it can)."""
    if runtime == "ort" and device.type == "cuda":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "the installed onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
    return None


def build_runners(runtimes: list[str], image: torch.Tensor, folder: Path, device: torch.device) -> dict:
    runners = {}
    for label, (name, opts) in MODELS.items():
        for runtime in runtimes:
            t0 = time.perf_counter()
            torch.manual_seed(0)  # the same weights in every runtime
            module = deployed_module(create(name, **opts)).to(device)
            if runtime.startswith("eager"):
                runners[label, runtime] = eager(module, image, channels_last=runtime == "eager_channels_last")
            elif runtime == "compile":
                runners[label, runtime] = compiled(module, image)
            elif runtime == "compile_cudagraphs":
                runners[label, runtime] = compiled(module, image, mode="reduce-overhead")
            else:
                runners[label, runtime] = onnx_runtime(module, image, folder, label, str(device))
            print(f"  ready {label:24s} {runtime:20s} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return runners


def timed(run: Runner, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


@torch.no_grad()
def median_times(runners: dict, device: torch.device, reps: int, warmup: int) -> dict:
    for _ in range(warmup):
        for run in runners.values():
            run()
    samples = {key: [] for key in runners}
    for _ in range(reps):  # interleaved: every (model, runtime) once per round
        for key, run in runners.items():
            samples[key].append(timed(run, device))
    return {key: statistics.median(v) for key, v in samples.items()}


def print_table(fps: dict, runtimes: list[str]) -> None:
    print("\nFPS (batch 1; x = vs rn18 in the same runtime)")
    print(f"{'model':26s}" + "".join(f"{r:>26s}" for r in runtimes))
    for label in MODELS:
        cells = [f"{fps[label, r]:8.1f} (x{fps[label, r] / fps['rn18', r]:4.2f})" for r in runtimes]
        print(f"{label:26s}" + "".join(f"{c:>26s}" for c in cells))
    base = "eager_nchw" if "eager_nchw" in runtimes else runtimes[0]
    print(f"\nspeed-up vs {base}")
    for label in MODELS:
        print(f"{label:26s}" + "".join(f"{fps[label, r] / fps[label, base]:>26.2f}" for r in runtimes))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.split("\n")[2:]))
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=416)
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--reps", type=int, default=30, help="timed rounds (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None,
                        help="intra-op threads of every runtime (default: torch's, = the cores). On a loaded, shared "
                             "machine 1 avoids OpenMP barrier stalls that swamp the comparison")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of %(default)s")
    parser.add_argument("--runtimes", default=",".join(RUNTIMES),
                        help=f"comma-separated subset of %(default)s (on CUDA also {', '.join(CUDA_RUNTIMES)})")
    args = parser.parse_args(argv)
    runtimes = [r for r in args.runtimes.split(",") if r]
    models = [m for m in args.models.split(",") if m]
    if set(models) - set(MODELS) or not {"smalldepth", "rn18"} <= set(models):
        parser.error(f"--models: a subset of {', '.join(MODELS)} holding smalldepth and rn18")
    for label in set(MODELS) - set(models):
        del MODELS[label]
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    allowed = RUNTIMES + (CUDA_RUNTIMES if device.type == "cuda" else ())
    unknown = sorted(set(runtimes) - set(allowed))
    if unknown:
        parser.error(f"--runtimes: unknown on {device.type}: {', '.join(unknown)}; expected a subset of "
                     f"{', '.join(allowed)}")
    for runtime in list(runtimes):
        reason = unavailable(runtime, device)
        if reason:
            print(f"note: skipping runtime {runtime}: {reason}")
            runtimes.remove(runtime)
    if not runtimes:
        parser.error("--runtimes: none of them can run here")
    print(f"device={device} threads={torch.get_num_threads()} input=1x3x{args.height}x{args.width} "
          f"torch={torch.__version__} runtimes={','.join(runtimes)}")
    image = torch.rand(1, 3, args.height, args.width, device=device)
    with tempfile.TemporaryDirectory() as folder:
        runners = build_runners(runtimes, image, Path(folder), device)
        times = median_times(runners, device, args.reps, args.warmup)
    fps = {key: 1.0 / t for key, t in times.items()}
    print_table(fps, runtimes)

    eager_rt = max((r for r in runtimes if r.startswith("eager")), key=lambda r: fps["smalldepth", r], default=None)
    parts = []
    if eager_rt:
        parts.append(f"smalldepth_vs_rn18={fps['smalldepth', eager_rt] / fps['rn18', eager_rt]:.3f}")
    if eager_rt and "smalldepth_etm_deployed" in MODELS:
        parts.append(f"etm_deployed_vs_plain={fps['smalldepth_etm_deployed', eager_rt] / fps['smalldepth', eager_rt]:.3f}")
    if "ort" in runtimes:
        parts.append(f"smalldepth_vs_rn18_ort={fps['smalldepth', 'ort'] / fps['rn18', 'ort']:.3f}")
    best = max(runtimes, key=lambda r: fps["smalldepth", r])
    parts.append(f"best_smalldepth_fps={fps['smalldepth', best]:.1f}@{best}")
    print(" ".join(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
