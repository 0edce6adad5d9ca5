#!/usr/bin/env bash
# The CPU training step (issue 8), interleaved: ours (freed memory kept, as `mmanet` runs),
# ours with glibc defaults (--malloc-default), PyTorch (surf_step.py as shipped) and PyTorch with
# the same glibc setting through environment variables (a control). Needs `cargo xtask bench`
# run once before (the PyTorch reference install and target/bench/surf-synthetic).
#   benches/cpu_step_compare.sh [REPS=3] [BATCHES="16 64"] [OUT=target/bench/cpu_step_compare.jsonl]
cd "$(dirname "$0")/.." && cargo build -q --release -p mmanet-train --example bench_step || exit 1
REPS=${1:-3}; BATCHES=${2:-"16 64"}; OUTF=${3:-target/bench/cpu_step_compare.jsonl}
PY=$HOME/.cache/mmanet/pytorch-ref-2.11.0
for B in $BATCHES; do
  if [ "$B" -ge 64 ]; then S=3; W=1; L=4; else S=5; W=1; L=8; fi
  common=(--data target/bench/surf-synthetic --batch $B --steps $S --warmup $W --load-batches $L --threads 2 --device cpu)
  for r in $(seq 1 $REPS); do
    for v in ours_kept pytorch ours_default pytorch_kept; do
      case $v in
        ours_kept) cmd=(target/release/examples/bench_step "${common[@]}"); envs=() ;;
        ours_default) cmd=(target/release/examples/bench_step "${common[@]}" --malloc-default); envs=() ;;
        pytorch) cmd=(python3 benches/pytorch/surf_step.py "${common[@]}"); envs=(PYTHONPATH=$PY) ;;
        pytorch_kept) cmd=(python3 benches/pytorch/surf_step.py "${common[@]}"); envs=(PYTHONPATH=$PY MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647) ;;
      esac
      la=$(cut -d' ' -f1 /proc/loadavg)
      out=$(env OMP_NUM_THREADS=1 "${envs[@]}" /usr/bin/time -f "TIME %e %U %S %R" "${cmd[@]}" 2>&1)
      json=$(echo "$out" | grep '^{' | tail -n 1)
      t=$(echo "$out" | grep '^TIME' | tail -n 1)
      python3 - "$v" "$B" "$r" "$la" "$t" "$json" >> "$OUTF" <<'PY'
import json, sys
v, b, r, la, t, js = sys.argv[1:7]
rec = json.loads(js) if js else {}
_, e, u, s, f = t.split() if t else ("", "nan", "nan", "nan", "nan")
print(json.dumps({"variant": v, "batch": int(b), "rep": int(r), "load_before": float(la),
    "step_ms_median": rec.get("step_ms_median"), "step_ms_all": rec.get("step_ms_all"),
    "samples_per_s": rec.get("samples_per_s"), "load_samples_per_s": rec.get("load_samples_per_s"),
    "peak_rss_mib": rec.get("peak_rss_mib"), "elapsed_s": float(e), "user_s": float(u),
    "sys_s": float(s), "minor_faults": float(f)}))
PY
      echo "B=$B rep=$r $v: $(tail -n 1 "$OUTF" | python3 -c 'import json,sys;r=json.load(sys.stdin);print(round(r["step_ms_median"] or -1), "ms; sys", r["sys_s"], "s; faults", int(r["minor_faults"]))')"
    done
  done
done
# Summary: per batch size, the median over repetitions of each variant's median step, and the
# per-repetition ratio ours / PyTorch (each repetition runs the four back to back).
python3 - "$OUTF" <<'PY'
import collections, json, statistics as st, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
by = collections.defaultdict(dict)
for r in rows:
    by[(r["batch"], r["rep"])][r["variant"]] = r
for b in sorted({r["batch"] for r in rows}):
    reps = [v for (bb, _), v in sorted(by.items()) if bb == b]
    print(f"B = {b}: {len(reps)} repetitions")
    for v in ("ours_kept", "ours_default", "pytorch", "pytorch_kept"):
        ms = [r[v]["step_ms_median"] for r in reps if v in r and r[v]["step_ms_median"]]
        sys_s = [r[v]["sys_s"] for r in reps if v in r]
        if ms:
            print(f"  {v:13s} step ms median {st.median(ms):8.0f}  (runs {', '.join(f'{x:.0f}' for x in ms)})"
                  f"  sys s {st.median(sys_s):.2f}")
    for num, den in (("ours_kept", "pytorch"), ("ours_default", "pytorch"), ("pytorch_kept", "pytorch")):
        q = [r[num]["step_ms_median"] / r[den]["step_ms_median"] for r in reps
             if num in r and den in r and r[num]["step_ms_median"] and r[den]["step_ms_median"]]
        if q:
            print(f"  {num} / {den}: median {st.median(q):.3f} (per repetition {', '.join(f'{x:.3f}' for x in q)})")
PY
