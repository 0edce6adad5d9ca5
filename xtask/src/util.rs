//! Small helpers: the project root, running commands with echo.

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// Writes a file atomically and durably through the workspace's one helper
/// ([`mmanet_fs::write`]: temporary file, fsync, rename, folder fsync), so a marker or a
/// result file is never left half-written.
pub(crate) fn write(path: impl AsRef<std::path::Path>, bytes: impl AsRef<[u8]>) -> Result<()> {
    mmanet_fs::write(path.as_ref(), bytes.as_ref())?;
    Ok(())
}

/// The workspace root (the parent of `xtask/`).
pub(crate) fn project_root() -> PathBuf {
    let dir = env!("CARGO_MANIFEST_DIR");
    PathBuf::from(dir).parent().expect("xtask lives in the workspace root").to_path_buf()
}

/// The `cargo` that runs us.
pub(crate) fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(project_root());
    c
}

/// Runs `cmd`, echoing it first; fails with the command line on a non-zero exit.
pub(crate) fn sh(cmd: &mut Command) -> Result<()> {
    let line = format!("{cmd:?}");
    eprintln!("$ {line}");
    let status = cmd.status().with_context(|| format!("cannot start {line}"))?;
    if !status.success() {
        bail!("command failed ({status}): {line}");
    }
    Ok(())
}
