#!/usr/bin/env bash
# `mmanet fit` on the example manifest (issue "Your own data", item 7): its wall time (release
# build), and MMANet's as-observed test accuracy from fit's inferred configs against the
# hand-written mfeat3 presets (mfeat reader, `data.missing = { rate = 0.3, seed = 1 }`: the same
# 2,000 digits and missing rate, not the same test split), 3 training seeds each.
#   benches/fit_compare.sh [OUT=target/bench/fit-compare]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p mmanet
cargo xtask data example-manifest >/dev/null
BIN=$PWD/target/release/mmanet
OUT=${1:-target/bench/fit-compare}
rm -rf "$OUT" && mkdir -p "$OUT"
start=$(date +%s%N)
$BIN fit -q --manifest datasets/cache/mfeat-manifest/manifest.csv --out "$OUT/fit"
echo "fit wall: $(( ($(date +%s%N) - start) / 1000000 )) ms"
for s in 0 1 2; do
  $BIN train -q --config "$OUT/fit/teacher/config.toml" --set seed=$s --run-dir "$OUT/fit-teacher-$s"
  $BIN train -q --config "$OUT/fit/mmanet/config.toml" --set seed=$s \
    --set teacher.checkpoint="$PWD/$OUT/fit-teacher-$s/checkpoints/best.safetensors" \
    --run-dir "$OUT/fit-mmanet-$s"
  $BIN train -q --preset mfeat3-teacher --set seed=$s --set 'data.missing={rate=0.3,seed=1}' \
    --run-dir "$OUT/preset-teacher-$s"
  $BIN train -q --preset mfeat3-mmanet --set seed=$s --set 'data.missing={rate=0.3,seed=1}' \
    --set teacher.checkpoint="$PWD/$OUT/preset-teacher-$s/checkpoints/best.safetensors" \
    --run-dir "$OUT/preset-mmanet-$s"
done
for k in fit preset; do
  for s in 0 1 2; do
    observed=$(grep 'All (as observed)' "$OUT/$k-mmanet-$s/report.md" | awk -F'|' '{print $3, $4}')
    average=$(grep -m1 'Average' "$OUT/$k-mmanet-$s/report.md" | awk -F'|' '{print $3}')
    echo "$k seed $s: as observed (samples, accuracy) $observed; forced-combination average $average"
  done
done
