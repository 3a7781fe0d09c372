"""Sweep runner benchmark: overhead per trial, and the wall time of ``table_v.yaml --profile smoke``.

* ``overhead_s_per_trial``: ``table_v.yaml --profile smoke`` with zero-iteration trials
  (``--set train.iterations=0 --set eval.max_images=1``: build the nets, evaluate one frame, log) on 1 CPU
  worker. It is the wall time of the whole command divided by the number of trials, so it includes
  launcher start-up, store creation, worker start-up (imports), MLflow / Optuna bookkeeping,
  complexity counting and artifacts.
* ``smoke_wall_s_1w`` / ``smoke_wall_s_2w``: the wall time of the real smoke sweep (8 schemes x 1 seed)
  with 1 and 2 CPU workers, evaluation included.

Every measurement runs in a fresh temporary ``--runs-dir``, with ``OMP_NUM_THREADS=1`` per worker unless set
(on a loaded 2-core machine two torch threads per worker made trials 10x slower).  The last line is exactly
``overhead_s_per_trial=<x> smoke_wall_s_1w=<y> smoke_wall_s_2w=<z>``.

    python benchmarks/bench_sweep.py [--spec ablations/table_v.yaml] [--skip-smoke]
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed_sweep(spec: Path, workers: int, *extra: str) -> float:
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        cmd = [sys.executable, str(REPO / "sweeps" / "run.py"), str(spec), "--profile", "smoke",
               "--workers", str(workers), "--runs-dir", str(Path(tmp) / "runs"), "--no-progress", *extra]
        env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
        env.setdefault("OMP_NUM_THREADS", "1")  # one thread per worker: 2 threads on a shared 2-core box spin
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            logs = "\n".join(p.read_text()[-2000:] for p in (Path(tmp) / "runs" / "logs").rglob("*.log"))
            raise SystemExit(f"sweep failed ({' '.join(cmd)}):\n{proc.stdout}\n{proc.stderr}\n{logs}")
        print(f"  {' '.join(cmd[2:])}: {wall:.1f} s", flush=True)
        return wall


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--spec", default=str(REPO / "ablations" / "table_v.yaml"))
    p.add_argument("--skip-smoke", action="store_true", help="measure the overhead only (smoke walls = nan)")
    args = p.parse_args()
    spec = Path(args.spec).resolve()
    sys.path.insert(0, str(REPO))
    from fadepth.sweep.spec import load_spec

    n_trials = len(load_spec(spec).scheme_names) * len(load_spec(spec).seeds_for("smoke"))
    print(f"{spec.name}: {n_trials} trials per sweep, {os.cpu_count()} CPUs", flush=True)
    overhead = timed_sweep(spec, 1, "--set", "train.iterations=0", "--set", "eval.max_images=1") / n_trials
    wall_1 = wall_2 = float("nan")
    if not args.skip_smoke:
        wall_1 = timed_sweep(spec, 1)
        wall_2 = timed_sweep(spec, 2)
    print(f"overhead_s_per_trial={overhead:.2f} smoke_wall_s_1w={wall_1:.1f} smoke_wall_s_2w={wall_2:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
