#!/usr/bin/env bash
# The CASIA-SURF training loader alone (issue 3), interleaved: ours (bench_step --load-only) and
# PyTorch's DataLoader with cv2 (surf_step.py --load-only, `num_workers` = threads), B = 64,
# T = 1 and 2 loader threads, back to back in each repetition. Needs `cargo xtask bench` run once
# before (the PyTorch reference install and target/bench/surf-synthetic).
#   [LOAD_BATCHES=8] benches/load_compare.sh [REPS=7] [THREADS="1 2"] [OUT=target/bench/load_compare.jsonl] [VARIANTS="pytorch ours"]
# Variants: pytorch (DataLoader over the JPEGs), pytorch-predecoded (DataLoader over a
# memory-mapped uint8 NumPy array of the decoded, 144-resized images, written once), ours, and
# ours-cached (`--decoded-cache-mb 1024`: the decoded-image cache, filled by one untimed epoch).
cd "$(dirname "$0")/.." && cargo build -q --release -p mmanet-train --example bench_step || exit 1
REPS=${1:-7}; THREADS=${2:-"1 2"}; OUTF=${3:-target/bench/load_compare.jsonl}; VARIANTS=${4:-"pytorch ours"}
PY=$HOME/.cache/mmanet/pytorch-ref-2.11.0
for r in $(seq 1 "$REPS"); do
  for T in $THREADS; do
    common=(--data target/bench/surf-synthetic --load-only --batch 64 --threads "$T" --load-batches "${LOAD_BATCHES:-8}" --warmup 2)
    for v in $VARIANTS; do
      case $v in
        ours) cmd=(target/release/examples/bench_step "${common[@]}"); envs=() ;;
        ours-cached) cmd=(target/release/examples/bench_step "${common[@]}" --decoded-cache-mb 1024); envs=() ;;
        pytorch) cmd=(python3 benches/pytorch/surf_step.py "${common[@]}"); envs=(PYTHONPATH=$PY) ;;
        pytorch-predecoded) cmd=(python3 benches/pytorch/surf_step.py "${common[@]}" --predecoded target/bench/surf-predecoded); envs=(PYTHONPATH=$PY) ;;
        *) echo "unknown variant $v" >&2; exit 2 ;;
      esac
      la=$(cut -d' ' -f1 /proc/loadavg)
      json=$(env OMP_NUM_THREADS=1 "${envs[@]}" "${cmd[@]}" 2>/dev/null | grep '^{' | tail -n 1)
      python3 - "$v" "$T" "$r" "$la" "$json" >> "$OUTF" <<'PY'
import json, sys, time
v, t, r, la, js = sys.argv[1:6]
rec = json.loads(js) if js else {}
print(json.dumps({"variant": v, "threads": int(t), "rep": int(r), "load_before": float(la),
    "utc": time.strftime("%H:%M:%S", time.gmtime()),
    "load_samples_per_s": rec.get("load_samples_per_s")}))
PY
      echo "rep=$r T=$T $v: $(tail -n 1 "$OUTF" | python3 -c 'import json,sys;r=json.load(sys.stdin);print(round(r["load_samples_per_s"] or -1), "samples/s")')"
    done
  done
done
# Summary per thread count: each variant's median over repetitions and, against PyTorch's
# DataLoader over the JPEGs (`pytorch`), the ratio of medians and the median of the
# per-repetition ratios.
python3 - "$OUTF" <<'PY'
import collections, json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(dict)
for r in rows:
    if r["load_samples_per_s"]:
        by[(r["threads"], r["rep"])][r["variant"]] = r["load_samples_per_s"]
variants = sorted({r["variant"] for r in rows})
for t in sorted({r["threads"] for r in rows}):
    reps = [v for (tt, _), v in sorted(by.items()) if tt == t]
    for var in variants:
        vals = [x[var] for x in reps if var in x]
        if not vals:
            continue
        line = f"T = {t}: {var:20s} median {st.median(vals):6.0f} samples/s over {len(vals)} repetitions"
        pairs = [x[var] / x["pytorch"] for x in reps if var in x and "pytorch" in x]
        if var != "pytorch" and pairs:
            base = st.median([x["pytorch"] for x in reps if "pytorch" in x])
            line += (f"; / pytorch: {st.median(vals) / base:.2f} (per-repetition median "
                     f"{st.median(pairs):.2f}, min {min(pairs):.2f}, max {max(pairs):.2f})")
        print(line)
PY
