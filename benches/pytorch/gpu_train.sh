#!/usr/bin/env bash
# A GPU-sized reproduction run (issue 7, experiment 3), called by run.sh: the CASIA-SURF
# architecture (3 ResNet18-SE branches, width 64, 112x112) on the synthetic anti-spoofing set,
# teacher -> modality dropout ("unified") and MMANet students, AMP + channels-last, one seed.
#   bash train.sh DATA_UNUSED OUT          (variables: N, EPOCHS, SEED, THREADS)
set -uo pipefail
OUT=${2:-results}
N=${N:-2000}
EPOCHS=${EPOCHS:-15}
SEED=${SEED:-0}
THREADS=${THREADS:-12}
RUNS=runs-gpu
mkdir -p "$RUNS"
common=(
  --set "seed=$SEED" --set "epochs=$EPOCHS" --set device=cuda:0
  --set "data.dataset={kind = \"synthetic-surf\", root = \"data/surf-train\", n = $N, size = 180, resize = 144, crop = 112}"
  --set "data.threads=$THREADS" --set eval.every=5
  --set compute.amp=true --set compute.channels_last=true
)
teacher_ckpt="$PWD/$RUNS/teacher/checkpoints/best.safetensors"
for model in teacher unified mmanet; do
  t0=$SECONDS
  extra=()
  [ "$model" != teacher ] && extra=(--set "teacher.checkpoint=$teacher_ckpt")
  [ "$model" = unified ] && extra=()
  ./mmanet -q train --preset "surf-$model" --run-dir "$RUNS/$model" "${common[@]}" "${extra[@]}" \
    > "$RUNS/$model.out" 2>&1
  rc=$?
  echo "train surf-$model rc=$rc wall_s=$((SECONDS - t0))" | tee -a "$RUNS/walltimes.txt"
  tail -n 12 "$RUNS/$model.out"
done
tar czf "$OUT/train_runs.tgz" --exclude='*.safetensors' "$RUNS"
