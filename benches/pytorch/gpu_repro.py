#!/usr/bin/env python3
"""The GPU-sized CASIA-SURF reproduction table and plot (issue 7, experiment 3).

    python3 repro.py OUT SEED_DIR...

Each SEED_DIR holds the run directories `teacher/`, `unified/` (modality dropout) and `mmanet/`
written by `mmanet train` (train.sh). Prints a Markdown table of ACER per modality combination
(mean ± sample std over the seeds), the paired difference MMANet − dropout, the average and the
worst combination, and the weak set MAR mined per seed; writes OUT/repro_gpu.svg (ACER per
combination, one series per model, error bars = std) when matplotlib is there."""
import json
import os
import statistics as st
import sys

MODELS = [("unified", "modality dropout"), ("mmanet", "MMANet")]


def combos(path):
    report = json.load(open(path))
    return {"+".join(c["present"]): c for c in report["results"][0]["combinations"]}


def mean_std(xs):
    return f"{st.mean(xs):.2f} ± {st.stdev(xs):.2f}" if len(xs) > 1 else f"{xs[0]:.2f}"


def main(out, seed_dirs):
    runs = {(m, d): combos(os.path.join(d, m, "report.json")) for m, _ in MODELS for d in seed_dirs}
    order = list(runs[("unified", seed_dirs[0])].keys())

    def acer(m, c):
        if c == "average":
            return [100 * st.mean(runs[(m, d)][k]["acer"] for k in order) for d in seed_dirs]
        if c == "worst":
            return [100 * max(runs[(m, d)][k]["acer"] for k in order) for d in seed_dirs]
        return [100 * runs[(m, d)][c]["acer"] for d in seed_dirs]

    print(f"ACER (%) on the test split, mean ± std over {len(seed_dirs)} seeds; "
          "difference = MMANet − dropout per seed (negative: MMANet better).\n")
    print("| combination | modality dropout | MMANet | difference (points) | per seed |")
    print("|---|---|---|---|---|")
    for c in order + ["average", "worst"]:
        a, b = acer("unified", c), acer("mmanet", c)
        diff = [y - x for x, y in zip(a, b)]
        name = f"**{c}**" if c in ("average", "worst") else c
        print(f"| {name} | {mean_std(a)} | {mean_std(b)} | {mean_std(diff)} "
              f"| {', '.join(f'{x:+.2f}' for x in diff)} |")
    print()
    for m, label in MODELS:
        acc = [100 * st.mean(runs[(m, d)][k]["accuracy"] for k in order) for d in seed_dirs]
        print(f"- {label}: average accuracy {mean_std(acc)} %")
    for d in seed_dirs:
        weak = os.path.join(d, "mmanet", "weak_set.json")
        if os.path.exists(weak):
            print(f"- weak set mined ({os.path.basename(d)}): {', '.join(json.load(open(weak))['weak_set'])}")
        teacher = os.path.join(d, "teacher", "report.json")
        if os.path.exists(teacher):
            full = combos(teacher)
            print(f"- teacher ({os.path.basename(d)}, all modalities): ACER "
                  f"{100 * st.mean(c['acer'] for c in full.values()):.2f} %")
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(8, 4))
    xs = range(len(order) + 1)
    for i, (m, label) in enumerate(MODELS):
        vals = [acer(m, c) for c in order + ["average"]]
        ax.errorbar([x + (i - 0.5) * 0.2 for x in xs], [st.mean(v) for v in vals],
                    yerr=[st.stdev(v) if len(v) > 1 else 0 for v in vals], fmt="o", capsize=3,
                    label=label)
    ax.set_xticks(list(xs), order + ["average"])
    ax.set(ylabel="ACER % (lower is better)",
           title=f"CASIA-SURF architecture, synthetic set, GPU-sized ({len(seed_dirs)} seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(out, "repro_gpu.svg"))


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
