//! `cargo xtask fuzz [--cases N] [--target NAME] [--seed S]`: the parser fuzz targets of
//! `crates/mmanet-train/tests/fuzz.rs` with many cases (CI runs the same tests with a few).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::util::cargo;

/// The targets, as the test file names them (`fuzz_<target>`).
pub(crate) const TARGETS: [&str; 10] = [
    "config_toml",
    "config_set",
    "surf_list",
    "nyuv2_list",
    "cityscapes_list",
    "cefa_names",
    "npy",
    "safetensors",
    "mask",
    "manifest",
];

/// What the command line asked for.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Options {
    pub(crate) cases: u64,
    pub(crate) target: Option<String>,
    pub(crate) seed: Option<u64>,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options { cases: 20_000, target: None, seed: None };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value =
                |name: &str| it.next().with_context(|| format!("{name} needs a value")).cloned();
            match a.as_str() {
                "--cases" => {
                    let v = value("--cases")?;
                    o.cases = v.parse().with_context(|| format!("--cases {v}: not a number"))?;
                    if o.cases == 0 {
                        bail!("--cases must be at least 1");
                    }
                }
                "--seed" => {
                    let v = value("--seed")?;
                    o.seed = Some(v.parse().with_context(|| format!("--seed {v}: not a number"))?);
                }
                "--target" => {
                    let v = value("--target")?;
                    if !TARGETS.contains(&v.as_str()) {
                        bail!("unknown fuzz target `{v}` (targets: {})", TARGETS.join(", "));
                    }
                    o.target = Some(v);
                }
                other => bail!(
                    "fuzz: unknown argument `{other}` (usage: fuzz [--cases N] [--target NAME] \
                     [--seed S])"
                ),
            }
        }
        Ok(o)
    }
}

/// Runs the targets one at a time (the test binary's own threads would share the two cores
/// anyway), echoing their output, then prints cases and time per target.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = Options::parse(args)?;
    let filter = o.target.as_ref().map_or_else(|| "fuzz_".to_string(), |t| format!("fuzz_{t}"));
    let mut cmd = cargo();
    cmd.args(["test", "-p", "mmanet-train", "--test", "fuzz", "--", "--nocapture"])
        .args(["--test-threads", "1", &filter])
        .env("MMANET_FUZZ_CASES", o.cases.to_string())
        .env("OMP_NUM_THREADS", "1")
        .stderr(Stdio::piped());
    if o.target.is_some() {
        cmd.arg("--exact");
    }
    if let Some(s) = o.seed {
        cmd.env("MMANET_FUZZ_SEED", s.to_string());
    }
    eprintln!("$ {cmd:?}");
    let started = std::time::Instant::now();
    let mut child = cmd.spawn().context("cannot start cargo test")?;
    let mut summary = Vec::new();
    let stderr = child.stderr.take().context("no stderr")?;
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        eprintln!("{line}");
        // `fuzz TARGET: N cases in T (seed S)`, possibly after the harness's `test NAME ... `.
        if let Some(at) = line.find("fuzz ").filter(|_| line.contains(" cases in ")) {
            summary.push(line[at..].to_string());
        }
    }
    let status = child.wait()?;
    eprintln!("\nfuzz summary ({:.0?} in all):", started.elapsed());
    for s in &summary {
        eprintln!("  {s}");
    }
    if !status.success() {
        bail!("a fuzz target failed (its minimal failing input is printed above)");
    }
    let expected = if o.target.is_some() { 1 } else { TARGETS.len() };
    if summary.len() != expected {
        bail!("{} targets reported, expected {expected}", summary.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_cases_target_and_seed_and_refuses_unknown_targets() {
        let o =
            Options::parse(&args(&["--cases", "500", "--target", "npy", "--seed", "3"])).unwrap();
        assert_eq!(o, Options { cases: 500, target: Some("npy".into()), seed: Some(3) });
        assert_eq!(Options::parse(&[]).unwrap().cases, 20_000);
        let e = Options::parse(&args(&["--target", "nope"])).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("manifest"), "{e}");
        assert!(Options::parse(&args(&["--cases", "0"])).is_err());
        assert!(Options::parse(&args(&["--cases"])).is_err());
    }

    #[test]
    fn every_target_is_a_test_of_the_fuzz_file() {
        let text = std::fs::read_to_string(
            crate::util::project_root().join("crates/mmanet-train/tests/fuzz.rs"),
        )
        .unwrap();
        for t in TARGETS {
            assert!(text.contains(&format!("fn fuzz_{t}()")), "no test fuzz_{t}");
        }
        assert_eq!(text.matches("\nfn fuzz_").count(), TARGETS.len(), "a test not in TARGETS");
    }
}
