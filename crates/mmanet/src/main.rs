//! `mmanet`: train, evaluate and export MMANet networks that work with any subset of their
//! modalities.
//!
//! ```text
//! mmanet demo                                   teacher + MMANet student on synthetic data
//! mmanet train --config FILE [--set k=v]...     train what the config describes
//! mmanet resume RUN_DIR                         continue an interrupted run exactly
//! mmanet eval RUN_DIR [--combos R,R+D] [--split test|val] [--format md|csv|json]
//! mmanet export RUN_DIR [--out model.safetensors]   one self-describing model file
//! mmanet serve MODEL [--addr 127.0.0.1:8080]   HTTP prediction with dynamic batching
//! mmanet inspect MODEL                          print a model file's metadata
//! mmanet predict MODEL --input m=FILE... | --manifest FILE [--out predictions.csv]
//! mmanet report RUN_DIR...                      mean ± std across runs
//! mmanet config print --preset NAME | config list
//! mmanet data check --config FILE | data synth surf --out DIR [--n N] [--seed S] [--size PX]
//! ```
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod commands;
mod deploy;
mod plot;
mod progress;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    // CPU training reuses freed tensor memory instead of page-faulting it in again every step
    // (mmanet_train::cpu_memory); MMANET_KEEP_FREED_MEMORY=0 keeps glibc's defaults.
    if std::env::var("MMANET_KEEP_FREED_MEMORY").map_or(true, |v| v != "0") {
        mmanet_train::cpu_memory::keep_freed_memory();
    }
    match commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MMANET_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}
