//! Durable file writes for every crate of the workspace, and the hook fault-injection tests
//! drive.
//!
//! # Why a crate of its own
//!
//! `mmanet-models` (safetensors checkpoints and exports), `mmanet-data` (synthetic data sets),
//! `mmanet-train` (run folders), `mmanet-plot` (charts) and the `mmanet` app all write files,
//! and all of them must give the same guarantee. `mmanet-core` is the one crate they already
//! share, but it is the vocabulary of modalities and masks; a file-system helper there would
//! make every crate that only needs masks carry it, and the helper itself needs none of core.
//! This crate is `std` + `sha2` + `thiserror` + `tracing`: it links no libtorch, so it builds in
//! seconds, is tested on its own, and `xtask` or `mmanet-plot` can use it too.
//!
//! # What the operations promise
//!
//! - [`write()`] and [`write_with`] replace a file atomically and durably: the content goes to a
//!   temporary file in the same folder ([`temp_path`]: `.NAME.tmp-PID-N`), the temporary file
//!   is fsynced, renamed over the final name, and the folder is fsynced. A reader (or a process
//!   started after a crash) sees the old content or the new one, never a part of either; once
//!   the call returns, the new content survives a power loss as far as the file system honours
//!   `fsync`. They return the sha256 and size of what is on disk ([`Written`]).
//! - [`link`] gives a second name to an existing file (a hard link, or a durable copy where the
//!   file system has none), replacing that name atomically.
//! - [`append`] appends to a journal (`train.log`); appends are not atomic and not fsynced.
//! - [`remove_file`] and [`create_dir_all`] are the plain operations, hooked.
//!
//! Every one of them calls the [`fault`] hook first, so a test can count the operations of a
//! run and then fail or kill the process at each one in turn; a new file written through this
//! crate adds its injection points by itself.
//!
//! ```
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("state.json");
//! let w = mmanet_fs::write(&path, b"{}")?;
//! assert_eq!(w.bytes, 2);
//! assert_eq!(w.sha256, mmanet_fs::sha256_file(&path)?.sha256);
//! assert_eq!(w.sha256, "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod fault;

use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

/// A file-system operation, as the [`fault`] hook and [`FsError`] name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Creating a folder and its parents.
    CreateDir,
    /// Creating and writing the temporary file of an atomic write.
    Write,
    /// Reading back (hashing) and fsyncing the temporary file.
    Sync,
    /// Renaming the temporary file (or link) over the final name.
    Rename,
    /// Fsyncing the folder after a rename (named by the renamed file) or on its own.
    SyncDir,
    /// Making a hard link (or its fallback copy) at a temporary name.
    Link,
    /// Appending to a journal file.
    Append,
    /// Removing a file.
    Remove,
}

impl Op {
    /// The operation's name in traces and error messages.
    pub fn name(self) -> &'static str {
        match self {
            Op::CreateDir => "create-dir",
            Op::Write => "write",
            Op::Sync => "fsync",
            Op::Rename => "rename",
            Op::SyncDir => "fsync-dir",
            Op::Link => "link",
            Op::Append => "append",
            Op::Remove => "remove",
        }
    }

    /// Parses [`Op::name`].
    pub fn from_name(s: &str) -> Option<Op> {
        [
            Op::CreateDir,
            Op::Write,
            Op::Sync,
            Op::Rename,
            Op::SyncDir,
            Op::Link,
            Op::Append,
            Op::Remove,
        ]
        .into_iter()
        .find(|op| op.name() == s)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A failed file-system operation: which one, on which file, and the system's error.
///
/// The system's error is part of the message (`FILE: write failed: No space left on device`)
/// and therefore not also a [`std::error::Error::source`], so a printed chain of causes states
/// it once (docs/reliability.md, "Errors"); the typed error stays reachable as the `source`
/// field.
#[derive(Debug)]
pub struct FsError {
    /// The operation.
    pub op: Op,
    /// The file it was for (the final name, not the temporary one).
    pub path: PathBuf,
    /// The system's error (e.g. "No space left on device").
    pub source: io::Error,
}

impl fmt::Display for FsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} failed: {}", self.path.display(), self.op, self.source)
    }
}

impl std::error::Error for FsError {}

impl FsError {
    fn new(op: Op, path: &Path, source: io::Error) -> Self {
        FsError { op, path: path.to_path_buf(), source }
    }
}

/// `Result` with [`FsError`].
pub type Result<T, E = FsError> = std::result::Result<T, E>;

/// What a write left on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Written {
    /// sha256 of the content, 64 lowercase hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Calls the fault hook for `op` on `path`, as an [`FsError`].
fn hook(op: Op, path: &Path) -> Result<()> {
    fault::point(op, path).map_err(|e| FsError::new(op, path, e))
}

static TEMP_SEQ: AtomicU64 = AtomicU64::new(0);

/// The temporary sibling an atomic write of `path` uses: `.NAME.tmp-PID-N` in the same folder
/// (same file system, so the rename is atomic). [`is_temp_name`] recognises it.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let seq = TEMP_SEQ.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{seq}", std::process::id()))
}

/// Whether a file name is a temporary of [`temp_path`] (left behind by a killed process; safe
/// to remove when no write is in progress).
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

/// The folder holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// Writes `bytes` to `path` atomically and durably (temporary file, fsync, rename, folder
/// fsync); returns the content's sha256 and size.
pub fn write(path: &Path, bytes: &[u8]) -> Result<Written> {
    hook(Op::Write, path)?;
    let tmp = temp_path(path);
    let written = (|| {
        let mut f = File::create(&tmp).map_err(|e| FsError::new(Op::Write, path, e))?;
        f.write_all(bytes).map_err(|e| FsError::new(Op::Write, path, e))?;
        hook(Op::Sync, path)?;
        f.sync_all().map_err(|e| FsError::new(Op::Sync, path, e))?;
        Ok(Written { sha256: sha256_hex(bytes), bytes: bytes.len() as u64 })
    })()
    .inspect_err(|_| discard(&tmp))?;
    finish(&tmp, path)?;
    Ok(written)
}

/// Like [`write()`], for libraries that write by path (libtorch's safetensors writer, image
/// encoders): `fill` writes the temporary path it is given; the file is then read back (its
/// sha256) and fsynced, renamed over `path` and the folder fsynced. On any error the temporary
/// file is removed and `path` keeps its old content.
pub fn write_with(path: &Path, fill: impl FnOnce(&Path) -> io::Result<()>) -> Result<Written> {
    hook(Op::Write, path)?;
    let tmp = temp_path(path);
    let written = (|| {
        fill(&tmp).map_err(|e| FsError::new(Op::Write, path, e))?;
        hook(Op::Sync, path)?;
        let f = File::open(&tmp).map_err(|e| FsError::new(Op::Sync, path, e))?;
        let w = hash_reader(&f).map_err(|e| FsError::new(Op::Sync, path, e))?;
        f.sync_all().map_err(|e| FsError::new(Op::Sync, path, e))?;
        Ok(w)
    })()
    .inspect_err(|_| discard(&tmp))?;
    finish(&tmp, path)?;
    Ok(written)
}

/// Rename of a complete temporary file over `path`, then the folder's fsync.
fn finish(tmp: &Path, path: &Path) -> Result<()> {
    hook(Op::Rename, path).inspect_err(|_| discard(tmp))?;
    std::fs::rename(tmp, path).map_err(|e| {
        discard(tmp);
        FsError::new(Op::Rename, path, e)
    })?;
    // Hooked and reported under the file's name: the folder is fsynced for its sake.
    hook(Op::SyncDir, path)?;
    File::open(parent_dir(path))
        .and_then(|d| d.sync_all())
        .map_err(|e| FsError::new(Op::SyncDir, path, e))
}

/// Best-effort removal of a temporary file after a failed write (not hooked: it only runs on
/// an error path, and a leftover is recognised by [`is_temp_name`]).
fn discard(tmp: &Path) {
    if let Err(e) = std::fs::remove_file(tmp) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %tmp.display(), error = %e, "cannot remove a temporary file");
        }
    }
}

/// Fsyncs a folder, so that renames and new names in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    hook(Op::SyncDir, dir)?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| FsError::new(Op::SyncDir, dir, e))
}

/// Makes `dst` a second name of `src`'s content, atomically replacing `dst`: a hard link at a
/// temporary name renamed over `dst` (no data written), or, on a file system without hard
/// links, a durable copy through [`write_with`]. The folder is fsynced.
pub fn link(src: &Path, dst: &Path) -> Result<()> {
    hook(Op::Link, dst)?;
    let tmp = temp_path(dst);
    match std::fs::hard_link(src, &tmp) {
        Ok(()) => finish(&tmp, dst),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(FsError::new(Op::Link, src, e)),
        Err(e) => {
            tracing::debug!(error = %e, "no hard link: copying {} to {}", src.display(), dst.display());
            write_with(dst, |t| std::fs::copy(src, t).map(|_| ())).map(|_| ())
        }
    }
}

/// Appends `bytes` to `path` (created if absent). Not atomic and not fsynced: for journals
/// such as `train.log`, never for state a resume reads.
pub fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    hook(Op::Append, path)?;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| FsError::new(Op::Append, path, e))
}

/// Removes a file; `Ok(false)` when it did not exist.
pub fn remove_file(path: &Path) -> Result<bool> {
    hook(Op::Remove, path)?;
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(FsError::new(Op::Remove, path, e)),
    }
}

/// Creates a folder and its parents (nothing when it exists).
pub fn create_dir_all(path: &Path) -> Result<()> {
    hook(Op::CreateDir, path)?;
    std::fs::create_dir_all(path).map_err(|e| FsError::new(Op::CreateDir, path, e))
}

/// The sha256 and size of a file (a read: not hooked).
pub fn sha256_file(path: &Path) -> io::Result<Written> {
    hash_reader(&File::open(path)?)
}

/// sha256 of `bytes` as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hash_reader(mut r: &File) -> io::Result<Written> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        total += n as u64;
    }
    Ok(Written { sha256: hex(&h.finalize()), bytes: total })
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write(&p, b"one").unwrap();
        let w = write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        assert_eq!(w, sha256_file(&p).unwrap());
        // sha256("two"), as `printf two | sha256sum` prints it.
        assert_eq!(w.sha256, "3fc4ccfe745870e2c0d99f71f30ff0656c8dedd41cc1d7d3d376b0dbe685e2f3");
        assert_eq!(names(dir.path()), ["state.json"]);
    }

    #[test]
    fn write_with_hashes_what_the_filler_wrote_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.safetensors");
        let w = write_with(&p, |t| std::fs::write(t, b"abc")).unwrap();
        assert_eq!(w.sha256, sha256_hex(b"abc"));
        assert_eq!(w.bytes, 3);
        let err = write_with(&p, |t| {
            std::fs::write(t, b"partial")?;
            Err(io::Error::other("encoder failed"))
        })
        .unwrap_err();
        assert_eq!(err.op, Op::Write);
        assert!(err.to_string().contains("w.safetensors: write failed: encoder failed"), "{err}");
        assert_eq!(std::fs::read(&p).unwrap(), b"abc", "the old content stays");
        assert_eq!(names(dir.path()), ["w.safetensors"], "no temporary left");
    }

    #[test]
    fn link_names_the_same_content_and_replaces_the_old_name() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, alias) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("alias"));
        write(&a, b"A").unwrap();
        write(&b, b"B").unwrap();
        link(&a, &alias).unwrap();
        assert_eq!(std::fs::read(&alias).unwrap(), b"A");
        link(&b, &alias).unwrap();
        assert_eq!(std::fs::read(&alias).unwrap(), b"B");
        // The alias outlives the file it was made from.
        assert!(remove_file(&b).unwrap());
        assert!(!remove_file(&b).unwrap());
        assert_eq!(std::fs::read(&alias).unwrap(), b"B");
        let err = link(&dir.path().join("missing"), &alias).unwrap_err();
        assert_eq!(err.op, Op::Link);
        assert_eq!(names(dir.path()), ["a", "alias"]);
    }

    #[test]
    fn append_and_temp_names() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/train.log");
        create_dir_all(p.parent().unwrap()).unwrap();
        append(&p, b"one\n").unwrap();
        append(&p, b"two\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one\ntwo\n");
        let t = temp_path(&p);
        assert_eq!(t.parent(), p.parent());
        assert!(is_temp_name(&t.file_name().unwrap().to_string_lossy()));
        assert!(!is_temp_name("train.log") && !is_temp_name(".hidden"));
        assert_ne!(temp_path(&p), t, "two writes in one process never share a temporary");
        for op in [Op::CreateDir, Op::Write, Op::Sync, Op::Rename, Op::SyncDir, Op::Link] {
            assert_eq!(Op::from_name(op.name()), Some(op));
        }
    }
}
