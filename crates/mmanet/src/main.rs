//! `mmanet`: train, evaluate and export MMANet networks that work with any subset of their
//! modalities.
//!
//! ```text
//! mmanet demo                                   teacher + MMANet student on synthetic data
//! mmanet train --config FILE [--set k=v]... [--nproc N]   train (N data-parallel workers)
//! mmanet resume RUN_DIR [--set data.dataset.root=DIR]   continue an interrupted run exactly
//! mmanet eval RUN_DIR [--combos R,R+D] [--split test|val] [--format md|csv|json] [--set k=v]
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
mod distributed;
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
    // libtorch refusing a network or an input inside mmanet-deploy is returned as an error
    // that states it once; the default hook would print it a second time, as a panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !mmanet_deploy::inside_guarded_call() {
            default_hook(info);
        }
    }));
    // A worker of a data-parallel run prefixes its log lines and errors with its rank.
    let rank =
        std::env::var("RANK").ok().filter(|_| mmanet_train::parallel::DataParallel::in_env());
    let _rank_span = rank.as_ref().map(|r| tracing::error_span!("rank", r = %r).entered());
    match commands::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            if let Some(r) = &rank {
                eprint!("[rank {r}] ");
            }
            eprint!("{}", render_error(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// `error: TOP`, then each cause of the chain on its own line (`  caused by: ...`); a cause
/// whose text equals the one before it is left out, and the further lines of a multi-line
/// message (a TOML parser's excerpt) are indented under it. Each layer's message is its own:
/// the libraries put a cause in their message or in `source()`, never both
/// (docs/reliability.md, "Errors").
fn render_error(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut previous: Option<String> = None;
    for (k, cause) in e.chain().enumerate() {
        let text = cause.to_string();
        if previous.as_deref() == Some(text.as_str()) {
            continue;
        }
        let mut lines = text.lines();
        let first = lines.next().unwrap_or("");
        out.push_str(if k == 0 { "error: " } else { "  caused by: " });
        out.push_str(first);
        out.push('\n');
        for more in lines {
            out.push_str("      ");
            out.push_str(more);
            out.push('\n');
        }
        previous = Some(text);
    }
    out
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

#[cfg(test)]
mod tests {
    use super::render_error;

    #[test]
    fn prints_each_cause_once_on_its_own_line() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "gone");
        let e = anyhow::Error::new(io).context("gone").context("reading x.toml");
        assert_eq!(render_error(&e), "error: reading x.toml\n  caused by: gone\n");
        let e = anyhow::anyhow!("line 1\nline 2").context("top");
        assert_eq!(render_error(&e), "error: top\n  caused by: line 1\n      line 2\n");
    }
}
