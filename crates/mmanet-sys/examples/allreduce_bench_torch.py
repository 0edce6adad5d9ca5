"""PyTorch's side of `allreduce_bench.rs`: the same timed loop with torch.distributed (gloo,
the backend DistributedDataParallel uses on CPU), 2 ranks on 127.0.0.1, the same buffer.

    python3 crates/mmanet-sys/examples/allreduce_bench_torch.py [--world 2] [--numel N] [--iters 20]

Needs a Python `torch` (e.g. PYTHONPATH=~/.cache/mmanet/pytorch-ref-2.11.0).
"""
import argparse
import os
import socket
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

SURF_STUDENT_PARAMS = 24_332_380


def rank_main(rank, args, port):
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.world
    )
    w = args.world
    buf = torch.ones(args.numel)
    nbytes = args.numel * 4
    for op in ["Sum", "Mean"]:
        def reduce():
            dist.all_reduce(buf)
            if op == "Mean":
                buf.div_(w)
        for _ in range(3):
            reduce()
        times = []
        for _ in range(args.iters):
            buf.fill_(1.0)
            dist.barrier()
            t = time.perf_counter()
            reduce()
            times.append(time.perf_counter() - t)
        assert buf[0].item() == (w if op == "Sum" else 1.0)
        if rank == 0:
            med = statistics.median(times)
            algo = nbytes / med / 1e9
            print(
                f"torch {torch.__version__} {op}: world {w} numel {args.numel} "
                f"({nbytes / 1e6:.1f} MB f32), threads {torch.get_num_threads()}, "
                f"{args.iters} iters: median {med * 1e3:.1f} ms, min {min(times) * 1e3:.1f} ms; "
                f"algo {algo:.2f} GB/s, bus {algo * 2 * (w - 1) / w:.2f} GB/s",
                flush=True,
            )
    dist.barrier()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--world", type=int, default=2)
    p.add_argument("--numel", type=int, default=SURF_STUDENT_PARAMS)
    p.add_argument("--iters", type=int, default=20)
    args = p.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(rank_main, args=(args, port), nprocs=args.world, start_method="spawn")


if __name__ == "__main__":
    main()
