#!/usr/bin/env python3
"""The Python anchor of `cargo xtask bench serve` (issue 17): a model file served the way a user
would write it, with FastAPI + uvicorn + PyTorch, one process, no batching.

It reads the same safetensors file `mmanet serve` reads (weights with `safetensors.torch`, the
`__metadata__` JSON for the architecture and the input spec: docs/model_format.md), rebuilds the
deployment network in PyTorch with the same parameter names (the CASIA-SURF ResNet18-SE nets of
`benches/pytorch/surf_step.py`, the generic branch nets below), and answers
`POST /v1/predict` with the JSON of `mmanet serve`:

    {"inputs": {"<modality>": [numbers] | {"base64": "<png/jpeg bytes>"}, ...}}
 -> {"class": name, "probabilities": {name: p}, "present": [names]}

Absent modalities get a zero input and mask bit 0, as in `mmanet serve`. Supported decoders:
`vector`, `image`, `sequence` (without true lengths: full-length sequences only).

    PYTHONPATH=~/.cache/mmanet/pytorch-ref-2.11.0 python3 benches/serve/anchor.py MODEL \
        --port 8090 [--threads 1]
"""

import argparse
import base64
import json
import os
import sys

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import uvicorn
from fastapi import FastAPI, HTTPException
from safetensors import safe_open
from safetensors.torch import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "pytorch"))
from surf_step import branch, trunk  # noqa: E402  (the CASIA-SURF twins, same names)

BN_EPS = 1e-5


class DenseBnRelu(nn.Module):
    def __init__(self, d_in, d_out):
        super().__init__()
        self.fc = nn.Linear(d_in, d_out)
        self.bn = nn.BatchNorm1d(d_out, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(self.fc(x)))


class ConvStage(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)


class Conv1dStage(nn.Module):
    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, k, padding=k // 2)
        self.bn = nn.BatchNorm1d(c_out, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class GenericBranch(nn.Module):
    """`mmanet_models::generic` branches: `<i>.fc/.bn` or `<i>.conv/.bn`, then `out`."""

    def __init__(self, cfg):
        super().__init__()
        self.kind = cfg["kind"]
        layers, d = [], None
        if self.kind == "mlp":
            d = cfg["in_dim"]
            for h in cfg["hidden"]:
                layers.append(DenseBnRelu(d, h))
                d = h
        elif self.kind == "small_cnn":
            d = cfg["in_channels"]
            for c in cfg["channels"]:
                layers.append(ConvStage(d, c))
                d = c
        elif self.kind == "conv1d":
            d = cfg["in_features"]
            for c in cfg["channels"]:
                layers.append(Conv1dStage(d, c, cfg["kernel"]))
                d = c
        else:
            raise ValueError(f"unsupported branch kind {self.kind}")
        for i, layer in enumerate(layers):
            self.add_module(str(i), layer)
        self.n = len(layers)
        self.out = nn.Linear(d, cfg["out_dim"])

    def forward(self, x):
        h = x.float()
        if self.kind == "conv1d":
            h = h.transpose(1, 2)  # [B, F, T]
        for i in range(self.n):
            h = getattr(self, str(i))(h)
        if self.kind == "small_cnn":
            h = h.mean(dim=(2, 3))
        elif self.kind == "conv1d":
            h = h.mean(dim=2)
        return F.relu(self.out(h))


class GenericDeploy(nn.Module):
    def __init__(self, cfg, names):
        super().__init__()
        if cfg["fusion"]["kind"] != "concat":
            raise ValueError("the anchor implements concat fusion only")
        self.names = names
        for name, b in zip(names, cfg["branches"]):
            self.add_module(f"special_bone_{name}", GenericBranch(b))
        d = sum(b["out_dim"] for b in cfg["branches"])
        trunk_mod = nn.Module()
        for i, h in enumerate(cfg["trunk_hidden"]):
            trunk_mod.add_module(str(i), DenseBnRelu(d, h))
            d = h
        trunk_mod.out = nn.Linear(d, cfg["n_classes"])
        self.n_hidden = len(cfg["trunk_hidden"])
        self.shared_bone = trunk_mod

    def forward(self, xs, mask):
        feats = [
            getattr(self, f"special_bone_{n}")(x) * mask[:, i : i + 1]
            for i, (n, x) in enumerate(zip(self.names, xs))
        ]
        h = torch.cat(feats, 1)
        for i in range(self.n_hidden):
            h = getattr(self.shared_bone, str(i))(h)
        return self.shared_bone.out(h)


class SurfDeploy(nn.Module):
    """`SURF_MMANet` without `auxi_bone`: masked branch features, channel concat, trunk."""

    def __init__(self, cfg, names):
        super().__init__()
        if cfg["fusion"]["kind"] != "concat" or cfg["in_channels"] != 3:
            raise ValueError("the anchor implements 3-channel concat SURF nets only")
        w = cfg["base_width"]
        self.names = names
        for n in names:
            self.add_module(f"special_bone_{n}", branch(w))
        self.shared_bone = trunk(w, len(names), cfg["n_classes"])

    def forward(self, xs, mask):
        feats = [
            getattr(self, f"special_bone_{n}")(x) * mask[:, i].view(-1, 1, 1, 1)
            for i, (n, x) in enumerate(zip(self.names, xs))
        ]
        return self.shared_bone(torch.cat(feats, 1))


def load(path):
    with safe_open(path, framework="pt") as f:
        meta = f.metadata()
    model_cfg = json.loads(meta["model"])
    spec = json.loads(meta["input_spec"])
    names = [m["name"] for m in spec["modalities"]]
    arch = model_cfg["arch"]
    if arch == "generic":
        net = GenericDeploy(model_cfg, names)
    elif arch == "cls":
        net = SurfDeploy(model_cfg, names)
    else:
        raise ValueError(f"the anchor does not implement arch {arch}")
    net.load_state_dict(load_file(path), strict=True)
    return net.eval(), spec


def decode(mod, value):
    """One modality's request value -> a float32 tensor of the network's input shape."""
    d = mod["decoder"]
    kind = d["kind"]
    if kind == "image":
        if not isinstance(value, dict) or "base64" not in value:
            raise HTTPException(422, f"inputs.{mod['name']}: expected {{\"base64\": ...}}")
        buf = np.frombuffer(base64.b64decode(value["base64"]), np.uint8)
        grey = d["color"] == "grey"
        img = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
        if img is None:
            raise HTTPException(422, f"inputs.{mod['name']}: not an image")
        if d.get("size"):
            h, w = d["size"]
            if img.shape[:2] != (h, w):
                img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        if grey:
            img = img[:, :, None]
        elif d["color"] == "rgb":
            img = img[:, :, ::-1]
        c = img.shape[2]
        x = (img.astype(np.float32) - np.array(d["mean"][:c], np.float32)) / np.array(
            d["std"][:c], np.float32
        )
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))
    x = np.asarray(value, np.float32).reshape(-1)
    st = d.get("standardize")
    if kind == "vector":
        if st:
            x = (x - np.array(st["mean"], np.float32)) / np.array(st["std"], np.float32)
        return torch.from_numpy(x.reshape(d["shape"]))
    if kind == "sequence":
        x = x.reshape(-1, d["features"])
        if st:
            x = (x - np.array(st["mean"], np.float32)) / np.array(st["std"], np.float32)
        out = np.zeros((d["max_len"], d["features"]), np.float32)
        out[: min(len(x), d["max_len"])] = x[: d["max_len"]]
        return torch.from_numpy(out)
    raise HTTPException(422, f"decoder {kind} is not implemented by the anchor")


def zero_input(mod):
    d = mod["decoder"]
    if d["kind"] == "image":
        c = 1 if d["color"] == "grey" else 3
        return torch.zeros(c, *d["size"])
    if d["kind"] == "vector":
        return torch.zeros(d["shape"])
    if d["kind"] == "sequence":
        return torch.zeros(d["max_len"], d["features"])
    raise HTTPException(422, f"decoder {d['kind']} is not implemented by the anchor")


def make_app(path):
    net, spec = load(path)
    mods = spec["modalities"]
    classes = spec["classes"]
    app = FastAPI()

    @app.get("/healthz")
    def healthz():
        return {"ok": True}

    @app.post("/v1/predict")
    def predict(body: dict):
        inputs = body.get("inputs")
        if not isinstance(inputs, dict) or not inputs:
            raise HTTPException(422, "inputs: expected a non-empty object")
        unknown = set(inputs) - {m["name"] for m in mods}
        if unknown:
            raise HTTPException(422, f"inputs: unknown modality {sorted(unknown)}")
        xs, mask = [], []
        for m in mods:
            present = m["name"] in inputs
            xs.append((decode(m, inputs[m["name"]]) if present else zero_input(m))[None])
            mask.append(1.0 if present else 0.0)
        with torch.inference_mode():
            logits = net(xs, torch.tensor([mask]))
            p = torch.softmax(logits, 1)[0].tolist()
        best = max(range(len(p)), key=p.__getitem__)
        return {
            "class": classes[best],
            "probabilities": dict(zip(classes, p)),
            "present": [m["name"] for m in mods if m["name"] in inputs],
        }

    return app


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    uvicorn.run(make_app(a.model), host="127.0.0.1", port=a.port, log_level="warning")


if __name__ == "__main__":
    main()
