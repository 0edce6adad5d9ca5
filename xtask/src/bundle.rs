//! `cargo xtask bundle [--out DIR] [--no-check]`: a folder that runs `mmanet` (train, predict,
//! serve...) on a Linux machine without Rust, Python or libtorch: the release binary and every
//! shared library it loads from the libtorch install (libtorch's and the CUDA runtime stubs
//! the CPU wheel's `libtorch_cpu.so` needs), side by side. The binary's RUNPATH ends
//! with `$ORIGIN` (`build/link_libtorch.rs`), so the loader finds the copies beside it once the
//! build machine's libtorch path is absent.
//!
//! The check (on by default) starts the bundled binary in a private mount namespace where the
//! libtorch folder is hidden under an empty tmpfs (`unshare -rm`), so it proves the bundle is
//! self-contained; where unprivileged namespaces are not allowed it says so and skips.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{cargo, project_root, sh};

const USAGE: &str = "usage: cargo xtask bundle [--out DIR] [--no-check]";

/// `cargo xtask bundle ...`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let root = project_root();
    let mut out = root.join("target/bundle/mmanet");
    let mut check = true;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--out" => out = PathBuf::from(it.next().context(USAGE)?),
            "--no-check" => check = false,
            other => bail!("bundle: unknown option `{other}`\n{USAGE}"),
        }
    }
    sh(cargo().args(["build", "--release", "-p", "mmanet", "--bin", "mmanet"]))?;
    let bin = root.join("target/release/mmanet");
    // The whole install (torch/lib and the CUDA runtime stubs under nvidia/ that libtorch_cpu
    // loads through its own RPATH, which ends with `$ORIGIN`).
    let libtorch = std::fs::canonicalize(root.join(".libtorch"))
        .context("no .libtorch: run `cargo xtask setup` first")?;
    if out.exists() {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    std::fs::create_dir_all(&out)?;
    let libs = libtorch_deps(&bin, &libtorch)?;
    if libs.is_empty() {
        bail!("ldd lists no library from {}: is the binary linked to it?", libtorch.display());
    }
    let mut bytes = 0u64;
    for lib in &libs {
        let name = lib.file_name().context("a library path with no name")?;
        bytes += std::fs::copy(lib, out.join(name))
            .with_context(|| format!("copying {}", lib.display()))?;
    }
    bytes += std::fs::copy(&bin, out.join("mmanet"))?;
    let readme = format!(
        "mmanet {} for Linux x86_64 (CPU), with the libtorch 2.11.0 libraries it loads.\n\
         Run ./mmanet --help; e.g. ./mmanet serve model.safetensors --addr 127.0.0.1:8080.\n\
         The binary finds the libraries beside it (RUNPATH $ORIGIN): keep the folder together.\n",
        env!("CARGO_PKG_VERSION")
    );
    crate::util::write(out.join("README.txt"), readme)?;
    println!(
        "bundle: {} ({} libraries, {:.0} MiB)",
        out.display(),
        libs.len(),
        bytes as f64 / (1u64 << 20) as f64
    );
    if check {
        check_self_contained(&out, &libtorch)?;
    }
    Ok(())
}

/// The libraries `bin` loads from the libtorch install `libtorch` (ldd's closure, resolved
/// paths).
fn libtorch_deps(bin: &Path, libtorch: &Path) -> Result<Vec<PathBuf>> {
    let out = Command::new("ldd").arg(bin).output().context("cannot run ldd")?;
    if !out.status.success() {
        bail!("ldd {} failed: {}", bin.display(), String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    if let Some(missing) = text.lines().find(|l| l.contains("not found")) {
        bail!("{} has an unresolved library: {}", bin.display(), missing.trim());
    }
    let mut libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split("=>").nth(1)?.split_whitespace().next().map(PathBuf::from))
        .filter(|p| std::fs::canonicalize(p).is_ok_and(|c| c.starts_with(libtorch)))
        .collect();
    libs.sort();
    libs.dedup();
    Ok(libs)
}

/// Runs `DIR/mmanet --version` and `ldd` on it with `libtorch` hidden (see the module docs).
fn check_self_contained(dir: &Path, libtorch: &Path) -> Result<()> {
    let bin = dir.join("mmanet");
    let script = format!(
        "mount -t tmpfs none '{}' && ldd '{}' && '{}' --version",
        libtorch.display(),
        bin.display(),
        bin.display()
    );
    let probe = Command::new("unshare").args(["-rm", "true"]).status();
    if !probe.is_ok_and(|s| s.success()) {
        println!("bundle: check skipped: `unshare -rm` is not allowed here");
        return Ok(());
    }
    let out = Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .context("cannot run unshare")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || text.contains("not found") {
        bail!(
            "bundle: {} does not start with {} hidden:\n{text}{}",
            bin.display(),
            libtorch.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let from_bundle = text.lines().filter(|l| l.contains(&*dir.to_string_lossy())).count();
    println!(
        "bundle: checked: with {} hidden, {from_bundle} libraries load from the bundle and \
         `mmanet --version` prints {}",
        libtorch.display(),
        text.lines().last().unwrap_or("").trim()
    );
    Ok(())
}
