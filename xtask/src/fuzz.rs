//! `cargo xtask fuzz [--cases N] [--target NAME] [--seed S]`: every fuzz target (the parser
//! targets of `crates/mmanet-train/tests/fuzz.rs`, the request parser's of mmanet-serve, the
//! model file's of mmanet-deploy) with many cases (CI runs the same tests with a few).

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use anyhow::{Context, Result, bail};

use crate::util::cargo;

/// One fuzz test binary: its package, its test target and the targets it holds, each a test
/// `fuzz_<target>` printing `fuzz TARGET: N cases in T (seed S)` (the shared harness,
/// `crates/mmanet-train/tests/common/fuzz_harness.rs`).
pub(crate) struct FuzzFile {
    pub(crate) package: &'static str,
    pub(crate) test: &'static str,
    pub(crate) targets: &'static [&'static str],
}

impl FuzzFile {
    /// The test file, relative to the workspace root.
    pub(crate) fn path(&self) -> String {
        format!("crates/{}/tests/{}.rs", self.package, self.test)
    }
}

/// Every fuzz test binary, in the order they run.
pub(crate) const FILES: [FuzzFile; 3] = [
    FuzzFile {
        package: "mmanet-train",
        test: "fuzz",
        targets: &[
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
        ],
    },
    FuzzFile {
        package: "mmanet-serve",
        test: "request_fuzz",
        targets: &["request_bytes", "request_mutated"],
    },
    FuzzFile {
        package: "mmanet-deploy",
        test: "model_file_fuzz",
        targets: &["model_file_bytes", "model_file_metadata"],
    },
];

/// Every target's name, in [`FILES`] order.
fn all_targets() -> impl Iterator<Item = &'static str> {
    FILES.iter().flat_map(|f| f.targets.iter().copied())
}

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
                    if !all_targets().any(|t| t == v) {
                        let names: Vec<_> = all_targets().collect();
                        bail!("unknown fuzz target `{v}` (targets: {})", names.join(", "));
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

/// Runs the targets one at a time (a test binary's own threads would share the two cores
/// anyway), echoing their output, then prints cases and time per target.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let o = Options::parse(args)?;
    let started = std::time::Instant::now();
    let mut summary = Vec::new();
    let mut expected = 0;
    for file in &FILES {
        let targets: Vec<&str> = file
            .targets
            .iter()
            .copied()
            .filter(|t| o.target.as_deref().is_none_or(|n| n == *t))
            .collect();
        if targets.is_empty() {
            continue;
        }
        expected += targets.len();
        let filter = o.target.as_ref().map_or_else(|| "fuzz_".to_string(), |t| format!("fuzz_{t}"));
        let mut cmd = cargo();
        cmd.args(["test", "-p", file.package, "--test", file.test, "--", "--nocapture"])
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
        let mut child = cmd.spawn().context("cannot start cargo test")?;
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
        if !status.success() {
            bail!(
                "a fuzz target of {} failed (its minimal failing input is printed above)",
                file.path()
            );
        }
    }
    eprintln!("\nfuzz summary ({:.0?} in all):", started.elapsed());
    for s in &summary {
        eprintln!("  {s}");
    }
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
    fn every_target_is_a_test_of_its_fuzz_file() {
        for file in &FILES {
            let path = crate::util::project_root().join(file.path());
            let text = std::fs::read_to_string(&path).unwrap();
            for t in file.targets {
                assert!(
                    text.contains(&format!("fn fuzz_{t}()")),
                    "{}: no test fuzz_{t}",
                    file.path()
                );
                assert!(
                    text.contains(&format!("\"{t}\"")),
                    "{}: fuzz_{t} runs under another name",
                    file.path()
                );
            }
            assert_eq!(
                text.matches("\nfn fuzz_").count(),
                file.targets.len(),
                "{}: a test not in FILES",
                file.path()
            );
        }
    }

    #[test]
    fn every_test_file_with_fuzz_targets_is_listed() {
        let root = crate::util::project_root().join("crates");
        let listed: Vec<String> = FILES.iter().map(FuzzFile::path).collect();
        for krate in std::fs::read_dir(&root).unwrap() {
            let tests = krate.unwrap().path().join("tests");
            let Ok(entries) = std::fs::read_dir(&tests) else { continue };
            for entry in entries {
                let path = entry.unwrap().path();
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                if text.contains("\nfn fuzz_") {
                    let rel = path.strip_prefix(root.parent().unwrap()).unwrap();
                    let rel = rel.to_string_lossy().to_string();
                    assert!(listed.contains(&rel), "{rel} has fuzz targets but is not in FILES");
                }
            }
        }
    }
}
