"""Training-step time of the current code against a git ref, interleaved in one run; and a step profile.

Both trees run in their own worker subprocess (the ref is checked out with ``git worktree add --detach``
into a temporary folder and imported from there), each with the same config: SmallDepth + the default
pose net, L_cr, batch ``--batch`` at ``--height`` x ``--width``, ``--threads`` torch threads. Each worker
builds its ``Trainer`` and one fixed batch of synthetic snippets, then runs ``Trainer.train_step`` on it
(forward, loss, backward, AdamW, scheduler: no data loading) when told to. The two are driven in turns,
``--rounds`` rounds of ``--steps`` steps each, so a change in machine load hits both alike; the median of
the per-round mean step times is compared. Both print the loss of their first step on the same batch.
Every L_cr term is on from the first timed step (``loss.cr.warmup_fraction=0``: the step of a run after its
warm-up; runs before 2026-11-29 timed the warm-up step, plain L_p + L_s, instead).

A third worker in the same rounds runs the current tree in **monodepth2's plain recipe** on the same batch
(RN18 depth net, the same pose net, L_p with min-reprojection and auto-mask + L_s; no L_d, L_feat, reverse
warps or structure weight: ``MONODEPTH2_PLAIN``), the step the default recipe is held against.

``--breakdown`` instead profiles the current tree only: data (building a batch from the dataset, with
augmentation), depth forward, pose forward, each L_cr part, backward and the optimiser, as a table.

Last line (timing mode):

    default_vs_monodepth2_plain=<current/plain>   (< 1: the default recipe's step is faster)
    step_s ref=<s> current=<s> step_speedup=<ref/current>

Usage: python benchmarks/bench_train_step.py [REF] [--height H --width W] [--batch B] [--threads T]
       python benchmarks/bench_train_step.py --breakdown [--height H --width W]
REF defaults to 5335262 (the code before issue 11: step-time and learning work).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REF = "5335262"
MONODEPTH2_PLAIN = ["model.name=rn18", "loss.cr.depth_consistency=0", "loss.cr.feature=0",
                    "loss.cr.bidirectional=false", "loss.cr.structure_weighting=false"]

WORKER = r"""
import json, sys, time, tempfile, torch
torch.set_num_threads(int(sys.argv[1]))
from fadepth.config import load_config
from fadepth.data import build_dataset
from fadepth.train import Trainer
overrides = json.loads(sys.argv[2])
cfg = load_config(overrides=overrides + [f"train.out_dir={tempfile.mkdtemp()}"])
trainer = Trainer(cfg)
data = build_dataset(cfg.data, "train", augment=False)
items = [data[i] for i in range(cfg.train.batch_size)]
batch = {"images": torch.stack([s["images"] for s in items]), "K": torch.stack([s["K"] for s in items])}
print(json.dumps({"loss": float(trainer.train_step(batch)["loss"])}), flush=True)
for line in sys.stdin:
    n = int(line)
    t0 = time.perf_counter()
    for _ in range(n):
        trainer.train_step(batch)
    print(json.dumps({"step_s": (time.perf_counter() - t0) / n}), flush=True)
"""


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref", nargs="?", default=DEFAULT_REF, help="git ref to compare against")
    p.add_argument("--height", type=int, default=64)
    p.add_argument("--width", type=int, default=208)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--steps", type=int, default=3, help="steps per round and side")
    p.add_argument("--breakdown", action="store_true", help="profile one step of the current tree instead")
    p.add_argument("overrides", nargs="*", help="extra dotted config overrides (both sides)")
    return p.parse_args()


def overrides(args) -> list[str]:
    return [
        "data.dataset=synthetic", f"data.height={args.height}", f"data.width={args.width}",
        f"train.batch_size={args.batch}", "train.device=cpu", "train.iterations=1000", "train.progress=false",
        "loss.cr.warmup_fraction=0", "model.name=smalldepth", *args.overrides,
    ]


class Worker:
    def __init__(self, tree: Path, args, extra: list[str] = ()):
        env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(args.threads))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(args.threads), json.dumps(overrides(args) + list(extra))],
            cwd=tree, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.first_loss = self._read()["loss"]

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker exited with code {self.proc.wait()}")
        return json.loads(line)

    def steps(self, n: int) -> float:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self._read()["step_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        ref_tree = Path(tmp) / "ref"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(ref_tree), args.ref], check=True)
        try:
            workers = {"ref": Worker(ref_tree, args), "current": Worker(ROOT, args),
                       "monodepth2_plain": Worker(ROOT, args, MONODEPTH2_PLAIN)}
            print("first-step loss on the same batch: " + "  ".join(f"{k} {w.first_loss:.7f}" for k, w in workers.items()))
            times = {name: [] for name in workers}
            for r in range(args.rounds):
                for name, w in (workers.items() if r % 2 == 0 else reversed(workers.items())):
                    times[name].append(w.steps(args.steps))
                print(f"round {r + 1}: " + "  ".join(f"{k} {v[-1]:.3f} s/step" for k, v in times.items()), flush=True)
            for w in workers.values():
                w.close()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(ref_tree)], check=False)
    ref, cur, plain = (statistics.median(times[k]) for k in ("ref", "current", "monodepth2_plain"))
    print(f"{args.height}x{args.width}, batch {args.batch}, {args.threads} threads, ref {args.ref}: median of "
          f"{args.rounds} rounds x {args.steps} steps")
    print(f"step_s monodepth2_plain={plain:.4f} default_vs_monodepth2_plain={cur / plain:.3f}")
    print(f"step_s ref={ref:.4f} current={cur:.4f} step_speedup={ref / cur:.3f}")


# ------------------------------------------------------------------------------------- breakdown
class Timer:
    """Wall time per label; wrapped callables add their *own* time (nested wrapped calls excluded)."""

    def __init__(self):
        self.total: dict[str, float] = {}
        self._stack: list[float] = []

    def wrap(self, label: str, fn):
        def timed(*a, **k):
            self._stack.append(0.0)
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                dt = time.perf_counter() - t0
                inner = self._stack.pop()
                self.total[label] = self.total.get(label, 0.0) + dt - inner
                if self._stack:
                    self._stack[-1] += dt

        return timed


def breakdown(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from fadepth.config import load_config
    from fadepth.data import build_dataset
    from fadepth.train import Trainer, batches, seed_everything

    cfg = load_config(overrides=overrides(args) + [f"train.out_dir={tempfile.mkdtemp()}"])
    trainer = Trainer(cfg)
    cr, timer = trainer.objective.cr_loss, Timer()
    trainer.depth_net.forward = timer.wrap("depth forward", trainer.depth_net.forward)
    trainer.pose_net.forward = timer.wrap("pose forward", trainer.pose_net.forward)
    parts = {"_identity_errors": "L_p: identity errors (auto-mask)",
             "_warp_views": "depth, warps, photometric errors (every scale and view at once)",
             "_directional": "min-reprojection, masks (L_p and L_feat)", "_depth_consistency_term": "L_d",
             "_feature_term": "L_feat", "_smoothness_term": "L_s"}
    for name, label in parts.items():
        setattr(cr, name, timer.wrap(label, getattr(cr, name)))
    trainer.objective.forward = timer.wrap("loss: rest", trainer.objective.forward)
    stream = batches(build_dataset(cfg.data, "train", augment=True), cfg, 0)
    next_batch = timer.wrap("data (batch of snippets, augmented)", lambda: next(stream))
    warmup, steps = 2, args.rounds * args.steps
    for i in range(warmup + steps):
        if i == warmup:
            timer.total.clear()
            t0 = time.perf_counter()
        batch = next_batch()
        seed_everything(i)
        trainer.objective.set_progress(i + 500, 1000)  # after the warm-up: every L_cr term on
        trainer.optimizer.zero_grad(set_to_none=True)
        out = trainer.objective(trainer.depth_net, trainer.pose_net, batch)
        timer.wrap("backward", out.loss.backward)()
        timer.wrap("optimiser (AdamW + scheduler)", lambda: (trainer.optimizer.step(), trainer.scheduler.step()))()
    wall = (time.perf_counter() - t0) / steps
    print(f"step profile: {args.height}x{args.width}, batch {args.batch}, {args.threads} threads, {steps} steps "
          f"(every L_cr term on), {wall:.3f} s per step including data")
    print("| part | ms / step | share |\n|---|---|---|")
    for label, total in sorted(timer.total.items(), key=lambda kv: -kv[1]):
        print(f"| {label} | {1000 * total / steps:.0f} | {100 * total / steps / wall:.0f} % |")
    other = wall - sum(timer.total.values()) / steps
    print(f"| other (zero_grad, Python) | {1000 * other:.0f} | {100 * other / wall:.0f} % |")


def main() -> None:
    args = parse_args()
    breakdown(args) if args.breakdown else compare(args)


if __name__ == "__main__":
    main()
