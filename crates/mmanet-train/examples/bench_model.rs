//! Writes the deployment network of a preset's architecture, randomly initialised from a seed,
//! as one model file (docs/model_format.md): what `cargo xtask bench serve` serves, so that the
//! load test needs no trained run. The input spec is the preset's reader's own (the mfeat
//! presets read the fetched data for their standardisers: `cargo xtask data fetch mfeat`).
//!
//! ```text
//! bench_model --preset mfeat3-mmanet --out target/bench/serve/mfeat3.safetensors [--seed 7]
//!             [--set key=value]...
//! ```

// A command-line tool: its output is the JSON line (or path) it prints.
#![allow(clippy::print_stdout, clippy::print_stderr, missing_docs)]

use std::path::PathBuf;

type BoxResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> BoxResult<()> {
    let mut preset = None;
    let mut out = None;
    let mut seed = 7i64;
    let mut sets = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--preset" => preset = Some(value()?),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--seed" => seed = value()?.parse()?,
            "--set" => sets.push(value()?),
            other => return Err(format!("unknown option `{other}`").into()),
        }
    }
    let name = preset.ok_or("--preset NAME is required")?;
    let out = out.ok_or("--out FILE is required")?;
    let mut cfg = mmanet_train::presets::preset(&name).ok_or(format!("no preset `{name}`"))?;
    for s in &sets {
        cfg.set(s)?;
    }
    let cfg = cfg.check()?;
    let spec = cfg.data.dataset.input_spec(cfg.seed)?;
    let file = mmanet_deploy::example::random_model(
        cfg.model.clone(),
        spec,
        seed,
        &format!("{name}-random-seed{seed}"),
    )?;
    mmanet_deploy::format::write_model_file(&out, &file.metadata, &file.tensors)?;
    println!("{}", out.display());
    Ok(())
}
