//! Gloo's headers for mmanet-sys's C++ shim: the torch wheel ships c10d's headers and
//! libraries but not the headers of gloo, which `ProcessGroupGloo.hpp` includes. Debian
//! bookworm's `libgloo-dev` has them; it is downloaded by exact version, checked against its
//! sha256, unpacked without root (`ar` + `tar`) into the per-user cache
//! (`~/.cache/mmanet/gloo-<version>/include`) and linked at `<repo>/.gloo`, which
//! `.cargo/config.toml` names in `MMANET_GLOO_INCLUDE` (docs/distributed.md).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{project_root, sh};

/// Debian bookworm's gloo (source `gloo`, a 2022-05-18 snapshot of upstream 5b14351).
const VERSION: &str = "0.0~git20220518.5b14351-3";
const URL: &str = "https://deb.debian.org/debian/pool/main/g/gloo/libgloo-dev_0.0~git20220518.5b14351-3_amd64.deb";
/// The `.deb`'s sha256, as bookworm's `Packages` index lists it.
const SHA256: &str = "80529c9fd8af452faf489e686b94bf87075965c40673803810c4f41634b1e299";
const MARKER: &str = ".mmanet-complete";

/// The install folder (holds `include/gloo/...`). `~` is not kept in the folder name.
pub(crate) fn install_dir() -> Result<PathBuf> {
    Ok(crate::setup::cache_root()?.join(format!("gloo-{}", VERSION.replace('~', "-"))))
}

fn is_complete(dir: &Path) -> bool {
    dir.join(MARKER).is_file() && dir.join("include/gloo/config.h").is_file()
}

/// Installs the headers unless a complete install exists, and links `<repo>/.gloo` to it.
pub(crate) fn run(force: bool) -> Result<()> {
    let dir = install_dir()?;
    if force || !is_complete(&dir) {
        install(&dir)?;
    } else {
        eprintln!("gloo headers {VERSION} already installed at {}", dir.display());
    }
    link(&project_root().join(".gloo"), &dir)
}

/// Points `link` at `dir` (a symlink; replaced if it points elsewhere).
fn link(link: &Path, dir: &Path) -> Result<()> {
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => {
            if std::fs::read_link(link)? == dir {
                return Ok(());
            }
            std::fs::remove_file(link)?;
        }
        Ok(_) => bail!("{} exists and is not a symlink: move it away", link.display()),
        Err(_) => {}
    }
    std::os::unix::fs::symlink(dir, link)
        .with_context(|| format!("linking {} -> {}", link.display(), dir.display()))
}

fn install(dir: &Path) -> Result<()> {
    let parent = dir.parent().context("install dir has a parent")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = dir.file_name().context("install dir has a name")?.to_string_lossy();
    let partial = dir.with_file_name(format!("{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)
            .with_context(|| format!("removing the stale {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)?;
    eprintln!(
        "installing gloo headers {VERSION} (Debian libgloo-dev, 49 kB) into {}",
        dir.display()
    );
    let deb = partial.join("libgloo-dev.deb");
    sh(Command::new("curl")
        .args(["--fail", "--silent", "--show-error", "--location", "-o"])
        .arg(&deb)
        .arg(URL))
    .with_context(|| {
        format!("downloading {URL}: is curl installed and deb.debian.org reachable?")
    })?;
    let got = mmanet_fs::sha256_file(&deb)?.sha256;
    if got != SHA256 {
        bail!("{URL}: sha256 {got}, expected {SHA256}");
    }
    // A .deb is an `ar` archive holding data.tar.xz; its ./usr/include/gloo is all we keep.
    sh(Command::new("ar").arg("x").arg(&deb).arg("data.tar.xz").current_dir(&partial))
        .context("ar (binutils) is needed to unpack the .deb")?;
    sh(Command::new("tar")
        .arg("xJf")
        .arg(partial.join("data.tar.xz"))
        .arg("-C")
        .arg(&partial)
        .arg("./usr/include/gloo"))
    .context("tar with xz support is needed to unpack the .deb")?;
    std::fs::rename(partial.join("usr/include"), partial.join("include"))?;
    std::fs::remove_dir_all(partial.join("usr"))?;
    std::fs::remove_file(partial.join("data.tar.xz"))?;
    std::fs::remove_file(&deb)?;
    crate::util::write(partial.join(MARKER), format!("libgloo-dev {VERSION} sha256 {SHA256}\n"))?;
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    std::fs::rename(&partial, dir)
        .with_context(|| format!("moving {} to {}", partial.display(), dir.display()))?;
    if !is_complete(dir) {
        bail!("{} has no include/gloo/config.h after the install", dir.display());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pin_is_one_version_with_a_full_sha256() {
        assert!(URL.contains(VERSION) && URL.starts_with("https://deb.debian.org/debian/pool/"));
        assert_eq!(SHA256.len(), 64);
        assert!(SHA256.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        let dir = install_dir().unwrap();
        assert!(dir.ends_with("gloo-0.0-git20220518.5b14351-3"), "{}", dir.display());
    }

    #[test]
    fn an_empty_folder_is_not_an_install() {
        let tmp = std::env::temp_dir().join(format!("xtask-gloo-{}", std::process::id()));
        std::fs::create_dir_all(tmp.join("include/gloo")).unwrap();
        assert!(!is_complete(&tmp));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
