//! `cargo xtask ci`: the exact list CI runs, and the CUDA link check.

use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cargo, project_root, sh};

/// fmt check, clippy with warnings denied, every test, docs without warnings, CUDA link check.
pub(crate) fn run(args: &[String]) -> Result<()> {
    if let Some(a) = args.first() {
        bail!("ci takes no arguments, got `{a}`");
    }
    let started = std::time::Instant::now();
    sh(ci_cargo().args(["fmt", "--all", "--check"]))?;
    sh(ci_cargo().args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]))?;
    // One OpenMP thread: two threads on two shared cores collapse when anything else runs.
    sh(ci_cargo().args(["test", "--workspace", "--all-targets"]).env("OMP_NUM_THREADS", "1"))?;
    sh(ci_cargo().args(["test", "--workspace", "--doc"]).env("OMP_NUM_THREADS", "1"))?;
    sh(ci_cargo().args(["doc", "--workspace", "--no-deps"]).env("RUSTDOCFLAGS", "-D warnings"))?;
    cuda_link_check()?;
    let target = project_root().join("target");
    eprintln!(
        "ci: all green in {:.0?}; {} holds {:.1} GB",
        started.elapsed(),
        target.display(),
        disk_bytes(&target) as f64 / 1e9
    );
    Ok(())
}

/// `cargo` for one full pass: without incremental state (a one-off build gains nothing from it,
/// and it was a third of `target/` on CI's disk) unless the caller set `CARGO_INCREMENTAL`.
fn ci_cargo() -> Command {
    let mut c = cargo();
    if std::env::var_os("CARGO_INCREMENTAL").is_none() {
        c.env("CARGO_INCREMENTAL", "0");
    }
    c
}

/// Bytes of the regular files under `dir` (0 where it cannot be read): the disk CI must have.
fn disk_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => disk_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// The full fault-injection campaign: the ignored test `full_campaign` of
/// `crates/mmanet/tests/fault_injection.rs` (CI runs the same machinery on a smaller run).
pub(crate) fn fault_inject(args: &[String]) -> Result<()> {
    let mut cmd = cargo();
    cmd.args(["test", "-p", "mmanet", "--test", "fault_injection", "--", "--ignored"])
        .args(["--nocapture", "full_campaign"])
        .env("OMP_NUM_THREADS", "1");
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--random-only" => {
                cmd.env("MMANET_FAULT_RANDOM_ONLY", "1");
            }
            "--trials" => {
                let n: usize = it.next().context("--trials needs a number")?.parse()?;
                cmd.env("MMANET_FAULT_TRIALS", n.to_string());
            }
            other => bail!(
                "fault-inject: unknown option `{other}` (--random-only, --trials N per \
                 scenario; MMANET_FAULT_SEED=N replays a seed)"
            ),
        }
    }
    let started = std::time::Instant::now();
    sh(&mut cmd)?;
    eprintln!("fault-inject: all runs resumed bit for bit in {:.0?}", started.elapsed());
    Ok(())
}

/// Builds `mmanet` with `--features cuda` and checks that the binary keeps `libtorch_cuda.so`
/// as NEEDED and has a RUNPATH; this machine has no GPU, so it cannot start it with CUDA.
pub(crate) fn cuda_link_check() -> Result<()> {
    // Same target dir as every other build, so torch-sys is not compiled twice; only the crates
    // whose `cuda` feature flips are rebuilt (once; both variants stay cached).
    sh(ci_cargo().args(["build", "-p", "mmanet", "--features", "cuda"]))?;
    let bin = project_root().join("target").join("debug").join("mmanet");
    let dynamic = dynamic_section(&bin);
    // Put the ordinary CPU binary back at target/debug/mmanet (a fresh build only re-links it).
    sh(ci_cargo().args(["build", "-p", "mmanet"]))?;
    check_needed(&dynamic?).with_context(|| format!("checking {}", bin.display()))?;
    eprintln!("cuda-link-check: `mmanet --features cuda` keeps libtorch_cuda.so and a RUNPATH");
    Ok(())
}

fn dynamic_section(bin: &std::path::Path) -> Result<String> {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(bin)
        .output()
        .context("readelf (binutils) is needed for the CUDA link check")?;
    if !out.status.success() {
        bail!("readelf -d {} failed", bin.display());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Checks `readelf -d` output for the CUDA NEEDED entries and a RUNPATH.
fn check_needed(dynamic: &str) -> Result<()> {
    let needed: Vec<&str> = dynamic
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| l.split('[').nth(1).and_then(|r| r.split(']').next()))
        .collect();
    for lib in ["libtorch_cuda.so", "libtorch_cpu.so"] {
        if !needed.contains(&lib) {
            bail!("{lib} is not NEEDED (NEEDED: {needed:?})");
        }
    }
    if !dynamic.contains("(RUNPATH)") {
        bail!("no RUNPATH: the binary would need LD_LIBRARY_PATH");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
 0x0000000000000001 (NEEDED)             Shared library: [libtorch_cuda.so]
 0x0000000000000001 (NEEDED)             Shared library: [libtorch_cpu.so]
 0x000000000000001d (RUNPATH)            Library runpath: [/x/torch/lib]
";

    #[test]
    fn accepts_a_cuda_binary() {
        check_needed(GOOD).unwrap();
    }

    #[test]
    fn rejects_a_cpu_binary_or_missing_runpath() {
        let cpu = GOOD.replace("libtorch_cuda.so", "libc.so.6");
        assert!(check_needed(&cpu).unwrap_err().to_string().contains("libtorch_cuda.so"));
        let no_runpath = GOOD.lines().take(2).collect::<Vec<_>>().join("\n");
        assert!(check_needed(&no_runpath).unwrap_err().to_string().contains("RUNPATH"));
    }
}
