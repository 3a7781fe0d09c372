"""The paper's training recipes side by side on synthetic scenes, at equal iterations.

1. trains an HQDecv2 teacher with L_cr;
2. trains SmallDepth with L_cr, with L_py (all pyramid levels, Table IX weights), and with
   L_cr + L_apx distilled from that teacher, each for the same number of iterations and seeds;
3. prints AbsRel (and the other metrics) of each on the synthetic test set.

No threshold: this is an honest measurement at toy scale, not a claim about KITTI.  Last line:

    abs_rel teacher=<t> cr=<a> py=<b> cr_apx=<c> seeds=<s>

Usage: python benchmarks/bench_recipes.py [--iterations N] [--teacher-iterations N] [--seeds 0,1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from fadepth.config import load_config
from fadepth.train import train

RECIPES = {
    "cr": [],
    "py": ["loss.pyramid.enabled=true", "loss.pyramid.lr.enabled=true", "loss.pyramid.hr.enabled=true",
           "loss.pyramid.flip.enabled=true", "loss.pyramid.color.enabled=true"],
    "cr_apx": ["loss.apx.enabled=true"],
}


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--iterations", type=int, default=300)
    p.add_argument("--teacher-iterations", type=int, default=300)
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=224)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seeds", default="0")
    p.add_argument("--out", default="bench_out/recipes")
    return p.parse_args()


def common(args, out: Path, seed: int, iterations: int) -> list[str]:
    return [f"data.height={args.height}", f"data.width={args.width}", f"train.batch_size={args.batch}",
            f"train.iterations={iterations}", f"train.seed={seed}", f"train.out_dir={out}",
            "optim.lr=4e-4", "train.log_every=25"]


def main() -> None:
    args = parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    root = Path(args.out)
    t0 = time.perf_counter()
    teacher_cfg = load_config(overrides=common(args, root / "teacher", seeds[0], args.teacher_iterations)
                              + ["model.name=hqdecv2"])
    teacher = train(teacher_cfg, resume=False)
    print(f"teacher hqdecv2: abs_rel={teacher.metrics['abs_rel']:.4f} ({teacher.checkpoint})")

    results: dict[str, list[float]] = {name: [] for name in RECIPES}
    for seed in seeds:
        for name, overrides in RECIPES.items():
            extra = list(overrides)
            if name == "cr_apx":
                extra.append(f"loss.apx.teacher_checkpoint={teacher.checkpoint}")
            cfg = load_config(overrides=common(args, root / f"{name}_s{seed}", seed, args.iterations) + extra)
            metrics = train(cfg, resume=False).metrics
            results[name].append(metrics["abs_rel"])
            print(f"seed {seed} {name:<7} " + "  ".join(f"{k}={metrics[k]:.4f}" for k in
                                                        ("abs_rel", "sq_rel", "rmse", "rmse_log", "a1")))
    mean = {k: statistics.fmean(v) for k, v in results.items()}
    (root / "results.json").write_text(json.dumps({"teacher": teacher.metrics, "students": results}, indent=2))
    print(f"{args.iterations} student iterations, {args.teacher_iterations} teacher iterations, "
          f"{args.height}x{args.width}, batch {args.batch}, {(time.perf_counter() - t0) / 60:.1f} min")
    print(f"abs_rel teacher={teacher.metrics['abs_rel']:.4f} cr={mean['cr']:.4f} py={mean['py']:.4f} "
          f"cr_apx={mean['cr_apx']:.4f} seeds={args.seeds}")


if __name__ == "__main__":
    main()
