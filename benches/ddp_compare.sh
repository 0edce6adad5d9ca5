#!/usr/bin/env bash
# Per-step gradient exchange of data-parallel training (issue 18): ours (`mmanet train --nproc 2`,
# Gloo through mmanet-sys) against PyTorch DistributedDataParallel (gloo), the CASIA-SURF MMANet
# student with its regularization head (CE + MAR; MAD's frozen teacher does not change what is
# exchanged), 2 ranks on 127.0.0.1, global batch 64, one torch thread per rank, same run.
# Needs the PyTorch install `cargo xtask bench` makes (~/.cache/mmanet/pytorch-ref-2.11.0).
#   benches/ddp_compare.sh [REPS=2] [OUT=target/bench/ddp_compare.jsonl]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build -q --release -p mmanet
REPS=${1:-2}; OUTF=${2:-target/bench/ddp_compare.jsonl}
PY=$HOME/.cache/mmanet/pytorch-ref-2.11.0
BIN=target/release/mmanet
DATA=target/bench/ddp-surf
mkdir -p target/bench
[ -f "$DATA/train_list.txt" ] || $BIN -q data synth surf --out "$DATA" --n 448 --size 112
CFG=target/bench/ddp-surf.toml
# The surf-mmanet preset, shortened: 3 epochs of 7 steps, MAR on in the last one (timed) with the
# paper's weak set, no teacher, constant learning rate.
$BIN config print --preset surf-mmanet | python3 -c '
import re, sys
t = sys.stdin.read()
t = re.sub(r"(?ms)^\[teacher\]\n.*?(?=^\[|\Z)", "", t)
t = re.sub(r"(?ms)^\[schedule\]\n.*?(?=^\[)", "[schedule]\nkind = \"constant\"\n\n", t)
for k, v in [("epochs", "3"), ("skip_zero_lr_epochs", "false"), ("device", "\"cpu\""),
             ("threads", "1"), ("distillation", "\"none\""), ("begin_epoch", "1"),
             ("mining_start", "0"), ("weak_set", "[\"R+I\", \"R\", \"I\"]"),
             ("selection", "\"last-epoch\""), ("root", "\"'"$PWD/$DATA"'\"")]:
    t = re.sub(rf"(?m)^{k} = .*$", f"{k} = {v}", t, count=1)
t = re.sub(r"(?m)^select_after = .*\n", "", t)
print(t)' > "$CFG"
for r in $(seq 1 "$REPS"); do
  rm -rf target/bench/ddp-run
  la=$(cut -d' ' -f1 /proc/loadavg)
  MMANET_LOG=mmanet_train::parallel=info $BIN -q train --config "$CFG" --nproc 2 \
    --run-dir target/bench/ddp-run 2> target/bench/ddp-ours.log
  python3 - "$r" "$la" target/bench/ddp-ours.log >> "$OUTF" <<'PY'
import json, re, sys
r, la, log = sys.argv[1:4]
plain = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in open(log)]
lines = [l for l in plain if "data-parallel step collectives" in l and "epoch=2 " in l]
f = dict(re.findall(r"(\w+)=([0-9.e+-]+)", lines[0]))
print(json.dumps({"variant": "ours", "rep": int(r), "load_before": float(la),
                  "step_ms_median": float(f["step_median_ms"]),
                  "allreduce_ms_median": float(f["allreduce_median_ms"]),
                  "allreduce_bytes_per_step": int(f["allreduce_bytes"]),
                  "allreduce_gb_per_s": float(f["allreduce_gb_per_s"]),
                  "other_collectives_ms_median": float(f["other_collectives_median_ms"]),
                  "steps": int(f["steps"])}))
PY
  la=$(cut -d' ' -f1 /proc/loadavg)
  json=$(OMP_NUM_THREADS=1 PYTHONPATH=$PY python3 benches/pytorch/ddp_step.py --steps 6 | grep '^{' | tail -n 1)
  python3 -c 'import json,sys; d=json.loads(sys.argv[1]); d.update(variant="pytorch-ddp", rep=int(sys.argv[2]), load_before=float(sys.argv[3])); print(json.dumps(d))' "$json" "$r" "$la" >> "$OUTF"
done
tail -n $((2 * REPS)) "$OUTF"
