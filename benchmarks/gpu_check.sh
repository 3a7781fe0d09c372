#!/usr/bin/env bash
# One-shot GPU check (aim: under 8 minutes on one GPU). Run once on a machine with CUDA:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]
#
# Checks, one summary line each (full logs under OUT_DIR, default a fresh temporary folder):
#   1. fps        `fadepth complexity` FPS at batch 1 on CUDA (eager), and bench_fps.py on CUDA: eager,
#                 torch.compile, torch.compile with CUDA graphs (reduce-overhead), ONNX Runtime
#   2. train      500-iteration synthetic training in fp32 and in bf16: iterations/s and final loss
#   3. sweep      2-scheme x 2-seed smoke sweep (Table V) with --workers-per-gpu 2 on one GPU
#   4. export     fadepth export (ONNX) of the bf16 run's checkpoint; predict --model (ONNX Runtime, CUDA
#                 provider when onnxruntime-gpu is installed) against predict --checkpoint on CUDA
# A machine without CUDA prints "no CUDA device: nothing to check" and exits 0. Exit status: number of
# failed checks.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MLFLOW_DISABLE_TELEMETRY=true HF_HUB_OFFLINE=1
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
    echo "$name: FAILED after $((SECONDS - t0)) s (last lines of $OUT/$name.log):"
    tail -n 5 "$OUT/$name.log" | sed 's/^/    /'
  fi
}

fps_check() {
  "$PY" -m fadepth complexity --models smalldepth,rn18,mobilenetv3 --device cuda --reps 100 \
    --json "$OUT/complexity.json" || return 1
  "$PY" -c "import json; r = json.load(open('$OUT/complexity.json')); \
print('SUMMARY complexity eager ' + ' '.join(f\"{x['name']}={x['fps']:.0f}fps\" for x in r))" || return 1
  "$PY" benchmarks/bench_fps.py --device cuda --reps 50 --models smalldepth,rn18 \
    --runtimes eager_nchw,eager_channels_last,compile,compile_cudagraphs,ort | tee "$OUT/bench_fps.txt" || return 1
  echo "SUMMARY bench_fps $(tail -n 1 "$OUT/bench_fps.txt")"
}

train_check() {
  for precision in fp32 bf16; do
    "$PY" - "$precision" "$OUT/train_$precision" <<'EOF' || return 1
import sys
from fadepth.config import load_config
from fadepth.train import train

precision, out = sys.argv[1:]
cfg = load_config(overrides=[f"train.precision={precision}", "train.device=cuda", "train.iterations=500",
                             "train.progress=false", "train.log_every=50", "eval.max_images=20",
                             "data.num_workers=4", f"train.out_dir={out}"])
r = train(cfg, resume=False)
print(f"SUMMARY {precision}: {r.iterations / r.seconds:.1f} it/s over {r.iterations} iterations "
      f"(batch {cfg.train.batch_size}, {cfg.data.height}x{cfg.data.width}), final loss "
      f"{r.history[-1]['loss']:.4f}, abs_rel {r.metrics['abs_rel']:.3f}")
EOF
  done
}

sweep_check() {
  "$PY" sweeps/run.py ablations/table_v.yaml --profile smoke --only sch1,sch3 --seeds 0,1 --gpus 0 \
    --workers-per-gpu 2 --set train.device=cuda --runs-dir "$OUT/sweep" --no-progress || return 1
  local logs=("$OUT"/sweep/logs/*/worker-*.log)
  echo "SUMMARY 2 schemes x 2 seeds, ${#logs[@]} workers on GPU 0; results in $OUT/sweep"
}

export_check() {
  local ckpt="$OUT/train_bf16/checkpoint.pt" frames="$OUT/frames"
  [ -f "$ckpt" ] || { echo "no checkpoint from the train check"; return 1; }
  "$PY" - "$frames" <<'EOF' || return 1
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from fadepth.config import SyntheticConfig
from fadepth.data.synthetic import SyntheticScenes

out = Path(sys.argv[1]); out.mkdir(parents=True, exist_ok=True)
scenes = SyntheticScenes(SyntheticConfig(test_sequences=1, frames_per_sequence=4), 375, 1242, "test")
for i in range(4):
    Image.fromarray((scenes.render(0, i).image * 255).astype(np.uint8)).save(out / f"{i:03d}.png")
EOF
  "$PY" -m fadepth export --checkpoint "$ckpt" --format onnx --out "$OUT/smalldepth.onnx" --overwrite || return 1
  "$PY" -m fadepth predict --model "$OUT/smalldepth.onnx" "$frames" --out "$OUT/pred_ort" --device auto || return 1
  "$PY" -m fadepth predict --checkpoint "$ckpt" "$frames" --out "$OUT/pred_pt" --device cuda || return 1
  "$PY" - "$OUT" <<'EOF' || return 1
import sys
from pathlib import Path

import numpy as np

from fadepth.export import ExportedModel

out = Path(sys.argv[1])
diffs = [np.abs(np.load(f) / np.load(out / "pred_pt" / f.name) - 1).max() for f in sorted((out / "pred_ort").glob("*.npy"))]
provider = ExportedModel(out / "smalldepth.onnx", "auto").provider
print(f"SUMMARY ONNX Runtime ({provider}) vs PyTorch CUDA: max relative depth difference {max(diffs):.2e} "
      f"over {len(diffs)} frames")
sys.exit(0 if max(diffs) < 1e-2 else 1)  # TF32 convolutions on CUDA
EOF
}

run_check fps fps_check
run_check train train_check
run_check sweep sweep_check
run_check export export_check
echo "gpu_check: $failed check(s) failed"
exit "$failed"
