#!/usr/bin/env python3
"""Convert a torchvision ResNet checkpoint (.pth) to the safetensors file `model.pretrained` reads.

ESANet's encoders start from ImageNet weights in the released MMANet code (src/args.py,
`--pretrained_on_imagenet`, torchvision's resnet18/34/50 files). tch cannot read a pickled
.pth, so convert it once with your own Python and torch (nothing else is needed):

    python3 scripts/torchvision_to_safetensors.py resnet50-19c8e357.pth data/imagenet/resnet50.safetensors

and name the output for both encoders in the config:

    [model]
    pretrained = { rgb = "data/imagenet/resnet50.safetensors", depth = "data/imagenet/resnet50.safetensors" }

The file keeps torchvision's names (`conv1.weight`, `bn1.*`, `layer1..4.*`); `fc.*` is dropped,
a `module.` prefix (DataParallel) is removed, `num_batches_tracked` is kept if present. The depth
encoder's 1-channel stem is made from the 3-channel `conv1.weight` when the run starts (summed
over the input channels, as the released code does), so one file serves both encoders.
"""

import argparse
import json
import struct
import sys

import torch

DTYPES = {
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.float64: "F64",
    torch.int64: "I64",
}
REQUIRED = ["conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var"]


def load_state_dict(path):
    sd = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        sys.exit(f"{path}: not a state dict (got {type(sd).__name__})")
    out = {}
    for name, t in sd.items():
        name = name[len("module."):] if name.startswith("module.") else name
        if name.startswith("fc."):
            continue
        if not isinstance(t, torch.Tensor):
            sys.exit(f"{path}: entry {name} is not a tensor")
        out[name] = t
    missing = [n for n in REQUIRED if n not in out]
    if missing or not any(n.startswith("layer4.") for n in out):
        sys.exit(f"{path}: not a torchvision ResNet state dict (missing {missing or ['layer4.*']})")
    return out


def tensor_bytes(t):
    """The tensor's little-endian bytes in row-major order."""
    t = t.detach().cpu().contiguous()
    if t.numel() == 0:
        return b""
    flat = t.view(-1).view(torch.uint8)  # reinterpreted, not converted
    try:
        return flat.numpy().tobytes()
    except (ImportError, RuntimeError):  # torch without numpy: slower, same bytes
        return bytes(flat.tolist())


def write_safetensors(tensors, path):
    header, chunks, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name]
        if t.dtype not in DTYPES:
            sys.exit(f"tensor {name}: unsupported dtype {t.dtype}")
        data = tensor_bytes(t)
        header[name] = {
            "dtype": DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        chunks.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt", "source": "torchvision ResNet"}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for c in chunks:
            f.write(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("pth", help="torchvision ResNet checkpoint (state dict)")
    ap.add_argument("out", help="safetensors file to write")
    a = ap.parse_args()
    tensors = load_state_dict(a.pth)
    write_safetensors(tensors, a.out)
    stem = tuple(tensors["conv1.weight"].shape)
    print(f"wrote {a.out}: {len(tensors)} tensors, stem conv1.weight {stem}")


if __name__ == "__main__":
    main()
