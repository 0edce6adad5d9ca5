#!/usr/bin/env python3
"""Turns results/runs.jsonl (written by run.sh) into Markdown tables and, where matplotlib is
available, one SVG with three panels: samples/s vs batch size, loader samples/s vs threads,
step time vs number of modalities."""
import json
import os
import sys


def load(out):
    runs = {}
    path = os.path.join(out, "runs.jsonl")
    if os.path.exists(path):
        for line in open(path):
            line = line.strip()
            if line:
                rec = json.loads(line)
                runs[rec["tag"]] = rec
    return runs


def fmt(x, digits=1):
    return "–" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "–" if a is None or not b else f"{a / b:.2f}"


def cls_table(runs):
    batches = sorted({r["batch"] for t, r in runs.items() if t.startswith("cls_")})
    if not batches:
        return
    print("### Classification: CASIA-SURF student step, loader included (12 loader threads)\n")
    print("| B | variant | samples/s | / PyTorch fp32 | / PyTorch same precision | step ms (median) "
          "| compute ms (median) | loader alone samples/s | GPU MiB (nvidia-smi peak) "
          "| max_memory_allocated MiB | GPU util % (mean of busy samples) |")
    print("|" + "---|" * 11)
    for b in batches:
        ref32 = runs.get(f"cls_pytorch_fp32_b{b}", {}).get("samples_per_s")
        ref16 = runs.get(f"cls_pytorch_amp_b{b}", {}).get("samples_per_s")
        for impl, var, label, same in [
            ("pytorch", "fp32", "PyTorch fp32", ref32),
            ("pytorch", "amp", "PyTorch AMP (autocast fp16, no GradScaler)", ref16),
            ("ours", "fp32", "ours fp32", ref32),
            ("ours", "amp", "ours AMP (autocast fp16 + GradScaler)", ref16),
            ("ours", "fast", "ours AMP + channels-last + cudnn benchmark", ref16),
            ("pytorch", "compile", "PyTorch torch.compile(mode=\"reduce-overhead\") fp32", ref32),
            ("ours", "graph", "ours captured (CUDA graph) fp32", ref32),
            ("ours", "graph_fast", "ours captured, AMP + channels-last + cudnn benchmark", ref16),
        ]:
            r = runs.get(f"cls_{impl}_{var}_b{b}")
            if r is None:
                continue
            sps = r.get("samples_per_s")
            print(f"| {b} | {label} | {fmt(sps)} | {ratio(sps, ref32)} | {ratio(sps, same)} "
                  f"| {fmt(r.get('step_ms_median'))} | {fmt(r.get('compute_ms_median'))} "
                  f"| {fmt(r.get('load_samples_per_s'))} | {fmt(r.get('smi_peak_mib'), 0)} "
                  f"| {fmt(r.get('gpu_max_mem_mib'), 0)} | {fmt(r.get('smi_util_mean'), 0)} |")
    print()


# The five columns of issue 19 (step only and end to end), per batch size.
FIVE = [("ours_fp32", "ours eager"), ("ours_graph", "ours captured"),
        ("pytorch_fp32", "PyTorch eager fp32"), ("pytorch_amp", "PyTorch AMP"),
        ("pytorch_compile", "PyTorch torch.compile reduce-overhead")]


def five_table(runs, prefix, title):
    batches = sorted({r["batch"] for t, r in runs.items() if t.startswith(prefix)})
    if not batches:
        return
    print(f"### {title}: samples/s (GPU MiB, max_memory_allocated where known)\n")
    print("| B | " + " | ".join(label for _, label in FIVE)
          + " | ours captured, AMP + channels-last | captured / PyTorch fp32 "
            "| best captured / torch.compile |")
    print("|" + "---|" * (len(FIVE) + 4))
    for b in batches:
        get = lambda k: runs.get(f"{prefix}{k}_b{b}", {})
        cells = []
        for k, _ in FIVE + [("ours_graph_fast", "")]:
            r = get(k)
            mem = r.get("gpu_max_mem_mib") or r.get("smi_peak_mib")
            cells.append(f"{fmt(r.get('samples_per_s'))} ({fmt(mem, 0)})" if r else "–")
        best = max((get(k).get("samples_per_s") or 0 for k in ("ours_graph", "ours_graph_fast")),
                   default=0) or None
        print(f"| {b} | " + " | ".join(cells)
              + f" | {ratio(get('ours_graph').get('samples_per_s'), get('pytorch_fp32').get('samples_per_s'))}"
              + f" | {ratio(best, get('pytorch_compile').get('samples_per_s'))} |")
    print()


def serve_table(runs):
    rows = [(t, r) for t, r in sorted(runs.items()) if t.startswith("serve_")]
    if not rows:
        return
    print("### Serving: `mmanet serve --device cuda`, closed loop (load_gen), SURF network\n")
    print("| variant | clients | requests/s | p50 ms | p99 ms | errors |")
    print("|---|---|---|---|---|---|")
    for t, r in rows:
        variant, c = t[len("serve_"):].rsplit("_c", 1)
        print(f"| {variant} | {c} | {fmt(r.get('throughput_rps'))} | {fmt(r.get('p50_ms'), 2)} "
              f"| {fmt(r.get('p99_ms'), 2)} | {r.get('errors', '–')} |")
    print()


def seg_table(runs):
    rows = [(t, r) for t, r in sorted(runs.items()) if t.startswith("seg_")]
    if not rows:
        return
    print("### Segmentation: ESANet student step, 480x640, B = 8 (random device tensors)\n")
    print("| run | step ms (median) | samples/s | GPU MiB (nvidia-smi peak) | max_memory_allocated MiB "
          "| GPU util % | params (teacher / student) |")
    print("|" + "---|" * 7)
    for t, r in rows:
        print(f"| {t[4:]} | {fmt(r.get('step_ms_median'))} | {fmt(r.get('samples_per_s'), 2)} "
              f"| {fmt(r.get('smi_peak_mib'), 0)} | {fmt(r.get('gpu_max_mem_mib'), 0)} "
              f"| {fmt(r.get('smi_util_mean'), 0)} "
              f"| {r.get('n_params_teacher', '–')} / {r.get('n_params_student', '–')} |")
    print()


def thread_table(runs):
    threads = sorted({r["threads"] for t, r in runs.items() if t.startswith("load_")})
    if not threads:
        return
    print("### The loader alone (train augmentation, B = 64), samples/s\n")
    print("| threads / workers | ours | ours, decoded cache | PyTorch | PyTorch, pre-decoded memmap "
          "| ours / PyTorch | cached / PyTorch | cached / pre-decoded |")
    print("|---|---|---|---|---|---|---|---|")
    for n in threads:
        get = lambda k: runs.get(f"{k}_t{n}", {}).get("load_samples_per_s")
        o, oc = get("load_ours"), get("load_ours_cached")
        p, pp = get("load_pytorch"), get("load_pytorch_predecoded")
        print(f"| {n} | {fmt(o)} | {fmt(oc)} | {fmt(p)} | {fmt(pp)} | {ratio(o, p)} "
              f"| {ratio(oc, p)} | {ratio(oc, pp)} |")
    print()


def busy_table(runs):
    rows = [(t, r) for t, r in sorted(runs.items()) if t.startswith("busy_")]
    if not rows:
        return
    print("### GPU busy fraction of the timed steps (CUPTI kernel + memcpy + memset records)\n")
    print("Busy = union of the device's activity intervals / span of the timed steps' segment "
          "(first start to last end; the steps are fenced by idle marks). Step times here run "
          "under CUPTI tracing; the untraced ones are in the tables above.\n")
    print("A coverage well below 1 means records were lost (the segment is shorter than the "
          "timed steps' wall time): the fraction then holds for the steps covered only.\n")
    print("| run | busy % | span ms | busy ms | records | segments | step ms (median, traced) "
          "| coverage (span / steps x median) | nvidia-smi util % |")
    print("|" + "---|" * 9)
    for t, r in rows:
        frac = r.get("busy_fraction")
        wall = (r.get("steps") or 0) * (r.get("step_ms_median") or 0)
        cover = r.get("busy_span_ms") / wall if wall and r.get("busy_span_ms") else None
        print(f"| {t[5:]} | {fmt(None if frac is None else 100 * frac)} "
              f"| {fmt(r.get('busy_span_ms'))} | {fmt(r.get('busy_ms'))} "
              f"| {r.get('busy_records', '–')} | {r.get('busy_segments', '–')} "
              f"| {fmt(r.get('step_ms_median'))} | {fmt(cover, 2)} "
              f"| {fmt(r.get('smi_util_mean'), 0)} |")
    print()


def modal_table(runs):
    ms = sorted({r["modalities"] for t, r in runs.items() if t.startswith("modal_")})
    if not ms:
        return
    print("### Ours: the step alone (random device tensors, B = 64, 112x112) vs number of modalities\n")
    print("| M | fp32 step ms | AMP + channels-last step ms | params (student) |")
    print("|---|---|---|---|")
    for m in ms:
        a = runs.get(f"modal_ours_fp32_m{m}", {})
        b = runs.get(f"modal_ours_fast_m{m}", {})
        print(f"| {m} | {fmt(a.get('step_ms_median'))} | {fmt(b.get('step_ms_median'))} "
              f"| {a.get('n_params_student', b.get('n_params_student', '–'))} |")
    print()


def plot(runs, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    batches = sorted({r["batch"] for t, r in runs.items() if t.startswith("cls_")})
    for impl, var, label in [("pytorch", "fp32", "PyTorch fp32"), ("pytorch", "amp", "PyTorch AMP"),
                             ("ours", "fp32", "ours fp32"), ("ours", "amp", "ours AMP"),
                             ("ours", "fast", "ours AMP + channels-last")]:
        pts = [(b, runs[f"cls_{impl}_{var}_b{b}"]["samples_per_s"]) for b in batches
               if f"cls_{impl}_{var}_b{b}" in runs]
        if pts:
            ax[0].plot(*zip(*pts), marker="o", label=label)
    ax[0].set(xlabel="batch size", ylabel="samples/s (end to end)", title="CASIA-SURF student step",
              xscale="log", xticks=batches or [64])
    ax[0].get_xaxis().set_major_formatter(matplotlib.ticker.ScalarFormatter())
    ax[0].legend(fontsize=8)
    threads = sorted({r["threads"] for t, r in runs.items() if t.startswith("load_")})
    for impl, label in [("ours", "ours"), ("pytorch", "PyTorch DataLoader")]:
        pts = [(n, runs[f"load_{impl}_t{n}"]["load_samples_per_s"]) for n in threads
               if f"load_{impl}_t{n}" in runs]
        if pts:
            ax[1].plot(*zip(*pts), marker="o", label=label)
    ax[1].set(xlabel="loader threads / workers", ylabel="samples/s", title="loader alone (B = 64)")
    ax[1].legend(fontsize=8)
    ms = sorted({r["modalities"] for t, r in runs.items() if t.startswith("modal_")})
    for var, label in [("fp32", "fp32"), ("fast", "AMP + channels-last")]:
        pts = [(m, runs[f"modal_ours_{var}_m{m}"]["step_ms_median"]) for m in ms
               if f"modal_ours_{var}_m{m}" in runs]
        if pts:
            ax[2].plot(*zip(*pts), marker="o", label=label)
    ax[2].set(xlabel="modalities M", ylabel="step ms (median)", title="ours, step alone (B = 64)")
    ax[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "gpu_scaling.svg"))


def main(out):
    runs = load(out)
    five_table(runs, "step_", "The step alone (batches on the device, 112 px)")
    five_table(runs, "cls_", "End to end (loader included)")
    for f in (cls_table, serve_table, seg_table, busy_table, thread_table, modal_table):
        f(runs)
    plot(runs, out)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "results")
