"""Diagnostic: does depth learn when the pose is known? (separates depth learning from pose learning)

Trains SmallDepth with L_cr on synthetic scenes exactly as `fadepth train` does, except that the pose
network's output is replaced by the renderer's ground-truth relative poses T_target->source, with the
translation divided by `--scale` (20 by default) so that the implied depth range sits inside eq. 12's
sigmoid range.  Prints the validation AbsRel every 50 iterations.  Augmentation is off (a flip would
change the true pose).  A diagnostic, not part of the product: it patches `fadepth.losses.cr` in-process.

Usage: python benchmarks/diagnose_oracle_pose.py [--iterations 200] [key=value ...]
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

import fadepth.losses.cr as cr_module
from fadepth.config import load_config
from fadepth.data import build_dataset, build_test_set
from fadepth.data.synthetic import SyntheticScenes
from fadepth.evaluation import evaluate_model
from fadepth.train import Trainer, batches


def true_poses(scenes: SyntheticScenes, ids: list[str], frame_ids: list[int], scale: float) -> list[torch.Tensor]:
    """Ground-truth T_target->source for every source frame id, batched, in `frame_ids` order."""
    out = []
    for fid in (f for f in frame_ids if f != 0):
        mats = []
        for sample_id in ids:
            _, _, seq, frame = sample_id.split("/")
            target = scenes.render(int(seq), int(frame)).pose
            source = scenes.render(int(seq), int(frame) + fid).pose
            T = np.linalg.inv(source) @ target
            T[:3, 3] /= scale
            mats.append(torch.from_numpy(T).float())
        out.append(torch.stack(mats))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=200)
    p.add_argument("--scale", type=float, default=20.0)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    cfg = load_config(overrides=["data.height=64", "data.width=208", "train.batch_size=4", "optim.lr=4e-4",
                                 f"train.iterations={args.iterations}", "train.out_dir=bench_out/oracle_pose",
                                 "train.progress=false", "eval.max_images=40", "data.augment.enabled=false",
                                 *args.overrides])
    trainer = Trainer(cfg)
    scenes = SyntheticScenes(cfg.data.synthetic, cfg.data.height, cfg.data.width, "train")
    queue: list[torch.Tensor] = []
    cr_module.pose_vec_to_mat = lambda vec, invert=False: queue.pop(0)  # CrLoss asks once per source
    stream = batches(build_dataset(cfg.data, "train", augment=False), cfg, 0)
    val = build_test_set(cfg.data, cfg.eval.model_copy(update={"split": "val"}))
    for it in range(1, args.iterations + 1):
        batch = next(stream)
        queue[:] = true_poses(scenes, batch["id"], cfg.data.frame_ids, args.scale)
        loss = float(trainer.train_step(batch)["loss"])
        if it % 50 == 0:
            abs_rel = evaluate_model(trainer.depth_net, val, align="median", device="cpu")["abs_rel"]
            print(f"iteration {it} loss {loss:.4f} val abs_rel {abs_rel:.4f}", flush=True)


if __name__ == "__main__":
    main()
