#!/usr/bin/env bash
# GPU side-by-side benchmark (issue 8), written into target/gpu-bench/ by `cargo xtask gpu-bench`.
# Needs: an NVIDIA GPU, nvidia-smi, python3 with torch 2.11.0 (CUDA build) and numpy
# (opencv-python-headless optional: the reference then decodes with cv2 like the official code).
# No cargo: ./bench_step, ./bench_seg_step and ./mmanet are prebuilt Rust binaries; they load
# libtorch from the Python torch.
#
#   ./run.sh                          # every section, within BUDGET seconds
#   SECTIONS="seg cls" ./run.sh       # some sections, in this order
#
# Sections (run in the order SECTIONS names them; each skipped once BUDGET seconds have passed):
#   cuda     mmanet-sys's CUDA smoke tests (NCCL on one rank, a graph captured and replayed)
#            and mmanet-train's captured-step test (compute.cuda_graph equals the eager step)
#   step     the CASIA-SURF student step alone on random device tensors (112 px, no loader)
#            at B = 64 128 256: ours eager / captured (--cuda-graph), fp32 and AMP + channels-last;
#            PyTorch eager fp32 / AMP, torch.compile(mode="reduce-overhead") fp32 / AMP
#   cls      the same step with the loader (end to end) at B = 64 128 256: ours fp32 / AMP /
#            AMP + channels-last + cudnn benchmark, each eager and captured; PyTorch fp32 / AMP /
#            torch.compile(mode="reduce-overhead")
#   serve    `mmanet serve` on the GPU, closed-loop load (load_gen), without and with --cuda-graph
#   seg      ESANet student step, 480x640, B = 8 (random device tensors): ours and PyTorch,
#            fp32 and AMP; ours also AMP + channels-last + cudnn benchmark, and captured
#   modal    ours, the step alone on random device tensors for M = 2..6 modalities
#   threads  the loader alone at THREAD_LIST threads / DataLoader workers, ours and PyTorch
#   busy     the GPU busy fraction of the timed steps, exactly (CUPTI records, libgpu_busy.so
#            preloaded; benches/gpu_busy): BUSY_RUNS at B = 64 and the ESANet step
#   train    ours, a short real training run (mmanet train, synthetic SURF, AMP + channels-last)
set -uo pipefail
cd "$(dirname "$0")"
START=$SECONDS
BUDGET=${BUDGET:-480}
SECTIONS=${SECTIONS:-"cuda step cls busy serve seg threads modal train"}
BATCHES=${BATCHES:-"64 128 256"}
STEPS=${STEPS:-20}
WARMUP=${WARMUP:-5}
THREADS=${THREADS:-12}         # loader threads / DataLoader workers
THREAD_LIST=${THREAD_LIST:-"1 2 4 8 12"}
MODAL_VARIANTS=${MODAL_VARIANTS:-"fast fp32"}
CLS_RUNS=${CLS_RUNS:-"ours_graph_fast ours_fp32 ours_graph pytorch_fp32 pytorch_compile ours_amp pytorch_amp ours_fast"}
STEP_RUNS=${STEP_RUNS:-"ours_graph_fast ours_fast ours_fp32 ours_graph pytorch_fp32 pytorch_amp pytorch_compile pytorch_compile_amp"}
BUSY_RUNS=${BUSY_RUNS:-"cls_ours_graph_fast step_ours_graph_fast cls_ours_fast cls_ours_fp32 cls_pytorch_fp32 step_ours_fast step_pytorch_compile seg_ours_fast seg_pytorch_fp32"}
SERVE_CONCURRENCY=${SERVE_CONCURRENCY:-"1 16 64"}
SERVE_SECONDS=${SERVE_SECONDS:-8}
IDLE_MARK_MS=${IDLE_MARK_MS:-400}  # GPU idle before/after the timed steps (busy section)
SAMPLES=${SAMPLES:-4096}       # synthetic training samples
PYTHON=${PYTHON:-python3}
RESULTS=${RESULTS:-results}   # not $OUT: some runners export OUT for their own use
OUT=$RESULTS
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

TORCH_LIB=$("$PYTHON" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "torch sees no GPU"; print("torch", torch.__version__, torch.cuda.get_device_name(0))' | tee "$OUT/torch.txt"
# The binaries built against the full CUDA install need libcudart.so.13 themselves (the shim
# calls the CUDA runtime): the folders of the wheel's CUDA runtime and NCCL go on the path too.
CUDA_LIBS=$("$PYTHON" - <<'EOF'
import glob, os, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
dirs = []
for pattern in ("libcudart.so.13*", "libnccl.so*"):
    for hit in sorted(glob.glob(os.path.join(site, "nvidia", "**", pattern), recursive=True)):
        if os.path.dirname(hit) not in dirs:
            dirs.append(os.path.dirname(hit))
print(":".join(dirs))
EOF
)
export LD_LIBRARY_PATH="$TORCH_LIB${CUDA_LIBS:+:$CUDA_LIBS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
ldd ./bench_step | grep -E 'libtorch_cuda|libcudart|not found' || true
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
    "$PYTHON" - "$tag" "$OUT/smi_$tag.csv" "$line" "$OUT/$tag.busy.json" >> "$OUT/runs.jsonl" <<'EOF'
import csv, json, os, sys
tag, smi, line, busy_file = sys.argv[1:5]
rec = json.loads(line)
if os.path.exists(busy_file):
    # The timed steps are the segment with the most records (warm-up and set-up hold fewer).
    busy = json.load(open(busy_file))
    seg = max(busy["segments"], key=lambda s: s["records"], default=None)
    rec.update(busy_segments=len(busy["segments"]), busy_records_dropped=busy["dropped"])
    if seg:
        rec.update(busy_fraction=seg["busy_fraction"], busy_span_ms=seg["span_ms"],
                   busy_ms=seg["busy_ms"], busy_records=seg["records"])
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

# busy TAG CMD...: run() with libgpu_busy.so preloaded into CMD (not into timeout or nvidia-smi).
CUPTI_DIR=$("$PYTHON" - <<'EOF'
import glob, os, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
hits = sorted(glob.glob(os.path.join(site, "nvidia", "**", "libcupti.so*"), recursive=True))
print(os.path.dirname(hits[0]) if hits else "")
EOF
)
busy() {
  local tag=$1; shift
  run "$tag" env LD_PRELOAD="$PWD/libgpu_busy.so" GPU_BUSY_OUT="$OUT/$tag.busy.json" \
    LD_LIBRARY_PATH="$CUPTI_DIR:$LD_LIBRARY_PATH" "$@" --idle-mark-ms "$IDLE_MARK_MS"
}

DATA=${DATA:-data/surf-synthetic}
if [ ! -f "$DATA/train_list.txt" ]; then
  ./bench_step --data "$DATA" --generate "$SAMPLES" --size 180 2>&1 | tail -n 1
fi
echo "[$((SECONDS - START))s] data ready"

cls_args() {  # cls_args B: the classification flags at batch B
  local steps=$STEPS; [ "$1" -ge 256 ] && steps=$((STEPS / 2))
  echo --data "$DATA" --batch "$1" --steps "$steps" --warmup "$WARMUP" --threads "$THREADS" --device cuda
}
SEG_ARGS=(--batch 8 --height 480 --width 640 --steps 10 --warmup 3 --device cuda)
FAST=(--amp --channels-last --cudnn-benchmark)
GRAPH=(--cuda-graph)
COMPILE=(--compile reduce-overhead)
step_args() {  # step_args B: the step-only flags at batch B (random device tensors, 112 px)
  local steps=$STEPS; [ "$1" -ge 256 ] && steps=$((STEPS / 2))
  echo --synthetic-inputs --size 112 --batch "$1" --steps "$steps" --warmup "$WARMUP" --device cuda
}

section_cls() {
  for B in $BATCHES; do
    read -r -a common <<< "$(cls_args "$B")"
    for R in $CLS_RUNS; do
      case $R in
        ours_fp32) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" ;;
        ours_amp) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" --amp ;;
        ours_fast) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" "${FAST[@]}" ;;
        ours_graph) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" "${GRAPH[@]}" ;;
        ours_graph_fast) want cls && run "cls_${R}_b$B" ./bench_step "${common[@]}" "${FAST[@]}" "${GRAPH[@]}" ;;
        pytorch_fp32) want cls && run "cls_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" --pin-memory ;;
        pytorch_amp) want cls && run "cls_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" --pin-memory --amp ;;
        pytorch_compile) want cls 90 && run "cls_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" --pin-memory "${COMPILE[@]}" ;;
      esac
    done
  done
}

# The step alone (batches already on the device): "ahead of torch.compile" is step against step.
section_step() {
  for B in $BATCHES; do
    read -r -a common <<< "$(step_args "$B")"
    for R in $STEP_RUNS; do
      case $R in
        ours_fp32) want step && run "step_${R}_b$B" ./bench_step "${common[@]}" ;;
        ours_fast) want step && run "step_${R}_b$B" ./bench_step "${common[@]}" "${FAST[@]}" ;;
        ours_graph) want step && run "step_${R}_b$B" ./bench_step "${common[@]}" "${GRAPH[@]}" ;;
        ours_graph_fast) want step && run "step_${R}_b$B" ./bench_step "${common[@]}" "${FAST[@]}" "${GRAPH[@]}" ;;
        pytorch_fp32) want step && run "step_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" ;;
        pytorch_amp) want step && run "step_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" --amp ;;
        # torch.compile spends a minute or more compiling before the first step.
        pytorch_compile) want step 90 && run "step_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" "${COMPILE[@]}" ;;
        pytorch_compile_amp) want step 90 && run "step_${R}_b$B" "$PYTHON" surf_step.py "${common[@]}" "${COMPILE[@]}" --amp ;;
      esac
    done
  done
}

section_seg() {
  [ -x ./bench_seg_step ] || return
  want seg && run seg_ours_fp32 ./bench_seg_step "${SEG_ARGS[@]}"
  want seg && run seg_pytorch_fp32 "$PYTHON" esanet_step.py "${SEG_ARGS[@]}"
  want seg && run seg_ours_amp ./bench_seg_step "${SEG_ARGS[@]}" --amp
  want seg && run seg_pytorch_amp "$PYTHON" esanet_step.py "${SEG_ARGS[@]}" --amp --grad-scaler
  want seg && run seg_ours_fast ./bench_seg_step "${SEG_ARGS[@]}" "${FAST[@]}"
  want seg && run seg_ours_graph ./bench_seg_step "${SEG_ARGS[@]}" "${GRAPH[@]}"
  want seg && run seg_ours_graph_fast ./bench_seg_step "${SEG_ARGS[@]}" "${FAST[@]}" "${GRAPH[@]}"
}

section_modal() {
  for M in 2 3 4 5 6; do
    for V in $MODAL_VARIANTS; do
      flags=(); [ "$V" = fast ] && flags=("${FAST[@]}")
      want modal && run "modal_ours_${V}_m$M" ./bench_step --synthetic-inputs --modalities "$M" --size 112 \
        --batch 64 --steps 15 --warmup 3 --device cuda "${flags[@]}"
    done
  done
}

section_threads() {
  for T in $THREAD_LIST; do
    lo=(--data "$DATA" --batch 64 --load-only --load-batches 12 --warmup 2 --threads "$T")
    want threads && run "load_ours_t$T" ./bench_step "${lo[@]}"
    want threads && run "load_ours_cached_t$T" ./bench_step "${lo[@]}" --decoded-cache-mb 2048
    want threads && run "load_pytorch_t$T" "$PYTHON" surf_step.py "${lo[@]}"
    want threads && run "load_pytorch_predecoded_t$T" "$PYTHON" surf_step.py "${lo[@]}" \
      --predecoded "$OUT/predecoded"
  done
}

section_busy() {
  [ -f ./libgpu_busy.so ] && [ -n "$CUPTI_DIR" ] || { echo "busy: no libgpu_busy.so or CUPTI"; return; }
  read -r -a common <<< "$(cls_args 64)"
  for R in $BUSY_RUNS; do
    case $R in
      cls_ours_fast) want busy && busy busy_cls_ours_fast_b64 ./bench_step "${common[@]}" "${FAST[@]}" ;;
      cls_ours_fp32) want busy && busy busy_cls_ours_fp32_b64 ./bench_step "${common[@]}" ;;
      cls_pytorch_fp32) want busy && busy busy_cls_pytorch_fp32_b64 "$PYTHON" surf_step.py "${common[@]}" --pin-memory ;;
      cls_pytorch_amp) want busy && busy busy_cls_pytorch_amp_b64 "$PYTHON" surf_step.py "${common[@]}" --pin-memory --amp ;;
      cls_ours_graph_fast) want busy && busy busy_cls_ours_graph_fast_b64 ./bench_step "${common[@]}" "${FAST[@]}" "${GRAPH[@]}" ;;
      step_ours_graph_fast) want busy && busy busy_step_ours_graph_fast_b64 ./bench_step $(step_args 64) "${FAST[@]}" "${GRAPH[@]}" ;;
      step_ours_graph) want busy && busy busy_step_ours_graph_b64 ./bench_step $(step_args 64) "${GRAPH[@]}" ;;
      step_pytorch_compile) want busy 90 && busy busy_step_pytorch_compile_b64 "$PYTHON" surf_step.py $(step_args 64) "${COMPILE[@]}" ;;
      step_ours_fast) want busy && busy busy_step_ours_fast_b64 ./bench_step --synthetic-inputs --size 112 \
        --batch 64 --steps "$STEPS" --warmup "$WARMUP" --device cuda "${FAST[@]}" ;;
      step_ours_fp32) want busy && busy busy_step_ours_fp32_b64 ./bench_step --synthetic-inputs --size 112 \
        --batch 64 --steps "$STEPS" --warmup "$WARMUP" --device cuda ;;
      seg_ours_fast) want busy && busy busy_seg_ours_fast ./bench_seg_step "${SEG_ARGS[@]}" "${FAST[@]}" ;;
      seg_ours_fp32) want busy && busy busy_seg_ours_fp32 ./bench_seg_step "${SEG_ARGS[@]}" ;;
      seg_pytorch_fp32) want busy && busy busy_seg_pytorch_fp32 "$PYTHON" esanet_step.py "${SEG_ARGS[@]}" ;;
    esac
  done
}

# mmanet-sys's CUDA build on this GPU: NCCL on one rank (a CUDA all-reduce through NCCL, a CPU
# one through Gloo) and a CUDA graph captured and replayed; the `cuda_*` tests of the
# process_group test binary that gpu-bench builds against the full CUDA install.
section_cuda() {
  [ -x ./cuda_smoke ] || { echo "cuda: no ./cuda_smoke (gpu-bench builds it where 'cargo xtask setup --cuda' ran)"; return; }
  local rc
  for t in cuda_smoke cuda_graph_smoke; do
    [ -x "./$t" ] || { echo "cuda: no ./$t"; continue; }
    timeout 180 "./$t" cuda_ --nocapture --test-threads 1 > "$OUT/$t.out" 2>&1
    rc=$?
    echo "[$((SECONDS - START))s] $t rc=$rc: $(grep -E '^test result' "$OUT/$t.out")"
  done
}

# `mmanet serve --device cuda` under a closed loop of C clients, without and with --cuda-graph:
# the SURF deployment network (random weights, written by bench_model) and request bodies
# with random modality subsets (serve-bodies.jsonl, written by `cargo xtask gpu-bench`).
section_serve() {
  [ -x ./mmanet ] && [ -x ./load_gen ] && [ -x ./bench_model ] && [ -f serve-bodies.jsonl ] \
    || { echo "serve: no ./mmanet, ./load_gen, ./bench_model or serve-bodies.jsonl"; return; }
  [ -f "$OUT/serve-model.safetensors" ] \
    || ./bench_model --preset surf-mmanet --seed 7 --out "$OUT/serve-model.safetensors" > /dev/null
  local port=18431 variant flags pid
  for variant in eager graph; do
    flags=(); [ $variant = graph ] && flags=(--cuda-graph)
    ./mmanet -q serve "$OUT/serve-model.safetensors" --device cuda --addr "127.0.0.1:$port" \
      --max-batch 64 --queue 1024 "${flags[@]}" > "$OUT/serve_$variant.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 120); do
      "$PYTHON" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/readyz', timeout=1)" \
        > /dev/null 2>&1 && break
      sleep 0.5
    done
    for C in $SERVE_CONCURRENCY; do
      want serve 20 && run "serve_${variant}_c$C" ./load_gen run "http://127.0.0.1:$port/v1/predict" \
        serve-bodies.jsonl --concurrency "$C" --duration-s "$SERVE_SECONDS" --warmup-s 2
    done
    kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
    port=$((port + 1))
  done
}

section_train() {
  [ -x ./mmanet ] && [ -f train.sh ] || return
  timeout "$(left)" bash train.sh "$DATA" "$OUT" 2>&1 | tail -n 40
}

# Minimum seconds left for a section to start.
declare -A NEED=([cuda]=20 [step]=60 [cls]=60 [serve]=40 [seg]=60 [modal]=30 [threads]=40 [busy]=40 [train]=60)
for S in $SECTIONS; do
  [ -n "${NEED[$S]:-}" ] || { echo "unknown section $S"; continue; }
  want "$S" "${NEED[$S]}" && "section_$S"
done

"$PYTHON" table.py "$OUT" | tee "$OUT/table.md"
echo "[$((SECONDS - START))s] done"
