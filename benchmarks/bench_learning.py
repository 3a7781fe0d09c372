"""Does the pipeline learn depth? SmallDepth trained from scratch on synthetic scenes, CPU.

Prints the 7 metrics of (1) the untrained network, (2) the best constant-depth prediction (a constant
disparity map, median-scaled per image like every prediction: i.e. each image's GT median), and (3) the
trained network, all on the synthetic test set with exact ground truth, and saves the training curve
(loss, and validation AbsRel every ``--val-every`` iterations beside the constant prediction's) as a PNG.
Last line:

    abs_rel untrained=<x> constant=<y> trained=<z> ratio_to_constant=<z/y>

The run is the ``synthetic`` profile of the sweep specs (``ablations/base/synthetic.yaml``: size, iterations,
LR, validation interval) unless ``--profile none`` (the package defaults); ``--iterations`` etc. override it.

Usage: python benchmarks/bench_learning.py [--profile synthetic|none] [--iterations N] [--height H --width W]
       [--out DIR] [key=value ...]
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fadepth.config import load_config

PROFILES = {"synthetic": Path(__file__).resolve().parents[1] / "ablations" / "base" / "synthetic.yaml", "none": None}
from fadepth.data import build_test_set
from fadepth.evaluation import constant_depth_metrics, evaluate_model
from fadepth.models import build_depth_model
from fadepth.train import train


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=sorted(PROFILES), default="synthetic",
                   help="run settings: the sweep specs' synthetic profile (default) or the package defaults")
    p.add_argument("--iterations", type=int)
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--batch", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-every", type=int, help="validation AbsRel for the curve (0 = off)")
    p.add_argument("--out", default="bench_out/learning")
    p.add_argument("overrides", nargs="*", help="extra dotted config overrides")
    return p.parse_args()


class ValidationCurve:
    """Trainer callback: validation AbsRel at every periodic evaluation (the final test one is ``on_test``)."""

    def __init__(self):
        self.points = []

    def on_eval(self, iteration: int, metrics: dict[str, float]) -> None:
        self.points.append((iteration, metrics["abs_rel"]))


def save_curve(history: list[dict], val: list[tuple[int, float]], val_constant: float, warmup: float,
               path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = [h["iteration"] for h in history]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(10, 3.5))
    ax.plot(its, [h["loss"] for h in history], lw=1)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (L_cr)")
    ax.set_title("SmallDepth on synthetic scenes")
    if val:
        bx.plot(*zip(*val), marker="o", label="SmallDepth")
    bx.axhline(val_constant, color="gray", ls="--", label="best constant depth")
    bx.set_xlabel("iteration")
    bx.set_ylabel("validation AbsRel (median-scaled)")
    if warmup > 0:
        for axis in (ax, bx):
            axis.axvline(warmup, color="tab:orange", ls=":", label="end of L_cr warm-up")
    bx.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    out = Path(args.out)
    given = {"train.iterations": args.iterations, "data.height": args.height, "data.width": args.width,
             "train.batch_size": args.batch, "optim.lr": args.lr, "train.val_every": args.val_every}
    cfg = load_config(PROFILES[args.profile], overrides=[
        *(f"{k}={v}" for k, v in given.items() if v is not None), f"train.seed={args.seed}",
        f"train.out_dir={out}", "train.log_every=10", "train.progress=true", *args.overrides,
    ])
    print(f"torch threads: {torch.get_num_threads()}, config digest {cfg.digest()[:12]}")
    test_set = build_test_set(cfg.data, cfg.eval)
    print(f"synthetic test set: {len(test_set)} images, protocol {test_set.protocol}")

    torch.manual_seed(args.seed)
    untrained = evaluate_model(build_depth_model(cfg.model), test_set, align="median", device="cpu")
    constant = constant_depth_metrics(test_set)
    val_set = build_test_set(cfg.data, cfg.eval.model_copy(update={"split": "val"}))
    val_constant = constant_depth_metrics(val_set)["abs_rel"]

    t0 = time.perf_counter()
    curve = ValidationCurve()
    result = train(cfg, callbacks=[curve], resume=False)
    minutes = (time.perf_counter() - t0) / 60
    warmup_end = cfg.loss.cr.warmup_fraction * cfg.train.iterations
    save_curve(result.history, curve.points, val_constant, warmup_end, out / "training_curve.png")

    for name, m in (("untrained", untrained), ("constant", constant), ("trained", result.metrics)):
        print(f"{name:<10} " + "  ".join(f"{k}={m[k]:.4f}" for k in ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1", "a2", "a3")))
    print(f"profile {args.profile}: trained {cfg.train.iterations} iterations at {cfg.data.height}x{cfg.data.width}, "
          f"batch {cfg.train.batch_size}, LR {cfg.optim.lr} "
          f"in {minutes:.1f} min; curve: {out / 'training_curve.png'}")
    (out / "metrics.json").write_text(json.dumps(
        {"untrained": untrained, "constant": constant, "trained": result.metrics, "minutes": minutes,
         "validation_abs_rel": curve.points, "validation_constant_abs_rel": val_constant}, indent=2))
    z, y = result.metrics["abs_rel"], constant["abs_rel"]
    print(f"abs_rel untrained={untrained['abs_rel']:.4f} constant={y:.4f} trained={z:.4f} ratio_to_constant={z / y:.3f}")


if __name__ == "__main__":
    main()
