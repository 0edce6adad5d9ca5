#!/usr/bin/env python3
"""Seeded request bodies for `cargo xtask bench serve`: one JSON body per line, each with a
non-empty modality subset drawn uniformly, raw values as a user would send them (vectors on the
data's own scale: the standardiser's mean + std * N(0, 1); images as base64 PNG at the model's
input size, so no resize is involved and both servers decode the same pixels; sequences of
`max_len` steps).

    PYTHONPATH=~/.cache/mmanet/pytorch-ref-2.11.0 python3 benches/serve/requests.py MODEL \
        --n 64 --seed 1 --out bodies.jsonl
"""

import argparse
import base64
import itertools
import json

import cv2
import numpy as np
from safetensors import safe_open


def value(rng, d):
    kind = d["kind"]
    if kind == "vector":
        n = int(np.prod(d["shape"]))
        st = d.get("standardize")
        x = rng.standard_normal(n)
        if st:
            x = np.array(st["mean"]) + np.array(st["std"]) * x
        return [round(float(v), 6) for v in x]
    if kind == "sequence":
        x = rng.standard_normal((d["max_len"], d["features"]))
        return [[round(float(v), 6) for v in row] for row in x]
    if kind == "image":
        h, w = d["size"]
        c = 1 if d["color"] == "grey" else 3
        img = rng.integers(0, 256, (h, w, c), dtype=np.uint8)
        ok, png = cv2.imencode(".png", img)
        assert ok
        return {"base64": base64.b64encode(png.tobytes()).decode()}
    raise SystemExit(f"requests.py: decoder {kind} is not supported")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=64)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    with safe_open(a.model, framework="np") as f:
        spec = json.loads(f.metadata()["input_spec"])
    mods = spec["modalities"]
    subsets = [
        s
        for r in range(1, len(mods) + 1)
        for s in itertools.combinations(range(len(mods)), r)
    ]
    rng = np.random.default_rng(a.seed)
    with open(a.out, "w") as out:
        for _ in range(a.n):
            subset = subsets[rng.integers(len(subsets))]
            inputs = {mods[i]["name"]: value(rng, mods[i]["decoder"]) for i in subset}
            out.write(json.dumps({"inputs": inputs}) + "\n")


if __name__ == "__main__":
    main()
