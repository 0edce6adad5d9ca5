#!/usr/bin/env python3
"""PyTorch DistributedDataParallel (gloo) side of `benches/ddp_compare.sh`: the CASIA-SURF
MMANet student of `surf_step.py` (`SURF_MMANet`, regularization head included), CE + 0.5 MAR
with the weak set [R+I, R, I], SGD as the reference, on `--world` ranks of 127.0.0.1, each
rank on its `batch / world` samples of random 112 x 112 inputs (no data loading: the step and
its gradient exchange are what is timed).

Per step it records the wall time of the whole step and, through a DDP communication hook that
wraps the default all-reduce, the bytes of every gradient bucket and the window from the first
bucket's launch to the last bucket's completion (DDP overlaps the buckets with the backward
pass, so this window is not time the step waits). The same loop under `no_sync()` (no
exchange) gives the compute-only step. Rank 0 prints one JSON line.

    PYTHONPATH=~/.cache/mmanet/pytorch-ref-2.11.0 python3 benches/pytorch/ddp_step.py [--steps 6]
"""

import argparse
import json
import os
import socket
import statistics
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from surf_step import LAMBDA_MAR, SURF_MMANet, WEAK_SET, mar_loss, modality_drop  # noqa: E402


def rank_main(rank, a, port):
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=a.world)
    w = a.world
    model = DDP(SURF_MMANet(a.width).train(), find_unused_parameters=False)
    state = {"launch": [], "done": [], "bytes": 0}

    def timed_allreduce(st, bucket):
        buf = bucket.buffer()
        st["launch"].append(time.perf_counter())
        st["bytes"] += buf.numel() * buf.element_size()
        fut = dist.all_reduce(buf.div_(w), async_op=True).get_future()

        def done(f):
            st["done"].append(time.perf_counter())
            return f.value()[0]

        return fut.then(done)

    model.register_comm_hook(state, timed_allreduce)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, nesterov=True, weight_decay=5e-4)
    weak = torch.tensor(WEAK_SET, dtype=torch.float32)
    b = a.batch // w
    gen = torch.Generator().manual_seed(a.seed + rank)
    rgb, depth, ir = (torch.randn(b, 3, 112, 112, generator=gen) for _ in range(3))
    target = torch.randint(0, 2, (b,), generator=gen)
    n_params = sum(p.numel() for p in model.parameters())

    def step(sync):
        p = modality_drop(b, torch.device("cpu"))
        out, _, _, a1, a2, a3, p = model(rgb, depth, ir, p)
        loss = F.cross_entropy(out, target) + LAMBDA_MAR * mar_loss([a1, a2, a3], target, p, weak)
        opt.zero_grad()
        if sync:
            loss.backward()
        else:
            with model.no_sync():
                loss.backward()
        opt.step()

    rec = {}
    for sync in (True, False):
        times, windows, nbytes = [], [], []
        for i in range(a.warmup + a.steps):
            state.update(launch=[], done=[], bytes=0)
            dist.barrier()
            t0 = time.perf_counter()
            step(sync)
            t = time.perf_counter() - t0
            if i >= a.warmup:
                times.append(t)
                if sync:
                    windows.append(max(state["done"]) - min(state["launch"]))
                    nbytes.append(state["bytes"])
        key = "ddp" if sync else "no_sync"
        rec[f"{key}_step_ms_median"] = statistics.median(times) * 1e3
        if sync:
            rec["allreduce_bytes_per_step"] = nbytes[0]
            rec["allreduce_window_ms_median"] = statistics.median(windows) * 1e3
            rec["buckets"] = len(state["launch"])
    rec.update(
        framework=f"torch {torch.__version__} DDP gloo",
        world=w,
        global_batch=a.batch,
        threads_per_rank=a.threads,
        trainable_params=n_params,
        steps=a.steps,
    )
    rec["exposed_comm_ms"] = rec["ddp_step_ms_median"] - rec["no_sync_step_ms_median"]
    if rank == 0:
        print(json.dumps(rec), flush=True)
    dist.barrier()
    dist.destroy_process_group()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64, help="global batch")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(rank_main, args=(a, port), nprocs=a.world, join=True)


if __name__ == "__main__":
    main()
