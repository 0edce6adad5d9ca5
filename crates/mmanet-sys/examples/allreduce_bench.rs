//! All-reduce micro-benchmark: time, bytes and bandwidth of one in-place all-reduce of a flat
//! f32 buffer over Gloo on 127.0.0.1, as a data-parallel step averages its gradients.
//!
//! ```text
//! cargo run --release -p mmanet-sys --example allreduce_bench -- [--world 2] [--numel N] [--iters 20]
//! ```
//!
//! The default size is the trainable parameter count of the CASIA-SURF MMANet student with its
//! regularization head (`SURF_MMANet` of `benches/pytorch/surf_step.py`: 24,332,380 values,
//! 97.3 MB in f32). Run without `RANK`, it starts `--world` copies of itself as the ranks and
//! rank 0 prints the figures.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::net::TcpListener;
use std::process::Command;
use std::time::{Duration, Instant};

use mmanet_sys::{ProcessGroup, ReduceOp};
use tch::{Device, Kind, Tensor};

const SURF_STUDENT_PARAMS: i64 = 24_332_380;

struct Args {
    world: usize,
    numel: i64,
    iters: usize,
}

fn parse() -> Args {
    let mut a = Args { world: 2, numel: SURF_STUDENT_PARAMS, iters: 20 };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let mut it = argv.iter();
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--world" => a.world = v.parse().expect("--world N"),
            "--numel" => a.numel = v.parse().expect("--numel N"),
            "--iters" => a.iters = v.parse().expect("--iters N"),
            other => panic!("unknown option {other} (--world, --numel, --iters)"),
        }
    }
    a
}

fn main() {
    let args = parse();
    match std::env::var("RANK") {
        Ok(_) => rank(&args),
        Err(_) => launch(&args),
    }
}

fn launch(args: &Args) {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let children: Vec<_> = (0..args.world)
        .map(|r| {
            Command::new(std::env::current_exe().unwrap())
                .args(std::env::args().skip(1))
                .env("RANK", r.to_string())
                .env("WORLD_SIZE", args.world.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .spawn()
                .expect("spawning a rank")
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success(), "a rank failed");
    }
}

fn rank(args: &Args) {
    let threads = std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "default".into());
    let mut pg = ProcessGroup::from_env(Duration::from_secs(120)).expect("joining");
    let w = pg.world_size() as f64;
    let bytes = args.numel as f64 * 4.0;
    let mut buf = Tensor::ones([args.numel], (Kind::Float, Device::Cpu));
    for op in [ReduceOp::Sum, ReduceOp::Mean] {
        // Warm-up (first-touch pages, Gloo's buffers), then timed calls between barriers.
        for _ in 0..3 {
            pg.all_reduce(&mut buf, op).expect("all_reduce");
        }
        let mut times = Vec::with_capacity(args.iters);
        for _ in 0..args.iters {
            let _ = buf.fill_(1.0);
            pg.barrier().expect("barrier");
            let t = Instant::now();
            pg.all_reduce(&mut buf, op).expect("all_reduce");
            times.push(t.elapsed().as_secs_f64());
        }
        let want = if op == ReduceOp::Sum { w } else { 1.0 };
        assert_eq!(buf.double_value(&[0]), want, "all-reduce result");
        assert_eq!(buf.double_value(&[args.numel - 1]), want, "all-reduce result");
        // Every rank's times matter: the slowest rank sets the step.
        let mean: f64 = times.iter().sum::<f64>() / times.len() as f64;
        let slowest = pg.all_gather_f64(mean).expect("all_gather");
        if pg.rank() == 0 {
            times.sort_by(f64::total_cmp);
            let median = times[times.len() / 2];
            let worst_mean = slowest.iter().copied().fold(0.0, f64::max);
            // Algorithm bandwidth: buffer bytes / time; bus bandwidth (NCCL's convention):
            // what each rank's link carries in a ring, 2 (W - 1) / W of the buffer.
            let algo = bytes / median / 1e9;
            let bus = algo * 2.0 * (w - 1.0) / w;
            println!(
                "{op:?}: world {} numel {} ({:.1} MB f32), OMP_NUM_THREADS={threads}, {} iters: \
                 median {:.1} ms, min {:.1} ms, mean over ranks (slowest) {:.1} ms; \
                 algo {:.2} GB/s, bus {:.2} GB/s",
                pg.world_size(),
                args.numel,
                bytes / 1e6,
                args.iters,
                median * 1e3,
                times[0] * 1e3,
                worst_mean * 1e3,
                algo,
                bus,
            );
        }
    }
    pg.barrier().expect("final barrier");
}
