#!/usr/bin/env bash
# GPU side-by-side benchmark (issue 8), written into target/gpu-bench/ by `cargo xtask gpu-bench`.
# Needs: an NVIDIA GPU, nvidia-smi, python3 with torch 2.11.0 (CUDA build) and numpy
# (opencv-python-headless optional: the reference then decodes with cv2 like the official code).
# No cargo: ./bench_step, ./bench_seg_step and ./mmanet are prebuilt Rust binaries; they load
# libtorch from the Python torch.
#
#   ./run.sh                          # every section, within BUDGET seconds
#   SECTIONS="cls seg" ./run.sh       # some sections
#
# Sections, in order (each skipped once BUDGET seconds have passed since the start):
#   cls      CASIA-SURF student step (loader included) at B = 64 128 256:
#            ours fp32 / AMP / AMP + channels-last + cudnn benchmark; PyTorch fp32 / AMP
#   seg      ESANet student step, 480x640, B = 8 (random device tensors): ours and PyTorch,
#            fp32 and AMP (+ channels-last for ours)
#   modal    ours, the step alone on random device tensors for M = 2..6 modalities
#   threads  the loader alone at THREAD_LIST threads / DataLoader workers, ours and PyTorch
#   train    ours, a short real training run (mmanet train, synthetic SURF, AMP + channels-last)
set -uo pipefail
cd "$(dirname "$0")"
START=$SECONDS
BUDGET=${BUDGET:-480}
SECTIONS=${SECTIONS:-"cls seg modal threads train"}
BATCHES=${BATCHES:-"64 128 256"}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-5}
THREADS=${THREADS:-12}         # loader threads / DataLoader workers
THREAD_LIST=${THREAD_LIST:-"1 2 4 8 12"}
MODAL_VARIANTS=${MODAL_VARIANTS:-"fast fp32"}
CLS_RUNS=${CLS_RUNS:-"ours_fp32 pytorch_fp32 ours_amp pytorch_amp ours_fast"}
SAMPLES=${SAMPLES:-4096}       # synthetic training samples
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-results}   # not $OUT: some runners export OUT for their own use
OUT=$RESULTS
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

TORCH_LIB=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__, torch.cuda.get_device_name(0))' | tee "$OUT/torch.txt"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd ./bench_step | grep -E 'libtorch_cuda|not found' || true
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv > "$OUT/gpu.csv"
nproc > "$OUT/nproc.txt"

left() { echo $((BUDGET - (SECONDS - START))); }
want() { [[ " $SECTIONS " == *" $1 "* ]] && [ "$(left)" -gt "${2:-20}" ]; }

# run TAG CMD...: one program under nvidia-smi sampling (100 ms), last JSON line kept.
run() {
  local tag=$1; shift
  nvidia-smi --query-gpu=timestamp,memory.used,utilization.gpu --format=csv,noheader,nounits -lms 100 \
    > "$OUT/smi_$tag.csv" &
  local smi=$!
  local t0=$SECONDS
  timeout "$(( $(left) > 10 ? $(left) : 10 ))" "$@" > "$OUT/$tag.out" 2> "$OUT/$tag.err"
  local rc=$?
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  local line
  line=$(grep '^{' "$OUT/$tag.out" | tail -n 1)
  if [ $rc -eq 0 ] && [ -n "$line" ]; then
    "$PYTHON" - "$tag" "$OUT/smi_$tag.csv" "$line" >> "$OUT/runs.jsonl" <<'EOF'
import csv, json, sys
tag, smi, line = sys.argv[1], sys.argv[2], sys.argv[3]
rec = json.loads(line)
mem, util = [], []
for row in csv.reader(open(smi)):
    try:
        mem.append(float(row[1])); util.append(float(row[2]))
    except (IndexError, ValueError):
        pass
busy = [u for u in util if u > 0]
rec.update(tag=tag, smi_peak_mib=max(mem) if mem else None,
           smi_util_mean=sum(busy) / len(busy) if busy else None, smi_samples=len(util))
print(json.dumps(rec))
EOF
    echo "[$((SECONDS - START))s] $tag ok ($((SECONDS - t0))s)"
  else
    echo "[$((SECONDS - START))s] $tag FAILED rc=$rc ($((SECONDS - t0))s)"; tail -n 5 "$OUT/$tag.err"
  fi
}

DATA=${DATA:-data/surf-synthetic}
if [ ! -f "$DATA/train_list.txt" ]; then
  ./bench_step --data "$DATA" --generate "$SAMPLES" --size 180 2>&1 | tail -n 1
fi
echo "[$((SECONDS - START))s] data ready"

if want cls 60; then
  for B in $BATCHES; do
    steps=$STEPS; [ "$B" -ge 256 ] && steps=$((STEPS / 2))
    common=(--data "$DATA" --batch "$B" --steps "$steps" --warmup "$WARMUP" --threads "$THREADS" --device cuda)
    for R in $CLS_RUNS; do
      case $R in
        ours_fp32) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" ;;
        ours_amp) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" --amp ;;
        ours_fast) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" --amp --channels-last --cudnn-benchmark ;;
        pytorch_fp32) want cls && run "cls_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" --pin-memory ;;
        pytorch_amp) want cls && run "cls_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" --pin-memory --amp ;;
      esac
    done
  done
fi

if want seg 60 && [ -x ./bench_seg_step ]; then
  seg=(--batch 8 --height 480 --width 640 --steps 10 --warmup 3 --device cuda)
  want seg && run seg_ours_fp32 ./bench_seg_step "${seg[@]}"
  want seg && run seg_pytorch_fp32 "$PYTHON" esanet_step.py "${seg[@]}"
  want seg && run seg_ours_amp ./bench_seg_step "${seg[@]}" --amp
  want seg && run seg_pytorch_amp "$PYTHON" esanet_step.py "${seg[@]}" --amp --grad-scaler
fi

if want modal 30; then
  for M in 2 3 4 5 6; do
    for V in $MODAL_VARIANTS; do
      flags=(); [ "$V" = fast ] && flags=(--amp --channels-last --cudnn-benchmark)
      want modal && run "modal_ours_${V}_m$M" ./bench_step --synthetic-inputs --modalities "$M" --size 112 \
        --batch 64 --steps 15 --warmup 3 --device cuda "${flags[@]}"
    done
  done
fi

if want threads 40; then
  for T in $THREAD_LIST; do
    lo=(--data "$DATA" --batch 64 --load-only --load-batches 12 --warmup 2 --threads "$T")
    want threads && run "load_ours_t$T" ./bench_step "${lo[@]}"
    want threads && run "load_pytorch_t$T" "$PYTHON" surf_step.py "${lo[@]}"
  done
fi

if want train 60 && [ -x ./mmanet ] && [ -f train.sh ]; then
  timeout "$(left)" bash train.sh "$DATA" "$OUT" 2>&1 | tail -n 40
fi

"$PYTHON" table.py "$OUT" | tee "$OUT/table.md"
echo "[$((SECONDS - START))s] done"
