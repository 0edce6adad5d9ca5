//! `cargo xtask setup`: installs libtorch 2.11.0 from the PyPI `torch==2.11.0` wheel.
//!
//! The install lives in a per-user cache keyed by the torch version and variant
//! (`~/.cache/mmanet/torch-2.11.0-cpu` or `-cu130`; `$MMANET_CACHE` overrides the folder), so
//! new clones on the same machine reuse it. `<repo>/.libtorch` links to it, and
//! `.cargo/config.toml` points `LIBTORCH` at `.libtorch/torch` for every cargo command.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{project_root, sh};

/// The torch version tch 0.24.0 was generated against.
pub(crate) const TORCH_VERSION: &str = "2.11.0";
/// The minimal CPU install: torch without its dependencies, plus the two CUDA libraries that
/// even `libtorch_cpu.so` needs to load.
const CPU_PACKAGES: [&str; 3] =
    ["torch==2.11.0", "nvidia-cuda-runtime==13.0.96", "nvidia-cuda-cupti==13.0.85"];
/// With `--cuda`, besides torch and its CUDA dependencies: the CUDA headers the torch wheel's
/// `nvidia-cuda-runtime` lacks and mmanet-sys's NCCL backend needs to compile
/// (`crt/host_config.h`, `nv/target`; headers only, a few MB), pinned to match cu130.
const CUDA_HEADER_PACKAGES: [&str; 2] = ["nvidia-cuda-crt==13.0.88", "nvidia-cuda-cccl==13.0.85"];
const MARKER: &str = ".mmanet-complete";

/// Parsed `setup` arguments.
#[derive(Debug, Default)]
pub(crate) struct Options {
    /// Full install with every CUDA library (4.6 GB) instead of the minimal CPU one (1.2 GB).
    cuda: bool,
    /// Reinstall even when a complete install exists.
    force: bool,
}

impl Options {
    pub(crate) fn parse(args: &[String]) -> Result<Self> {
        let mut o = Options::default();
        for a in args {
            match a.as_str() {
                "--cuda" => o.cuda = true,
                "--force" => o.force = true,
                other => bail!("setup: unknown option `{other}` (expected --cuda, --force)"),
            }
        }
        Ok(o)
    }

    fn variant(&self) -> &'static str {
        if self.cuda { "cu130" } else { "cpu" }
    }
}

pub(crate) fn cache_root() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("MMANET_CACHE") {
        return Ok(PathBuf::from(p));
    }
    if let Some(p) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(p).join("mmanet"));
    }
    let home = std::env::var_os("HOME").context("neither MMANET_CACHE nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("mmanet"))
}

/// The install folder of a variant (it holds `torch/`, `nvidia/`, ...).
pub(crate) fn install_dir(cuda: bool) -> Result<PathBuf> {
    let variant = if cuda { "cu130" } else { "cpu" };
    Ok(cache_root()?.join(format!("torch-{TORCH_VERSION}-{variant}")))
}

fn is_complete(dir: &Path) -> bool {
    dir.join(MARKER).is_file() && dir.join("torch/lib/libtorch_cpu.so").is_file()
}

fn installed_version(dir: &Path) -> Option<String> {
    let entries = std::fs::read_dir(dir).ok()?;
    entries.filter_map(|e| e.ok()).find_map(|e| {
        let name = e.file_name().to_string_lossy().into_owned();
        let rest = name.strip_prefix("torch-")?.strip_suffix(".dist-info")?;
        Some(rest.to_string())
    })
}

pub(crate) fn run(opts: &Options) -> Result<()> {
    let dir = install_dir(opts.cuda)?;
    if opts.force || !is_complete(&dir) {
        install(&dir, opts)?;
    } else {
        eprintln!(
            "libtorch {TORCH_VERSION} ({}) already installed at {}",
            opts.variant(),
            dir.display()
        );
    }
    match installed_version(&dir) {
        Some(v) if v.starts_with(TORCH_VERSION) => {}
        other => bail!(
            "{} holds torch {:?}, but tch 0.24.0 needs {TORCH_VERSION}; rerun with --force",
            dir.display(),
            other
        ),
    }
    link(&dir)?;
    crate::gloo::run(opts.force)?; // gloo's headers for mmanet-sys (the wheel lacks them)
    eprintln!(
        "ready: `.libtorch` -> {}\n  cargo build / test / run now work with nothing exported.",
        dir.display()
    );
    Ok(())
}

fn install(dir: &Path, opts: &Options) -> Result<()> {
    let parent = dir.parent().context("install dir has a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let partial = dir.with_extension("partial");
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing the stale {}", partial.display()))?;
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pip = Command::new(&python);
    pip.args(["-m", "pip", "install", "--disable-pip-version-check", "--no-input"]);
    pip.arg("--target").arg(&partial);
    if opts.cuda {
        pip.arg(format!("torch=={TORCH_VERSION}")).args(CUDA_HEADER_PACKAGES);
    } else {
        pip.arg("--no-deps").args(CPU_PACKAGES);
    }
    eprintln!(
        "installing libtorch {TORCH_VERSION} ({}) into {} ({})",
        opts.variant(),
        dir.display(),
        if opts.cuda { "~4.6 GB, about 2 minutes" } else { "~1.2 GB, about 30 s" }
    );
    sh(&mut pip).context("pip install failed: is python3 -m pip available and PyPI reachable?")?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&partial, dir)
        .with_context(|| format!("moving {} to {}", partial.display(), dir.display()))?;
    let what = if opts.cuda {
        format!("torch=={TORCH_VERSION} {}", CUDA_HEADER_PACKAGES.join(" "))
    } else {
        CPU_PACKAGES.join(" ")
    };
    crate::util::write(dir.join(MARKER), what + "\n")?;
    if !is_complete(dir) {
        bail!("{} has no torch/lib/libtorch_cpu.so after the install", dir.display());
    }
    Ok(())
}

/// Points `<repo>/.libtorch` at `dir` (a symlink; replaced if it points elsewhere).
fn link(dir: &Path) -> Result<()> {
    let link = project_root().join(".libtorch");
    match std::fs::symlink_metadata(&link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::read_link(&link)? == dir {
                return Ok(());
            }
            eprintln!("note: .libtorch changes target; torch-sys will rebuild once (~2 min)");
            std::fs::remove_file(&link)?;
        }
        Ok(_) => bail!(
            "{} exists and is not a symlink: move it away (or keep it and skip setup)",
            link.display()
        ),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(dir, &link)
        .with_context(|| format!("linking {} -> {}", link.display(), dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_parse_and_reject_unknown_flags() {
        let o = Options::parse(&["--cuda".into()]).unwrap();
        assert!(o.cuda && !o.force);
        assert_eq!(o.variant(), "cu130");
        assert!(Options::parse(&["--gpu".into()]).is_err());
    }

    #[test]
    fn install_dir_is_keyed_by_version_and_variant() {
        let cpu = install_dir(false).unwrap();
        let gpu = install_dir(true).unwrap();
        assert!(cpu.ends_with("torch-2.11.0-cpu"), "{}", cpu.display());
        assert!(gpu.ends_with("torch-2.11.0-cu130"), "{}", gpu.display());
    }

    #[test]
    fn version_is_read_from_the_dist_info() {
        let tmp = std::env::temp_dir().join(format!("xtask-setup-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("torch-2.11.0.dist-info")).unwrap();
        assert_eq!(installed_version(&tmp).as_deref(), Some("2.11.0"));
        assert!(!is_complete(&tmp));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
