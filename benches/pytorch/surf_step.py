#!/usr/bin/env python3
"""PyTorch reference of one MMANet student training step on CASIA-SURF (issue 8).

The twin of `crates/mmanet-train/examples/bench_step.rs`, written in the structure of the
official code (shicaiwei123/MMANet-CVPR2023, `classification/`):

- data: `datasets/surf_txt.py::SURF` reading the list file, `cv2.imread` (3-channel BGR; PIL +
  numpy when cv2 is not importable), the train transform of `surf_baseline_multi_dataloader.py`
  (Resize 144 -> RondomRotion_multi(30) on a 0.8 canvas -> RondomCrop_multi(112) ->
  RandomHorizontalFlip_multi -> ToTensor -> (x - 127.5) / 128), a torch DataLoader with
  `num_workers = threads`, shuffle, drop_last;
- nets: `models/resnet18_se.py` branches (conv1 3x3/2, bn, relu, maxpool, layer1, layer2, SE) for
  R, D, I, channel concat (384), `shared_bone` = layer3_new, layer4, avgpool, flatten, fc;
  `SURF_MMANet` adds `auxi_bone` (its own layer3_new, layer4, fc) on the same fused tensor;
  `lib/model_arch.py::modality_drop` draws one of the 7 combinations per sample;
- loss (`lib/model_develop.py::train_knowledge_distill_patch_feature_auxi_weak`, epoch > 5):
  CE + 0.5 * MAR + 30 * MAD with the code's reductions (docs/method.md §1.1 and 2.1), weak set
  W = [R+I, R, I]; SGD lr 1e-3, momentum 0.9, Nesterov, weight decay 5e-4.

The official `SURF_MMANet.forward` runs `auxi_bone` three times on the same input; the Rust
student runs it once, so this script does the same by default (`--auxi-calls 3` for the
official cost).

Prints one JSON line with the keys of bench_step: step_ms_median (end to end), compute_ms_median,
samples_per_s, load_samples_per_s, peak_rss_mib (VmHWM of the main process) plus
peak_rss_workers_mib (sum of the loader workers' VmHWM) and, on CUDA, gpu_max_mem_mib.
"""

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

try:
    import cv2

    cv2.setNumThreads(0)
    HAVE_CV2 = True
except ImportError:  # PIL + numpy fallback
    HAVE_CV2 = False
    from PIL import Image

LAMBDA_MAD = 30.0
LAMBDA_MAR = 0.5
COMBINATIONS = [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1], [1, 1, 1]]
WEAK_SET = [[1, 0, 1], [1, 0, 0], [0, 0, 1]]  # R+I, R, I (order R, D, I)


# ---------------------------------------------------------------------------------------------
# data (datasets/surf_txt.py + the multi-modal transforms)


def imread_bgr(path):
    if HAVE_CV2:
        img = cv2.imread(path)  # 3-channel BGR, gray replicated
        if img is None:
            raise IOError(f"cannot read {path}")
        return img
    img = np.asarray(Image.open(path).convert("RGB"))
    return np.ascontiguousarray(img[:, :, ::-1])


def resize(img, size):
    if HAVE_CV2:
        return cv2.resize(img, (size, size))
    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def rotate(img, angle):
    """RondomRotion_multi: rotate by `angle` on a canvas shrunk by 0.8, black border."""
    h, w = img.shape[:2]
    if HAVE_CV2:
        cx, cy = w / 2, h / 2
        m = cv2.getRotationMatrix2D((cx, cy), -angle, 1.0)
        cos, sin = np.abs(m[0, 0]), np.abs(m[0, 1])
        nw = int((h * sin) * 0.8 + (w * cos) * 0.8)
        nh = int((h * cos) * 0.8 + (w * sin) * 0.8)
        m[0, 2] += (nw / 2) - cx
        m[1, 2] += (nh / 2) - cy
        return cv2.warpAffine(img, m, (nw, nh))
    rad = np.deg2rad(angle)
    cos, sin = abs(np.cos(rad)), abs(np.sin(rad))
    nw, nh = int(h * sin * 0.8 + w * cos * 0.8), int(h * cos * 0.8 + w * sin * 0.8)
    rot = Image.fromarray(img).rotate(-angle, resample=Image.BILINEAR, expand=True)
    rw, rh = rot.size
    left, top = (rw - nw) // 2, (rh - nh) // 2
    return np.asarray(rot.crop((left, top, left + nw, top + nh)))


class SurfTrain(Dataset):
    """`SURF` with the train transform; returns (rgb, depth, ir, label)."""

    def __init__(self, root, list_file, size=112, resize_to=144):
        self.root, self.size, self.resize_to = root, size, resize_to
        with open(os.path.join(root, list_file)) as f:
            lines = [l.split() for l in f if l.strip()]
        self.samples = [(l[0], l[1], l[2], int(l[3])) for l in lines]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        rgb, depth, ir, label = self.samples[idx]
        imgs = [imread_bgr(os.path.join(self.root, p)) for p in (rgb, depth, ir)]
        out = self.transform(imgs)
        return out[0], out[1], out[2], label

    def transform(self, imgs):
        return self.random_part([resize(i, self.resize_to) for i in imgs])

    def random_part(self, imgs):
        """Rotation, crop, flip and normalisation of images already at `resize_to`."""
        angle = np.random.randint(-30, 31)
        imgs = [rotate(i, angle) for i in imgs]
        h, w = imgs[0].shape[:2]
        y = np.random.randint(0, h - self.size) if h > self.size else 0
        x = np.random.randint(0, w - self.size) if w > self.size else 0
        imgs = [i[y : y + self.size, x : x + self.size] for i in imgs]
        if np.random.rand() < 0.5:
            imgs = [np.ascontiguousarray(i[:, ::-1]) for i in imgs]
        return [
            (torch.from_numpy(np.ascontiguousarray(i.transpose(2, 0, 1))).float() - 127.5) / 128.0
            for i in imgs
        ]


class SurfPredecoded(SurfTrain):
    """`SurfTrain` over the same files decoded and resized to 144 once, kept as one memory-mapped
    uint8 NumPy array `[N, 3, 144, 144, 3]` (what a PyTorch user would write to skip JPEG
    decoding): the random part of the transform runs per sample as in `SurfTrain`."""

    def __init__(self, root, list_file, cache_dir, size=112, resize_to=144):
        super().__init__(root, list_file, size, resize_to)
        os.makedirs(cache_dir, exist_ok=True)
        path = os.path.join(cache_dir, f"{os.path.basename(list_file)}.{resize_to}.u8.npy")
        shape = (len(self.samples), 3, resize_to, resize_to, 3)
        if not os.path.exists(path):
            tmp = path + ".tmp.npy"
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            for k, (rgb, depth, ir, _) in enumerate(self.samples):
                for m, p in enumerate((rgb, depth, ir)):
                    arr[k, m] = resize(imread_bgr(os.path.join(root, p)), resize_to)
            arr.flush()
            del arr
            os.replace(tmp, path)
        self.path = path
        self.array = None  # opened per worker process

    def __getitem__(self, idx):
        if self.array is None:
            self.array = np.load(self.path, mmap_mode="r")
        imgs = [np.asarray(self.array[idx, m]) for m in range(3)]
        out = self.transform(imgs)
        return out[0], out[1], out[2], self.samples[idx][3]

    def transform(self, imgs):
        # Already at `resize_to`: only the random part remains.
        return self.random_part(imgs)


# ---------------------------------------------------------------------------------------------
# nets (models/resnet18_se.py, models/surf_baseline.py)


def conv3x3(i, o, stride=1):
    return nn.Conv2d(i, o, 3, stride, 1, bias=False)


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


def make_layer(inplanes, planes, stride):
    return nn.Sequential(BasicBlock(inplanes, planes, stride), BasicBlock(planes, planes))


class SELayer(nn.Module):
    def __init__(self, channel, reduction=16):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(
            nn.Linear(channel, channel // reduction),
            nn.ReLU(inplace=True),
            nn.Linear(channel // reduction, channel),
            nn.Sigmoid(),
        )

    def forward(self, x):
        b, c = x.shape[:2]
        y = self.fc(self.avg_pool(x).view(b, c)).view(b, c, 1, 1)
        return x * y.expand_as(x)


def branch(w):
    return nn.Sequential(
        conv3x3(3, w, 2),
        nn.BatchNorm2d(w),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
        make_layer(w, w, 1),
        make_layer(w, 2 * w, 2),
        SELayer(2 * w, 16),
    )


def trunk(w, n_modal=3, n_classes=2):
    return nn.Sequential(
        make_layer(n_modal * 2 * w, 4 * w, 2),  # layer3_new
        make_layer(4 * w, 8 * w, 2),  # layer4
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(8 * w, n_classes),
    )


def init_weights(module):
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.constant_(m.weight, 1)
            nn.init.constant_(m.bias, 0)


class SURF_Multi(nn.Module):
    """Teacher: no mask."""

    def __init__(self, w=64):
        super().__init__()
        self.special_bone_rgb, self.special_bone_depth, self.special_bone_ir = (
            branch(w),
            branch(w),
            branch(w),
        )
        self.shared_bone = trunk(w)
        init_weights(self)

    def forward(self, img_rgb, img_depth, img_ir):
        x = torch.cat(
            (
                self.special_bone_rgb(img_rgb),
                self.special_bone_depth(img_depth),
                self.special_bone_ir(img_ir),
            ),
            dim=1,
        )
        layer3 = self.shared_bone[0](x)
        layer4 = self.shared_bone[1](layer3)
        x = self.shared_bone[4](self.shared_bone[3](self.shared_bone[2](layer4)))
        return x, layer3, layer4


class SURF_MMANet(nn.Module):
    """Student: per-sample masked branch features, shared trunk and `auxi_bone`."""

    def __init__(self, w=64, auxi_calls=1):
        super().__init__()
        self.special_bone_rgb, self.special_bone_depth, self.special_bone_ir = (
            branch(w),
            branch(w),
            branch(w),
        )
        self.shared_bone = trunk(w)
        self.auxi_bone = trunk(w)
        self.auxi_calls = auxi_calls
        init_weights(self)

    def forward(self, img_rgb, img_depth, img_ir, p):
        x_rgb = self.special_bone_rgb(img_rgb) * p[:, 0]
        x_depth = self.special_bone_depth(img_depth) * p[:, 1]
        x_ir = self.special_bone_ir(img_ir) * p[:, 2]
        x = torch.cat((x_rgb, x_depth, x_ir), dim=1)
        layer3 = self.shared_bone[0](x)
        layer4 = self.shared_bone[1](layer3)
        out = self.shared_bone[4](self.shared_bone[3](self.shared_bone[2](layer4)))
        aux = [self.auxi_bone(x) for _ in range(self.auxi_calls)]
        aux = (aux * 3)[:3]  # the official code returns three (identical) aux outputs
        return out, layer3, layer4, aux[0], aux[1], aux[2], p


def modality_drop(batch, device):
    """lib/model_arch.py::modality_drop with p == [0, 0, 0]: one combination per sample."""
    idx = np.random.choice(len(COMBINATIONS), size=batch)
    p = torch.tensor([COMBINATIONS[i] for i in idx], dtype=torch.float32)
    return p.view(batch, 3, 1, 1, 1).to(device)


# ---------------------------------------------------------------------------------------------
# losses (loss/kd/mad.py::MAD, the MAR term of model_develop.py)


def mad_loss(f_s, f_t, z_t):
    b = f_s.shape[0]
    f_s, f_t = f_s.view(b, -1), f_t.view(b, -1)
    g_s = F.normalize(torch.mm(f_s, f_s.t()), p=2, dim=1)
    g_t = F.normalize(torch.mm(f_t, f_t.t()), p=2, dim=1)
    err = (g_s - g_t).pow(2)
    q = F.softmax(z_t, dim=1)
    h = -(q * torch.log(q)).sum(dim=1)
    w = h / h.sum()
    return (err * w).sum()


def mar_loss(aux_outs, target, p, weak):
    """Each term is n_k * mean_j CE_j (the (B,1,1,B) broadcast, summed, over B; docs/method.md §2.1)."""
    b = target.shape[0]
    loss = 0.0
    for k, aux in enumerate(aux_outs):
        ce = F.cross_entropy(aux, target, reduction="none")
        sel = (p == weak[k].view(3, 1, 1, 1)).all(dim=1).float()  # (B, 1, 1, 1)
        loss = loss + (ce * sel).sum() / b  # broadcast to (B, 1, 1, B), as in the code
    return loss


# ---------------------------------------------------------------------------------------------


def vm_hwm_mib(pid="self"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def workers_hwm_mib(it):
    workers = getattr(it, "_workers", None) or []
    vals = [vm_hwm_mib(w.pid) for w in workers]
    vals = [v for v in vals if v is not None]
    return sum(vals) if vals else None


def endless(loader):
    while True:
        it = iter(loader)
        for b in it:
            yield it, b


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def idle_mark(ms, device):
    """--idle-mark-ms: device idle for `ms` around the timed steps (benches/gpu_busy segments)."""
    if ms > 0:
        sync(device)
        time.sleep(ms / 1e3)


def load_breakdown(a):
    """Single-process cost per sample of decoding (3 files) and of the train transform (one
    torch thread, as in a DataLoader worker)."""
    torch.set_num_threads(1)
    ds = SurfTrain(a.data, "train_list.txt")
    np.random.seed(a.seed)
    n = min(a.load_breakdown, len(ds))
    dec = aug = 0.0
    for rgb, depth, ir, _ in ds.samples[:n]:
        t0 = time.perf_counter()
        imgs = [imread_bgr(os.path.join(ds.root, p)) for p in (rgb, depth, ir)]
        t1 = time.perf_counter()
        ds.transform(imgs)
        t2 = time.perf_counter()
        dec += t1 - t0
        aug += t2 - t1
    rec = {"impl": "pytorch", "mode": "load-breakdown", "samples": n,
           "decoder": "cv2" if HAVE_CV2 else "pil",
        "predecoded": bool(a.predecoded),
           "decode_ms_per_sample": dec * 1e3 / n, "augment_ms_per_sample": aug * 1e3 / n}
    print(json.dumps(rec))
    return 0


def build_nets(a, device):
    """The frozen teacher, the student, SGD and the weak set on `device`."""
    teacher = SURF_Multi(a.width).to(device).eval()
    for prm in teacher.parameters():
        prm.requires_grad = False
    student = SURF_MMANet(a.width, a.auxi_calls).to(device).train()
    opt = torch.optim.SGD(
        student.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4
    )
    weak = torch.tensor(WEAK_SET, dtype=torch.float32, device=device)
    return teacher, student, opt, weak


class Step:
    """One training step: modality drop, forwards (autocast fp16 with --amp), CE + MAR + MAD,
    backward, SGD. With --compile the forwards and the loss (and so their backward) go through
    torch.compile (mode "reduce-overhead": CUDA graphs, for the inductor backend); the
    optimizer step too with --compile-optimizer. `compile_s` is the time of the first call."""

    def __init__(self, a, nets, device):
        self.teacher, self.student, self.opt, self.weak = nets
        self.device = device
        self.amp = a.amp and device.type == "cuda"
        self.compiled = bool(a.compile)
        self.loss = self.forward_loss
        self.update = self.opt.step
        if a.compile:
            kw = {"mode": a.compile} if a.compile_backend == "inductor" else {}
            self.loss = torch.compile(self.forward_loss, backend=a.compile_backend, **kw)
            if a.compile_optimizer:
                self.update = torch.compile(self.opt.step, backend=a.compile_backend)
        self.compile_s = None

    def forward_loss(self, rgb, depth, ir, target, p):
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.amp):
            with torch.no_grad():
                t_out, _, t_l4 = self.teacher(rgb, depth, ir)
            out, _, s_l4, a1, a2, a3, p = self.student(rgb, depth, ir, p)
            ce = F.cross_entropy(out.float(), target)
            mad = mad_loss(s_l4.float(), t_l4.float(), t_out.float())
            mar = mar_loss([a1.float(), a2.float(), a3.float()], target, p, self.weak)
            return ce + LAMBDA_MAR * mar + LAMBDA_MAD * mad

    def __call__(self, rgb, depth, ir, target):
        first = self.compiled and self.compile_s is None
        t0 = time.perf_counter()
        p = modality_drop(rgb.shape[0], self.device)
        if self.compiled:
            torch.compiler.cudagraph_mark_step_begin()
        loss = self.loss(rgb, depth, ir, target, p)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.update()
        loss_v = loss.item()
        if first:
            self.compile_s = time.perf_counter() - t0
        return loss_v


def synthetic_step(a, device):
    """--synthetic-inputs: the step alone on random device tensors (no loader), the twin of
    bench_step's mode: 4 batches of [B, 3, size, size] per modality, reused in turn."""
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    step = Step(a, build_nets(a, device), device)
    shape = (a.batch, 3, a.size, a.size)
    batches = [
        (*(torch.randn(shape, device=device) for _ in range(3)),
         torch.randint(0, 2, (a.batch,), device=device))
        for _ in range(4)
    ]
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times, loss_v = [], float("nan")
    for i in range(a.warmup + a.steps):
        if i == a.warmup:
            idle_mark(a.idle_mark_ms, device)
        t0 = time.perf_counter()
        loss_v = step(*batches[i % len(batches)])
        sync(device)
        if i >= a.warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    idle_mark(a.idle_mark_ms, device)
    record = {
        "impl": "pytorch", "mode": "synthetic-step", "device": a.device, "batch": a.batch,
        "steps": a.steps, "warmup": a.warmup, "amp": a.amp, "width": a.width, "size": a.size,
        "modalities": 3, "compile": a.compile or None, "compile_backend": a.compile_backend,
        "compile_optimizer": a.compile_optimizer, "compile_s": step.compile_s,
        "torch_version": torch.__version__, "auxi_calls": a.auxi_calls,
        "step_ms_median": statistics.median(times),
        "samples_per_s": a.batch * 1e3 / statistics.median(times),
        "step_ms_all": times, "last_loss": loss_v, "peak_rss_mib": vm_hwm_mib(),
    }
    if device.type == "cuda":
        record["gpu_max_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    print(json.dumps(record))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="", help="the list files' folder (not with --synthetic-inputs)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--amp", action="store_true", help="torch.autocast fp16 on CUDA")
    ap.add_argument("--load-only", action="store_true")
    ap.add_argument("--load-batches", type=int, default=0, help="batches timed by the loading phase (0: --steps)")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--auxi-calls", type=int, choices=[1, 3], default=1)
    ap.add_argument("--pin-memory", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--idle-mark-ms", type=int, default=0, help="GPU idle before/after the timed steps (benches/gpu_busy)")
    ap.add_argument("--load-breakdown", type=int, default=0, help="one process: decode vs augment, ms/sample")
    ap.add_argument("--predecoded", default="", help="DIR: read a memory-mapped uint8 array of the decoded, 144-resized images (written once to DIR)")
    ap.add_argument("--synthetic-inputs", action="store_true", help="the step alone on random device tensors")
    ap.add_argument("--size", type=int, default=112, help="image side of --synthetic-inputs")
    ap.add_argument("--compile", nargs="?", const="reduce-overhead", default="",
                    help="torch.compile the forwards and losses (mode, default reduce-overhead)")
    ap.add_argument("--compile-backend", default="inductor", help="torch.compile backend (inductor, cudagraphs)")
    ap.add_argument("--compile-optimizer", action="store_true", help="torch.compile the SGD step too")
    a = ap.parse_args()
    if a.load_breakdown:
        return load_breakdown(a)
    if a.synthetic_inputs:
        return synthetic_step(a, torch.device(a.device))
    if not a.data:
        ap.error("--data is required (or --synthetic-inputs)")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    device = torch.device(a.device)
    if a.predecoded:
        dataset = SurfPredecoded(a.data, "train_list.txt", a.predecoded)
    else:
        dataset = SurfTrain(a.data, "train_list.txt")
    loader = DataLoader(
        dataset,
        batch_size=a.batch,
        shuffle=True,
        drop_last=True,
        num_workers=a.threads,
        pin_memory=a.pin_memory,
    )
    record = {
        "impl": "pytorch",
        "mode": "load" if a.load_only else "step",
        "device": a.device,
        "batch": a.batch,
        "steps": a.steps,
        "warmup": a.warmup,
        "threads": a.threads,
        "amp": a.amp,
        "width": a.width,
        "n_samples": len(dataset),
        "decoder": "cv2" if HAVE_CV2 else "pil",
        "predecoded": bool(a.predecoded),
        "torch_version": torch.__version__,
        "auxi_calls": a.auxi_calls,
        "load_batches": a.load_batches or a.steps,
        "compile": a.compile or None,
        "compile_backend": a.compile_backend,
        "compile_optimizer": a.compile_optimizer,
    }

    # Phase 1: the loader alone.
    batches = endless(loader)
    for _ in range(a.warmup):
        next(batches)
    t0 = time.perf_counter()
    n = 0
    for _ in range(a.load_batches or a.steps):
        it, b = next(batches)
        n += b[0].shape[0]
    record["load_samples_per_s"] = n / (time.perf_counter() - t0)
    workers_hwm = workers_hwm_mib(it)
    del batches, it, b

    if not a.load_only:
        nets = build_nets(a, device)
        step = Step(a, nets, device)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        batches = endless(loader)
        e2e, compute, total = [], [], 0.0
        loss_v = float("nan")
        for i in range(a.warmup + a.steps):
            if i == a.warmup:
                idle_mark(a.idle_mark_ms, device)
            t0 = time.perf_counter()
            it, (rgb, depth, ir, target) = next(batches)
            t1 = time.perf_counter()
            rgb, depth, ir = (x.to(device, non_blocking=a.pin_memory) for x in (rgb, depth, ir))
            target = target.to(device, non_blocking=a.pin_memory)
            loss_v = step(rgb, depth, ir, target)
            sync(device)
            t2 = time.perf_counter()
            if i >= a.warmup:
                e2e.append((t2 - t0) * 1e3)
                compute.append((t2 - t1) * 1e3)
                total += t2 - t0
        idle_mark(a.idle_mark_ms, device)
        w2 = workers_hwm_mib(it)
        workers_hwm = max(v for v in (workers_hwm, w2, 0.0) if v is not None)
        del batches, it
        record["step_ms_median"] = statistics.median(e2e)
        record["compute_ms_median"] = statistics.median(compute)
        record["samples_per_s"] = a.steps * a.batch / total
        record["step_ms_all"] = e2e
        record["last_loss"] = loss_v
        record["compile_s"] = step.compile_s
        if device.type == "cuda":
            record["gpu_max_mem_mib"] = torch.cuda.max_memory_allocated() / 2**20
    record["peak_rss_mib"] = vm_hwm_mib()
    record["peak_rss_workers_mib"] = workers_hwm
    record["torch_threads"] = torch.get_num_threads()
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
