#!/usr/bin/env bash
# One-shot GPU check: one call of at most ~8 minutes on one GPU with nothing else running.
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]
#
# One SUMMARY line per figure (full logs under OUT_DIR, default a fresh temporary folder):
#   1. step        single-process it/s of the `synthetic` step (SmallDepth + L_cr, 64x208, batch 4) in fp32, bf16,
#                  CUDA graphs (fp32 and bf16) and train.compile; benchmarks/bench_gpu_step.py --part step
#   2. step_kitti  the same for the KITTI-size recipe (128x416, batch 8, L_py per-level + APX): fp32, bf16, graphs
#   3. workers     total it/s of 1, 4 and 8 processes on the GPU, each running the synthetic step in CUDA graphs
#   4. fps         deployed SmallDepth and RN18 at 128x416, batch 1 / 8 / 32, eager and CUDA-graph replay
#   5. overhead    benchmarks/bench_overhead.py's line (exact op / sync / graph-break counts, taken on the CPU)
# Needs torch, pydantic, pyyaml, pillow, timm, tqdm (no MLflow / Optuna). A machine without CUDA prints
# "no CUDA device: nothing to check" and exits 0. Exit status: number of failed checks.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MLFLOW_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
PY=${PYTHON:-python}

if ! "$PY" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "no CUDA device: nothing to check"
  exit 0
fi

OUT=${1:-$(mktemp -d -t fadepth-gpu-check.XXXXXX)}
mkdir -p "$OUT"
failed=0
"$PY" -c "import torch; print(f'gpu_check: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}')"
echo "gpu_check: logs in $OUT"

run_check() {  # name, command...: log to OUT/name.log, print the summary line(s) the command prints
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then
    grep '^SUMMARY ' "$OUT/$name.log" | sed "s/^SUMMARY /$name: /"
    echo "$name: ok ($((SECONDS - t0)) s)"
  else
    failed=$((failed + 1))
    grep '^SUMMARY ' "$OUT/$name.log" | sed "s/^SUMMARY /$name: /"
    echo "$name: FAILED after $((SECONDS - t0)) s (last lines of $OUT/$name.log):"
    tail -n 5 "$OUT/$name.log" | sed 's/^/    /'
  fi
}

workers_check() {  # total it/s of N concurrent single-step processes on GPU 0
  for n in 1 4 8; do
    local pids=()
    for i in $(seq "$n"); do
      "$PY" benchmarks/bench_gpu_step.py --part worker --modes cuda_graphs --seconds 15 >"$OUT/worker_${n}_$i.log" 2>&1 &
      pids+=($!)
    done
    wait "${pids[@]}"
    "$PY" - "$OUT" "$n" <<'PYEOF' || return 1
import sys
from pathlib import Path

out, n = Path(sys.argv[1]), int(sys.argv[2])
rates = [float(line.split()[1]) for i in range(1, n + 1)
         for line in (out / f"worker_{n}_{i}.log").read_text().splitlines() if line.startswith("WORKER ")]
if len(rates) != n:
    sys.exit(f"{n - len(rates)} of {n} workers gave no rate")
print(f"SUMMARY {n} workers: {sum(rates):.0f} it/s in total ({min(rates):.1f}-{max(rates):.1f} it/s each)")
PYEOF
  done
}

overhead_check() {
  "$PY" benchmarks/bench_overhead.py --skip-kitti | tee "$OUT/overhead.txt" || return 1
  echo "SUMMARY $(tail -n 1 "$OUT/overhead.txt")"
}

run_check step "$PY" benchmarks/bench_gpu_step.py --part step --recipes synthetic \
  --modes fp32,bf16,cuda_graphs,bf16_cuda_graphs,compile
run_check step_kitti "$PY" benchmarks/bench_gpu_step.py --part step --recipes kitti --modes fp32,bf16,cuda_graphs
run_check workers workers_check
run_check fps "$PY" benchmarks/bench_gpu_step.py --part fps
run_check overhead overhead_check
echo "gpu_check: $failed check(s) failed"
exit "$failed"
