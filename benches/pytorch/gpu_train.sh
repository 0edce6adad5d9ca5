#!/usr/bin/env bash
# The GPU-sized reproduction run (issue 7, experiment 3), called by run.sh (section `train`):
# the CASIA-SURF architecture (3 ResNet18-SE branches, width 64, 112x112) on the synthetic
# anti-spoofing set (N samples written at 180 px, resize 144, crop 112), per seed:
# teacher -> modality dropout ("unified") and MMANet students, the `surf-*` presets with
# EPOCHS epochs, AMP + channels-last. Then repro.py writes the table and plot over the seeds.
#   bash train.sh DATA_UNUSED OUT          (variables: N, EPOCHS, SEEDS, THREADS)
# About 110 s per seed on an H200 (N = 2000, EPOCHS = 30).
set -uo pipefail
OUT=${2:-results}
N=${N:-2000}
EPOCHS=${EPOCHS:-30}
SEEDS=${SEEDS:-"0 1 2"}
THREADS=${THREADS:-12}
RUNS=runs-gpu
mkdir -p "$RUNS" "$OUT"
for SEED in $SEEDS; do
  dir="$RUNS/seed-$SEED"
  mkdir -p "$dir"
  common=(
    --set "seed=$SEED" --set "epochs=$EPOCHS" --set device=cuda:0
    --set "data.dataset={kind = \"synthetic-surf\", root = \"data/surf-train-$SEED\", n = $N, size = 180, resize = 144, crop = 112}"
    --set "data.threads=$THREADS" --set eval.every=5
    # The surf presets select as the released code (random masks, epochs after 30), which
    # needs more than 31 epochs; the recorded 30-epoch run kept the best mean over the fixed
    # combinations (epoch 0 is never validated at every = 5, so select_after = 0 is no limit).
    --set eval.selection=mean-over-combinations --set eval.select_after=0
    --set compute.amp=true --set compute.channels_last=true
  )
  teacher_ckpt="$PWD/$dir/teacher/checkpoints/best.safetensors"
  for model in teacher unified mmanet; do
    t0=$SECONDS
    extra=()
    [ "$model" = mmanet ] && extra=(--set "teacher.checkpoint=$teacher_ckpt")
    ./mmanet -q train --preset "surf-$model" --run-dir "$dir/$model" "${common[@]}" "${extra[@]}" \
      > "$dir/$model.out" 2>&1
    rc=$?
    echo "seed $SEED train surf-$model rc=$rc wall_s=$((SECONDS - t0))" | tee -a "$RUNS/walltimes.txt"
    tail -n 3 "$dir/$model.out"
  done
done
python3 repro.py "$OUT" "$RUNS"/seed-* | tee "$OUT/repro_gpu.md"
tar czf "$OUT/train_runs.tgz" --exclude='*.safetensors' "$RUNS"
