#!/usr/bin/env bash
# GPU side-by-side benchmark (issue 8), written into target/gpu-bench/ by `cargo xtask gpu-bench`.
# Needs: an NVIDIA GPU, nvidia-smi, python3 with torch 2.11.0 (CUDA build) and numpy
# (opencv-python-headless optional: the reference then decodes with cv2 like the official code).
# No cargo: ./bench_step is the prebuilt Rust binary; it loads libtorch from the Python torch.
#
#   ./run.sh                       # B = 64 128 256, fp32 and AMP, ours and PyTorch
#   BATCHES="64" STEPS=10 ./run.sh # fewer runs
set -euo pipefail
cd "$(dirname "$0")"
BATCHES=${BATCHES:-"64 128 256"}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-5}
THREADS=${THREADS:-8}          # loader threads / DataLoader workers (and torch CPU threads)
SAMPLES=${SAMPLES:-8192}       # synthetic training samples (one epoch covers every run)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-results}
mkdir -p "$OUT"

TORCH_LIB=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__, torch.cuda.get_device_name(0))'
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd ./bench_step | grep -E 'libtorch_cuda|not found' || true

DATA=${DATA:-data/surf-synthetic}
if [ ! -f "$DATA/train_list.txt" ]; then
  ./bench_step --data "$DATA" --generate "$SAMPLES" --size 180
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv"

: > "$OUT/runs.jsonl"
for B in $BATCHES; do
  for AMP in "" "--amp"; do
    tag="b${B}${AMP:+_amp}"
    common=(--data "$DATA" --batch "$B" --steps "$STEPS" --warmup "$WARMUP" --threads "$THREADS" --device cuda $AMP)
    # ours, with nvidia-smi sampling memory and utilisation every 100 ms
    nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 100 \
      > "$OUT/smi_ours_$tag.csv" &
    smi=$!
    ./bench_step "${common[@]}" | tail -n 1 > "$OUT/ours_$tag.json"
    kill "$smi"; wait "$smi" 2>/dev/null || true
    nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 100 \
      > "$OUT/smi_pytorch_$tag.csv" &
    smi=$!
    "$PYTHON" surf_step.py "${common[@]}" --pin-memory | tail -n 1 > "$OUT/pytorch_$tag.json"
    kill "$smi"; wait "$smi" 2>/dev/null || true
    cat "$OUT/ours_$tag.json" "$OUT/pytorch_$tag.json" >> "$OUT/runs.jsonl"
  done
done
"$PYTHON" table.py "$OUT" | tee "$OUT/table.md"
