#!/usr/bin/env python3
"""PyTorch reference of one MMANet student training step on NYUv2-sized ESANet (issue 8).

The twin of `crates/mmanet-train/examples/bench_seg_step.rs`. Only torch and numpy are used; the
networks are written here module for module like the Rust crate `mmanet-models::esanet` (itself
following TUI-NICR/ESANet `src/models/model.py` and MMANet's `ESANet_KD_Auxi`), so that the
parameter counts are equal (checked: both programs print `n_params_teacher`, `n_params_student`):

- encoders: torchvision-style ResNet50 (Bottleneck, v1.5) or ResNet34 (BasicBlock) for RGB (3
  input channels) and depth (1), stem conv1 7x7/2 -> bn1 -> ReLU, max-pool, layer1..4; convs
  Kaiming-normal fan_out as torchvision;
- fusion: `SqueezeAndExciteFusionAdd` at the stem and after layer1..4,
  `fuse = SE_rgb(rgb * p_rgb) + SE_depth(depth * p_depth)`; the RGB stream continues from
  `fuse`, the depth stream from its own features; per-sample masks `p` `[B, 1, 1, 1]`;
- skips: ConvBNAct 1x1 on fuse1..3 to the decoder widths (identity when they match);
- context: PyramidPoolingModule, bins (1, 5), nearest upsampling;
- decoder (and the student's `auxi_decoder`, same config): 3 modules of ConvBNAct 3x3 -> 3 x
  NonBottleneck1D (BN eps 1e-3) -> side output 1x1 (train) -> learned-3x3-zeropad x2 upsample
  (+ skip), then conv_out 3x3 and two learned x2 upsamplings.

The step (the Rust trainer's `SegmentationObjective::loss` past `begin_epoch`, preset nyuv2-mmanet):
one random combination per sample from (RGB, depth, RGB-D); the teacher (all-ones mask, no grad)
in eval mode (`Fidelity::Paper`, the preset's) or, with `--reference-code`, in train mode with the
teacher decoder's first-stage feature as MAD's prediction map (the released code's quirk);
loss = sum over the 4 output scales of the class-weighted CE2d (void 0 ignored, ESANet's
`CrossEntropyLoss2d`) + 4.0 * segmentation MAD (fuse_cache[0..3], maps taller than 30 pooled to
30x40, Gram in two column halves with per-half row normalisation, teacher-entropy pixel weights;
plain autograd as the released code, so O(N^2) memory) + 0.2 * MAR (the auxi_decoder's CE2d
summed over its 4 outputs, full resolution, /8, /16, /32, on the depth-only samples, boolean
indexing, as the released code and the Rust trainer); class weights all ones; SGD lr 0.01, momentum 0.9, Nesterov, weight decay 1e-4.

Inputs are random tensors created once on the device: RGB and depth standard normal, labels
uniform in 0..=40, and their nearest-downsampled /8, /16, /32 copies.

`--amp` runs both forwards under `torch.autocast("cuda", dtype=torch.float16)` and the losses in
f32 on the outputs cast to f32 (as bench_seg_step; `--amp-losses`: the losses under autocast too,
as the released code, whose fp16 Gram products can overflow: the scale's NaN then becomes 0). No
GradScaler by default (plain autocast, the convention of surf_step.py; the released code and
bench_seg_step use one; `--grad-scaler` adds torch.amp.GradScaler).

Prints one JSON line with the keys of bench_seg_step plus gpu_max_mem_mib
(`torch.cuda.max_memory_allocated`) and gpu_max_reserved_mib on CUDA.
"""

import argparse
import json
import statistics
import subprocess
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

N_CLASSES = 40
LAMBDA_MAD = 4.0
LAMBDA_MAR = 0.2
COMBINATIONS = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)  # (RGB, depth)
WEAK = [0.0, 1.0]  # depth only
MAR_EMPTY = 1e-16


# ---------------------------------------------------------------------------------------------
# encoder (torchvision ResNet without fc)


def conv_kaiming(c_in, c_out, k, s, p):
    conv = nn.Conv2d(c_in, c_out, k, s, p, bias=False)
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return conv


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in, planes, stride):
        super().__init__()
        self.conv1 = conv_kaiming(c_in, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv_kaiming(planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or c_in != planes:
            self.downsample = nn.Sequential(conv_kaiming(c_in, planes, 1, stride, 0), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        idn = x if self.downsample is None else self.downsample(x)
        return F.relu(out + idn)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = conv_kaiming(c_in, planes, 1, 1, 0)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv_kaiming(planes, planes, 3, stride, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv_kaiming(planes, out, 1, 1, 0)
        self.bn3 = nn.BatchNorm2d(out)
        self.downsample = None
        if stride != 1 or c_in != out:
            self.downsample = nn.Sequential(conv_kaiming(c_in, out, 1, stride, 0), nn.BatchNorm2d(out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        idn = x if self.downsample is None else self.downsample(x)
        return F.relu(out + idn)


class ResNetEncoder(nn.Module):
    def __init__(self, block, layers, in_channels, width=64):
        super().__init__()
        self.conv1 = conv_kaiming(in_channels, width, 7, 2, 3)
        self.bn1 = nn.BatchNorm2d(width)
        c = width
        for i, n in enumerate(layers):
            planes = width << i
            blocks = []
            for j in range(n):
                blocks.append(block(c, planes, (1 if i == 0 else 2) if j == 0 else 1))
                c = planes * block.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
        e = block.expansion
        self.channels = [width, width * e, 2 * width * e, 4 * width * e, 8 * width * e]

    def forward_first_conv(self, x):
        return F.relu(self.bn1(self.conv1(x)))

    def forward_layer(self, i, x):
        return getattr(self, f"layer{i + 1}")(x)


# ---------------------------------------------------------------------------------------------
# ESANet blocks (PyTorch default init outside the encoders, as NYUv2 without --he_init)


class ConvBNAct(nn.Module):
    def __init__(self, c_in, c_out, k):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, 1, k // 2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class SqueezeAndExcitation(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        hidden = max(c // r, 1)
        self.fc = nn.Sequential(nn.Conv2d(c, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, c, 1))

    def forward(self, x):
        w = torch.sigmoid(self.fc(F.adaptive_avg_pool2d(x, 1)))
        return x * w


class SqueezeAndExciteFusionAdd(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.se_rgb = SqueezeAndExcitation(c, r)
        self.se_depth = SqueezeAndExcitation(c, r)

    def forward(self, rgb, depth, p_rgb, p_depth):
        return self.se_rgb(rgb * p_rgb) + self.se_depth(depth * p_depth)


class NonBottleneck1D(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv3x1_1 = nn.Conv2d(c, c, (3, 1), 1, (1, 0), bias=True)
        self.conv1x3_1 = nn.Conv2d(c, c, (1, 3), 1, (0, 1), bias=True)
        self.bn1 = nn.BatchNorm2d(c, eps=1e-3)
        self.conv3x1_2 = nn.Conv2d(c, c, (3, 1), 1, (1, 0), bias=True)
        self.conv1x3_2 = nn.Conv2d(c, c, (1, 3), 1, (0, 1), bias=True)
        self.bn2 = nn.BatchNorm2d(c, eps=1e-3)

    def forward(self, x):
        o = F.relu(self.conv3x1_1(x))
        o = F.relu(self.bn1(self.conv1x3_1(o)))
        o = F.relu(self.conv3x1_2(o))
        o = self.bn2(self.conv1x3_2(o))
        return F.relu(o + x)


class LearnedUpsample(nn.Module):
    """learned-3x3-zeropad: nearest x2, depthwise 3x3 conv (padding 1) with a bilinear-like init."""

    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, 1, 1, groups=c, bias=True)
        k = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16.0
        with torch.no_grad():
            self.conv.weight.copy_(k.view(1, 1, 3, 3).expand(c, 1, 3, 3))
            self.conv.bias.zero_()

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class PyramidPoolingModule(nn.Module):
    def __init__(self, c_in, c_out, bins=(1, 5)):
        super().__init__()
        red = c_in // len(bins)
        self.bins = bins
        self.features = nn.ModuleList(
            [nn.Sequential(nn.AdaptiveAvgPool2d(b), ConvBNAct(c_in, red, 1)) for b in bins]
        )
        self.final_conv = ConvBNAct(c_in + red * len(bins), c_out, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        outs = [x] + [F.interpolate(f(x), size=(h, w), mode="nearest") for f in self.features]
        return self.final_conv(torch.cat(outs, 1))


class DecoderModule(nn.Module):
    def __init__(self, c_in, c_out, n_blocks, n_classes):
        super().__init__()
        self.conv3x3 = ConvBNAct(c_in, c_out, 3)
        self.decoder_blocks = nn.Sequential(*[NonBottleneck1D(c_out) for _ in range(n_blocks)])
        self.side_output = nn.Conv2d(c_out, n_classes, 1)
        self.upsample = LearnedUpsample(c_out)

    def forward(self, x, skip):
        o = self.decoder_blocks(self.conv3x3(x))
        side = self.side_output(o) if self.training else None
        return self.upsample(o) + skip, side


class Decoder(nn.Module):
    def __init__(self, c_in, channels=(512, 256, 128), n_blocks=3, n_classes=N_CLASSES):
        super().__init__()
        ins = [c_in, channels[0], channels[1]]
        for i in range(3):
            setattr(self, f"decoder_module_{i + 1}", DecoderModule(ins[i], channels[i], n_blocks, n_classes))
        self.conv_out = nn.Conv2d(channels[2], n_classes, 3, 1, 1)
        self.upsample1 = LearnedUpsample(n_classes)
        self.upsample2 = LearnedUpsample(n_classes)

    def forward(self, context, skips):
        """skips = [skip3 /16, skip2 /8, skip1 /4] -> (logits, sides /8 /16 /32, features /16 /8 /4)."""
        x, sides, feats = context, [], []
        for i, skip in enumerate(skips):
            x, side = getattr(self, f"decoder_module_{i + 1}")(x, skip)
            feats.append(x)
            if side is not None:
                sides.append(side)
        sides.reverse()
        return self.upsample2(self.upsample1(self.conv_out(x))), sides, feats


class ESANet(nn.Module):
    """Teacher (`auxi=False`, mask ignored) or student with `auxi_decoder` (`auxi=True`)."""

    def __init__(self, encoder="r50", auxi=False, teacher=False, decoder_channels=(512, 256, 128)):
        super().__init__()
        block = Bottleneck if encoder == "r50" else BasicBlock
        self.encoder_rgb = ResNetEncoder(block, [3, 4, 6, 3], 3)
        self.encoder_depth = ResNetEncoder(block, [3, 4, 6, 3], 1)
        ch = self.encoder_rgb.channels
        dc = decoder_channels
        self.teacher = teacher
        for i in range(5):
            setattr(self, f"se_layer{i}", SqueezeAndExciteFusionAdd(ch[i]))
        for i, (c_in, c_out) in enumerate([(ch[1], dc[2]), (ch[2], dc[1]), (ch[3], dc[0])]):
            skip = nn.Sequential(ConvBNAct(c_in, c_out, 1)) if c_in != c_out else nn.Identity()
            setattr(self, f"skip_layer{i + 1}", skip)
        self.context_module = PyramidPoolingModule(ch[4], dc[0])
        self.decoder = Decoder(dc[0], dc)
        self.auxi_decoder = Decoder(dc[0], dc) if auxi else None

    def forward(self, rgb, depth, mask):
        """Returns (logits, sides, fuse_cache [context, skip3, skip2, skip1], main features, aux outputs [full, /8, /16, /32])."""
        if self.teacher:
            mask = torch.ones_like(mask)
        p_rgb = mask[:, 0].view(-1, 1, 1, 1).to(rgb.dtype)
        p_depth = mask[:, 1].view(-1, 1, 1, 1).to(rgb.dtype)
        er, ed = self.encoder_rgb, self.encoder_depth
        r = er.forward_first_conv(rgb)
        d = ed.forward_first_conv(depth)
        fuse = self.se_layer0(r, d, p_rgb, p_depth)
        r = F.max_pool2d(fuse, 3, 2, 1)
        d = F.max_pool2d(d, 3, 2, 1)
        skips = []
        for i in range(4):
            r = er.forward_layer(i, r)
            d = ed.forward_layer(i, d)
            fuse = getattr(self, f"se_layer{i + 1}")(r, d, p_rgb, p_depth)
            if i < 3:
                skips.append(getattr(self, f"skip_layer{i + 1}")(fuse))
            r = fuse
        context = self.context_module(fuse)
        ordered = [skips[2], skips[1], skips[0]]
        logits, sides, feats = self.decoder(context, ordered)
        aux = None
        if self.auxi_decoder is not None:
            aux_logits, aux_sides, _ = self.auxi_decoder(context, ordered)
            aux = [aux_logits] + aux_sides
        return logits, sides, [context, skips[2], skips[1], skips[0]], feats, aux


# ---------------------------------------------------------------------------------------------
# losses


def weighted_ce_2d(logits, labels, weights):
    """ESANet CrossEntropyLoss2d: sum of w_y CE over non-void pixels / sum of their w_y."""
    target = labels.long() - 1
    per_pixel = F.cross_entropy(logits, target, weight=weights.to(logits.dtype), reduction="none", ignore_index=-1)
    valid = target >= 0
    divisor = (weights[target.clamp(min=0)] * valid).sum()
    divisor = torch.where(divisor > 0, divisor, torch.ones_like(divisor))
    return per_pixel.sum() / divisor


def multiscale_ce(outputs, labels, weights):
    return sum(weighted_ce_2d(o, y, weights) for o, y in zip(outputs, labels))


def mad_segmentation(student_maps, teacher_maps, pred):
    """Segmentation MAD (docs/method.md §1.2), summed over scales, NaN -> 0."""
    total = 0.0
    for s, t in zip(student_maps, teacher_maps):
        t = t.detach()
        if s.shape[2] > 30:
            s = F.adaptive_avg_pool2d(s, (30, 40))
            t = F.adaptive_avg_pool2d(t, (30, 40))
        c = s.shape[1]
        p = pred.detach()
        if p.shape[2:] != s.shape[2:]:
            p = F.adaptive_avg_pool2d(p, s.shape[2:])
        fs = s.permute(0, 2, 3, 1).reshape(-1, c)
        ft = t.permute(0, 2, 3, 1).reshape(-1, c).to(fs.dtype)
        n = fs.shape[0]
        e = 0.0
        for c0, c1 in ((0, n // 2), (n // 2, n)):
            gs = F.normalize(fs @ fs[c0:c1].t(), p=2, dim=1)
            gt = F.normalize(ft @ ft[c0:c1].t(), p=2, dim=1)
            e = e + (gs - gt).pow(2).sum(1)
        ls = F.log_softmax(p.float(), dim=1)
        ent = -(ls.exp() * ls).sum(1).reshape(-1)
        tot = ent.sum()
        w = ent / torch.where(tot > 0, tot, torch.ones_like(tot))
        total = total + (w * e).sum()
    return torch.nan_to_num(total, nan=0.0) if torch.is_tensor(total) else total


def mar_segmentation(aux_outputs, labels, mask, weights):
    """MAR: CE2d of the auxi_decoder's outputs (full, /8, /16, /32) on the weak samples, summed."""
    weak = (mask == torch.tensor(WEAK, device=mask.device)).all(1)
    if not bool(weak.any()):
        return sum(o.sum() for o in aux_outputs) * 0.0  # the Rust Fidelity::Paper empty value (the reference: 1e-16)
    return sum(weighted_ce_2d(o[weak], y[weak], weights) for o, y in zip(aux_outputs, labels))


# ---------------------------------------------------------------------------------------------
# benchmark


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def vm_hwm_mib():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def gpu_mem_used_mib():
    """nvidia-smi's memory of this process (or of the whole GPU 0), as bench_seg_step reports it."""
    def run(args):
        try:
            r = subprocess.run(["nvidia-smi"] + args, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return r.stdout if r.returncode == 0 else None

    text = run(["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"])
    if text:
        for line in text.splitlines():
            parts = [x.strip() for x in line.split(",")]
            if len(parts) == 2 and parts[0] == str(os.getpid()):
                return float(parts[1]), "nvidia-smi compute-apps (this process)"
    text = run(["--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"])
    if text:
        return float(text.splitlines()[0].strip()), "nvidia-smi memory.used (whole GPU 0)"
    return None, None


def labels_at(labels, factor):
    h, w = labels.shape[1] // factor, labels.shape[2] // factor
    return F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--amp", action="store_true", help="torch.autocast fp16 on CUDA (no GradScaler)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--idle-mark-ms", type=int, default=0, help="GPU idle before/after the timed steps (benches/gpu_busy)")
    ap.add_argument("--encoder", choices=["r50", "r34"], default="r50")
    ap.add_argument("--amp-losses", action="store_true", help="losses under autocast too (fp16 Gram products), as the released code")
    ap.add_argument("--grad-scaler", action="store_true", help="torch.amp.GradScaler under --amp (bench_seg_step always scales)")
    ap.add_argument("--reference-code", action="store_true", help="teacher in train mode, decoder feature as MAD prediction")
    a = ap.parse_args()
    if a.height % 32 or a.width % 32:
        sys.exit("--height and --width must be multiples of 32")
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dev = torch.device("cuda" if a.device == "cuda" else "cpu")
    amp = a.amp and dev.type == "cuda"

    teacher = ESANet(a.encoder, auxi=False, teacher=True).to(dev)
    student = ESANet(a.encoder, auxi=True).to(dev)
    for p in teacher.parameters():
        p.requires_grad_(False)
    teacher.train(a.reference_code)
    student.train()
    opt = torch.optim.SGD(student.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=1e-4)

    b, h, w = a.batch, a.height, a.width
    rgb = torch.randn(b, 3, h, w, device=dev)
    depth = torch.randn(b, 1, h, w, device=dev)
    full = torch.randint(0, N_CLASSES + 1, (b, h, w), device=dev)
    labels = [full, labels_at(full, 8), labels_at(full, 16), labels_at(full, 32)]
    weights = torch.ones(N_CLASSES, device=dev)
    rng = np.random.RandomState(a.seed)

    scaler = torch.amp.GradScaler("cuda") if amp and a.grad_scaler else None
    keep = amp and a.amp_losses  # losses under autocast (fp16) as the released code

    def f(t):
        return t if keep else t.float()

    def step():
        mask = torch.from_numpy(COMBINATIONS[rng.choice(3, size=b)]).to(dev)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=amp):
            logits, sides, fuse_s, _, aux = student(rgb, depth, mask)
            with torch.no_grad():
                t_logits, _, fuse_t, t_feats, _ = teacher(rgb, depth, mask)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=keep):
            ce = multiscale_ce([f(x) for x in [logits] + sides], labels, weights)
            fs, ft = [f(x) for x in fuse_s[:3]], [f(x) for x in fuse_t[:3]]
            pred = f(t_feats[0] if a.reference_code else t_logits)
            mad = mad_segmentation(fs, ft, pred) * LAMBDA_MAD
            if os.environ.get("BENCH_SEG_DEBUG"):
                for j in range(3):
                    with torch.no_grad():
                        one = mad_segmentation([fs[j]], [ft[j]], pred)
                    print(f"debug scale {j}: {list(fs[j].shape)} {fs[j].dtype} |s|max {fs[j].abs().max().item():.4e} "
                          f"|t|max {ft[j].abs().max().item():.4e} |pred|max {pred.abs().max().item():.4e} mad {float(one):.6f}",
                          file=sys.stderr)
            mar = mar_segmentation([f(x) for x in aux], labels, mask, weights) * LAMBDA_MAR
            loss = ce + mad + mar
        opt.zero_grad(set_to_none=False)
        if scaler is None:
            loss.backward()
            opt.step()
        else:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        return loss, ce, mad, mar

    times, total, last = [], 0.0, None
    def idle_mark():
        if a.idle_mark_ms > 0:
            if dev.type == "cuda":
                torch.cuda.synchronize()
            time.sleep(a.idle_mark_ms / 1e3)

    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            idle_mark()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        parts = step()
        last = [float(x.detach()) for x in parts]
        if dev.type == "cuda":
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if i >= a.warmup:
            times.append(dt * 1e3)
            total += dt
        print(f"step {i}: {dt * 1e3:.1f} ms, loss {last[0]:.4f}", file=sys.stderr)
    idle_mark()

    record = {
        "impl": "pytorch",
        "mode": "seg-step",
        "data": "synthetic tensors on device",
        "device": "cuda" if dev.type == "cuda" else "cpu",
        "encoder": a.encoder,
        "batch": b,
        "height": h,
        "width": w,
        "amp": a.amp,
        "grad_scaler": scaler is not None,
        "amp_losses": keep,
        "fidelity": "ReferenceCode" if a.reference_code else "Paper",
        "lambda_mad": LAMBDA_MAD,
        "lambda_mar": LAMBDA_MAR,
        "steps": a.steps,
        "warmup": a.warmup,
        "threads": a.threads,
        "n_params_teacher": n_params(teacher),
        "n_params_student": n_params(student),
        "step_ms_median": statistics.median(times),
        "step_ms_min": min(times),
        "samples_per_s": a.steps * b / total,
        "step_ms_all": times,
        "last_loss": last[0],
        "last_ce": last[1],
        "last_mad": last[2],
        "last_mar": last[3],
        "torch_version": torch.__version__,
    }
    if dev.type == "cuda":
        used, source = gpu_mem_used_mib()
        record["gpu_mem_used_mib"] = used
        record["gpu_mem_source"] = source
        record["gpu_max_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
        record["gpu_max_reserved_mib"] = torch.cuda.max_memory_reserved() / 2**20
    record["peak_rss_mib"] = vm_hwm_mib()
    record["torch_threads"] = torch.get_num_threads()
    print(json.dumps(record))


if __name__ == "__main__":
    main()
