"""Short learning probe (issue 11): train N iterations, print validation AbsRel and the pose net's mean |t|.

One hypothesis per run, e.g.

    python benchmarks/probe_learning.py 150 50 base
    python benchmarks/probe_learning.py 150 50 lr1e3 optim.lr=1e-3
    python benchmarks/probe_learning.py 150 50 slow data.synthetic.speed_m_per_frame=0.4
    python benchmarks/probe_learning.py 150 50 t3 model.pose_translation_scale=0.03
    python benchmarks/probe_learning.py 900 100 base --profile synthetic --stop 300 \
        model.start_depth=null model.pose_translation_scale=0.01

64x208, batch 4, LR 4e-4 unless overridden (``--profile synthetic``: ablations/base/synthetic.yaml underneath;
``--stop N``: stop after N of the run's iterations, its schedules unchanged); every `every` iterations one line
``[tag] it I val V loss L |t| tx ty tz`` (|t| averaged over the pose outputs since the last line), then
``[tag] RESULT [[it, val], ...] test T``. The pose translation scale is a config value
(``model.pose_translation_scale``, monodepth2's 0.01).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from fadepth.config import load_config
from fadepth.data import build_dataset
from fadepth.train import Trainer, batches


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("iterations", type=int)
    p.add_argument("every", type=int)
    p.add_argument("tag")
    p.add_argument("--profile", choices=("none", "synthetic"), default="none")
    p.add_argument("--stop", type=int, help="stop after this many iterations (schedules keep `iterations`)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_intermixed_args()
    base = Path(__file__).resolve().parents[1] / "ablations" / "base" / "synthetic.yaml"
    cfg = load_config(base if args.profile == "synthetic" else None, overrides=[
        f"train.iterations={args.iterations}", "data.height=64", "data.width=208", "train.batch_size=4",
        "optim.lr=4e-4", "train.seed=0", f"train.out_dir=bench_out/probe_{args.tag}", "train.val_every=0",
        "train.progress=false", *args.overrides,
    ])
    trainer = Trainer(cfg)
    ts: list[torch.Tensor] = []  # |t| of every pose output row since the last line (one or more calls a step)
    trainer.pose_net.register_forward_hook(lambda m, i, o: ts.append(o.detach()[:, 3:].abs()))
    data = build_dataset(cfg.data, "train", augment=cfg.data.augment.enabled)
    t0, curve = time.time(), []
    for batch in batches(data, cfg, 0):
        if trainer.iteration >= (args.stop or args.iterations):
            break
        scalars = trainer.train_step(batch)
        if trainer.iteration % args.every == 0:
            val = trainer.evaluate("val")["abs_rel"]
            t = torch.cat(ts).mean(0).tolist()
            ts.clear()
            curve.append((trainer.iteration, round(val, 4)))
            print(f"[{args.tag}] it {trainer.iteration} val {val:.4f} loss {scalars['loss']:.4f} "
                  f"|t| {t[0]:.4f} {t[1]:.4f} {t[2]:.4f} {time.time() - t0:.0f}s", flush=True)
    print(f"[{args.tag}] RESULT {json.dumps(curve)} test {trainer.evaluate('test')['abs_rel']:.4f}", flush=True)


if __name__ == "__main__":
    main()
