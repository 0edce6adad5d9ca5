#!/usr/bin/env python3
"""Turns target/gpu-bench/results/ (written by run.sh) into one Markdown table."""
import csv
import glob
import json
import os
import sys


def smi_stats(path):
    """(peak memory.used MiB, mean utilisation %) over the samples with a non-idle GPU."""
    mem, util = [], []
    try:
        with open(path) as f:
            for row in csv.reader(f):
                if len(row) >= 3:
                    mem.append(float(row[1]))
                    util.append(float(row[2]))
    except (OSError, ValueError):
        pass
    busy = [u for u in util if u > 0]
    return (max(mem) if mem else None, sum(busy) / len(busy) if busy else None)


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def main(out):
    rows = []
    for path in sorted(glob.glob(os.path.join(out, "ours_*.json"))):
        tag = os.path.basename(path)[len("ours_") : -len(".json")]
        with open(path) as f:
            ours = json.loads(f.read().strip().splitlines()[-1])
        with open(os.path.join(out, f"pytorch_{tag}.json")) as f:
            ref = json.loads(f.read().strip().splitlines()[-1])
        o_mem, o_util = smi_stats(os.path.join(out, f"smi_ours_{tag}.csv"))
        p_mem, p_util = smi_stats(os.path.join(out, f"smi_pytorch_{tag}.csv"))
        rows.append((ours["batch"], ours["amp"], ours, ref, o_mem, o_util, p_mem, p_util))
    rows.sort(key=lambda r: (r[0], r[1]))
    print("| B | precision | ours samples/s | PyTorch samples/s | ratio | ours step ms | PyTorch step ms "
          "| ours compute ms | PyTorch compute ms | ours load samples/s | PyTorch load samples/s "
          "| ours GPU MiB (nvidia-smi peak) | PyTorch GPU MiB (smi peak / max_memory_allocated) "
          "| ours util % | PyTorch util % |")
    print("|" + "---|" * 15)
    for b, amp, o, p, o_mem, o_util, p_mem, p_util in rows:
        print(
            f"| {b} | {'AMP fp16' if amp else 'fp32'} | {fmt(o['samples_per_s'])} | {fmt(p['samples_per_s'])} "
            f"| {o['samples_per_s'] / p['samples_per_s']:.2f} | {fmt(o['step_ms_median'])} "
            f"| {fmt(p['step_ms_median'])} | {fmt(o['compute_ms_median'])} | {fmt(p['compute_ms_median'])} "
            f"| {fmt(o['load_samples_per_s'])} | {fmt(p['load_samples_per_s'])} | {fmt(o_mem, 0)} "
            f"| {fmt(p_mem, 0)} / {fmt(p.get('gpu_max_mem_mib'), 0)} | {fmt(o_util, 0)} | {fmt(p_util, 0)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
