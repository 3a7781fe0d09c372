"""Exact overhead counts of a training step and a deployed forward (no timing: the same numbers on any machine).

Per step (after one warm-up step), split into forward + loss, backward, optimizer and the rest of the step:
aten ops, host syncs, and "kernels" (ops that are not views or metadata: what a GPU launches), for

* ``synthetic``: the `synthetic` profile's step (SmallDepth + L_cr, 64x208, batch 4, every L_cr term on);
* ``kitti``: the KITTI-size recipe (128x416, batch 8, L_py per-level over lr/hr/flip/color + APX from an
  untrained HQDecv2), on synthetic data (``--skip-kitti`` leaves it out: it needs ~6 GB and a minute on CPU).

Then ops per deployed (folded) forward at 128x416, batch 1, for every depth model, and graph breaks under
``torch._dynamo.explain`` for the depth net, the pose net and the synthetic step's forward + objective.

Last line:

    step_ops=<n> step_syncs=<n> fwd_ops_smalldepth=<n> fwd_ops_rn18=<n> graph_breaks=<n>

(step_* for the synthetic step outside the optimizer; graph_breaks summed over the three explains.)

Usage: python benchmarks/bench_overhead.py [--skip-kitti] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

from fadepth.config import load_config  # noqa: E402
from fadepth.opcount import PHASES, count_forward, count_step  # noqa: E402

SYNTHETIC = ["loss.cr.warmup_fraction=0"]
KITTI_SIZE = ["data.height=128", "data.width=416", "train.batch_size=8", "loss.cr.warmup_fraction=0",
              "loss.pyramid.enabled=true", "loss.pyramid.mode=per_level", "loss.pyramid.lr.enabled=true",
              "loss.pyramid.hr.enabled=true", "loss.pyramid.flip.enabled=true", "loss.pyramid.color.enabled=true",
              "loss.apx.enabled=true", "loss.apx.allow_random_teacher=true"]


def step_trainer(overrides: list[str], device: str):
    from torch.utils.data import default_collate

    from fadepth.data import build_dataset
    from fadepth.train import SeededSamples, Trainer

    cfg = load_config(ROOT / "ablations/base/synthetic.yaml",
                      overrides=[*overrides, f"train.device={device}", f"train.out_dir={tempfile.mkdtemp()}"])
    trainer = Trainer(cfg)
    data = SeededSamples(build_dataset(cfg.data, "train", augment=cfg.data.augment.enabled,
                                       color_level=trainer.objective.needs_color_level))
    batch = default_collate([data[(i, i)] for i in range(cfg.train.batch_size)])
    trainer.train_step(batch)  # lazy initialisation is not part of a step
    return trainer, batch


def report_step(name: str, overrides: list[str], device: str):
    trainer, batch = step_trainer(overrides, device)
    counts = count_step(trainer, batch)
    print(f"\n{name} step ({trainer.cfg.data.height}x{trainer.cfg.data.width}, batch {trainer.cfg.train.batch_size})")
    print(f"{'phase':<10} {'ops':>7} {'kernels':>8} {'syncs':>6}")
    for phase in PHASES:
        print(f"{phase:<10} {counts.ops[phase]:>7} {counts.kernels[phase]:>8} {counts.syncs[phase]:>6}")
    print(f"{'outside':<10} {counts.outside_optimizer(counts.ops):>7} {counts.outside_optimizer(counts.kernels):>8} "
          f"{counts.outside_optimizer(counts.syncs):>6}   (the step without the optimizer)")
    print("top ops:", ", ".join(f"{k} {v}" for k, v in counts.by_name.most_common(10)))
    return trainer, batch, counts


def deployed_forward_ops(device: str) -> dict[str, int]:
    from fadepth.models import create, deploy

    ops = {}
    for name in ("smalldepth", "rn18", "mobilenetv3"):
        net = deploy(create(name).eval()).to(device)
        ops[name] = count_forward(net, torch.rand(1, 3, 128, 416, device=device))
    print("\ndeployed forward ops at 128x416, batch 1:", ", ".join(f"{k} {v}" for k, v in ops.items()))
    return ops


def graph_breaks(trainer, batch) -> int:
    import torch._dynamo as dynamo

    from fadepth.train import to_device

    device_batch = to_device(batch, trainer.device)
    frames = device_batch["images"][:, 0]
    pair = torch.cat([frames, frames], dim=1)
    checks = {"depth net": (trainer.depth_net, (frames,)), "pose net": (trainer.pose_net, (pair,)),
              "forward + objective": (trainer.forward_loss, (device_batch,))}
    total = 0
    for name, (fn, args) in checks.items():
        dynamo.reset()
        explained = dynamo.explain(fn)(*args)
        total += explained.graph_break_count
        reasons = "; ".join(str(b.reason)[:90] for b in explained.break_reasons[:3])
        print(f"graph breaks, {name}: {explained.graph_break_count} ({explained.graph_count} graphs)"
              + (f": {reasons}" if reasons else ""))
    dynamo.reset()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-kitti", action="store_true", help="leave out the KITTI-size recipe")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (counts are taken on this device)")
    args = parser.parse_args()
    trainer, batch, synthetic = report_step("synthetic", SYNTHETIC, args.device)
    if not args.skip_kitti:
        report_step("kitti-size", KITTI_SIZE, args.device)
    fwd = deployed_forward_ops(args.device)
    breaks = graph_breaks(trainer, batch)
    print(f"step_ops={synthetic.outside_optimizer(synthetic.ops)} "
          f"step_syncs={synthetic.outside_optimizer(synthetic.syncs)} fwd_ops_smalldepth={fwd['smalldepth']} "
          f"fwd_ops_rn18={fwd['rn18']} graph_breaks={breaks}")


if __name__ == "__main__":
    main()
