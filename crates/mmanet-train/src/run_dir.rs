//! [`RunDir`]: the files of one training run, and the checkpoint they commit.
//!
//! ```text
//! run_dir/
//!   config.toml            the resolved configuration
//!   input_spec.json        how prediction decodes raw inputs
//!   state.json             the commit record: epoch reached, weak set, miner scores, history,
//!                          loader position, and the checkpoint files with their sha256
//!   metrics.csv            one row per epoch (rewritten from state.json after each commit)
//!   checkpoints/weights-e0007.safetensors         weights after epoch 7 (0-based)
//!   checkpoints/optim-e0007.safetensors           the optimizer state that goes with them
//!   checkpoints/scaler-e0007.safetensors          the fp16 loss scaler's (mixed precision)
//!   checkpoints/weights-e0008-s000012.safetensors a run stopped after 12 steps of epoch 8
//!   checkpoints/last.safetensors, best.safetensors  names of the files state.json calls
//!                          `last` and `best` (hard links, refreshed after each commit)
//!   weak_set.json          the mined weak set
//!   train.log              one line per epoch and event (a journal, not part of a checkpoint)
//!   report.md / report.json / report.csv   the per-combination evaluation
//! ```
//!
//! Every file goes through [`mmanet_fs`] (temporary file, fsync, rename, folder fsync). A
//! checkpoint is committed by `state.json` alone: the trainer writes the weights, optimizer and
//! scaler under new physical names, then `state.json` naming exactly those files and their
//! sha256; only then are files no state names removed and the `last`/`best` names refreshed.
//! A crash at any point leaves the previous `state.json` and every file it names intact.
//! `best` and `last` resolve through `state.json` ([`RunDir::last_weights`],
//! [`RunDir::weights`]); runs written before the protocol have no file list and keep their
//! fixed names (`checkpoints/last.safetensors`, `last.optim.safetensors`, `best.safetensors`,
//! `epoch-NNN.safetensors`).

use std::path::{Component, Path, PathBuf};

use tch::Tensor;

use crate::TrainError;
use crate::state::{CheckpointFile, FileRole, TrainState};

/// The run folder's subfolder of checkpoint files.
pub const CHECKPOINTS: &str = "checkpoints";

/// The folder of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates (or opens) the run folder and its `checkpoints/`.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let root = root.into();
        mmanet_fs::create_dir_all(&root.join(CHECKPOINTS))?;
        Ok(RunDir { root })
    }

    /// The folder itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `config.toml`.
    pub fn config(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    /// `state.json`.
    pub fn state(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// `metrics.csv`.
    pub fn metrics(&self) -> PathBuf {
        self.root.join("metrics.csv")
    }

    /// `checkpoints/`.
    pub fn checkpoints(&self) -> PathBuf {
        self.root.join(CHECKPOINTS)
    }

    /// The checkpoint files the current `state.json` commits (empty when there is no
    /// `state.json` yet, or for a run written before the commit protocol).
    pub fn committed_files(&self) -> Result<Vec<CheckpointFile>, TrainError> {
        #[derive(serde::Deserialize)]
        struct Files {
            #[serde(default)]
            checkpoint: Vec<CheckpointFile>,
        }
        let path = self.state();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(TrainError::io(&path, e)),
        };
        let files: Files = serde_json::from_str(&text)
            .map_err(|e| TrainError::checkpoint(&path, format!("invalid state: {e}")))?;
        Ok(files.checkpoint)
    }

    /// Reads `state.json`.
    pub fn read_state(&self) -> Result<TrainState, TrainError> {
        let path = self.state();
        let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
        serde_json::from_str(&text)
            .map_err(|e| TrainError::checkpoint(&path, format!("invalid state: {e}")))
    }

    /// Where `state.json` puts the file of `role` (`None` when it names none, or cannot be
    /// read).
    fn resolved(&self, role: FileRole, epoch: Option<usize>) -> Option<PathBuf> {
        let files = self.committed_files().ok()?;
        let f = files
            .iter()
            .find(|f| f.role == role && (role != FileRole::Epoch || f.epoch == epoch))?;
        self.file_path(f).ok()
    }

    /// The latest model weights: the file `state.json` calls `last`, else (runs written
    /// before the commit protocol, or none yet) `checkpoints/last.safetensors`.
    pub fn last_weights(&self) -> PathBuf {
        self.resolved(FileRole::Last, None).unwrap_or_else(|| self.legacy(FileRole::Last, None))
    }

    /// The optimizer state matching [`RunDir::last_weights`].
    pub fn last_optimizer(&self) -> PathBuf {
        self.resolved(FileRole::Optimizer, None)
            .unwrap_or_else(|| self.legacy(FileRole::Optimizer, None))
    }

    /// The loss scaler's state matching [`RunDir::last_weights`] (mixed-precision runs only).
    pub fn last_scaler(&self) -> PathBuf {
        self.resolved(FileRole::Scaler, None).unwrap_or_else(|| self.legacy(FileRole::Scaler, None))
    }

    /// The best weights by the validation metric: the file `state.json` calls `best`, else
    /// `checkpoints/best.safetensors`.
    pub fn best_weights(&self) -> PathBuf {
        self.resolved(FileRole::Best, None).unwrap_or_else(|| self.legacy(FileRole::Best, None))
    }

    /// The weights kept after `epoch` (`checkpoint_keep > 0`): the file `state.json` lists for
    /// that epoch, else `checkpoints/epoch-NNN.safetensors` (which exists only in runs written
    /// before the commit protocol).
    pub fn epoch_weights(&self, epoch: usize) -> PathBuf {
        self.resolved(FileRole::Epoch, Some(epoch))
            .unwrap_or_else(|| self.legacy(FileRole::Epoch, Some(epoch)))
    }

    /// The weights `best` or `last` name, checked against the sha256 `state.json` records (a
    /// changed or damaged file is an error naming it). Runs written before the commit
    /// protocol have no hashes: their fixed names are returned unchecked.
    pub fn weights(&self, role: FileRole) -> Result<PathBuf, TrainError> {
        let files = self.committed_files()?;
        match files.iter().find(|f| f.role == role) {
            Some(f) => {
                self.verify(std::slice::from_ref(f))?;
                self.file_path(f)
            }
            None => Ok(self.legacy(role, None)),
        }
    }

    /// The fixed file names of runs written before the commit protocol.
    fn legacy(&self, role: FileRole, epoch: Option<usize>) -> PathBuf {
        let ck = self.checkpoints();
        match role {
            FileRole::Last => ck.join("last.safetensors"),
            FileRole::Optimizer => ck.join("last.optim.safetensors"),
            FileRole::Scaler => ck.join("last.scaler.safetensors"),
            FileRole::Best => ck.join("best.safetensors"),
            FileRole::Epoch => ck.join(format!("epoch-{:03}.safetensors", epoch.unwrap_or(0))),
        }
    }

    /// The legacy name of `role` (for resuming runs written before the commit protocol).
    pub(crate) fn legacy_path(&self, role: FileRole) -> PathBuf {
        self.legacy(role, None)
    }

    /// The path of a committed file; a name outside `checkpoints/` (an edited or foreign
    /// `state.json`) is an error.
    pub fn file_path(&self, f: &CheckpointFile) -> Result<PathBuf, TrainError> {
        let rel = Path::new(&f.file);
        let mut parts = rel.components();
        let ok = matches!(parts.next(), Some(Component::Normal(c)) if c == CHECKPOINTS)
            && matches!(parts.next(), Some(Component::Normal(_)))
            && parts.next().is_none();
        if !ok {
            return Err(TrainError::checkpoint(
                &self.state(),
                format!("the {} file `{}` is not a file of {CHECKPOINTS}/", f.role.name(), f.file),
            ));
        }
        Ok(self.root.join(rel))
    }

    /// Checks every distinct file of `files` against its recorded sha256 and size.
    pub fn verify(&self, files: &[CheckpointFile]) -> Result<(), TrainError> {
        let mut done: Vec<&str> = Vec::new();
        for f in files {
            if done.contains(&f.file.as_str()) {
                continue;
            }
            done.push(&f.file);
            let path = self.file_path(f)?;
            let got = match mmanet_fs::sha256_file(&path) {
                Ok(w) => w,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(TrainError::checkpoint(
                        &path,
                        format!(
                            "state.json names this file ({}) but it is missing; the checkpoint \
                             cannot be resumed",
                            f.role.name()
                        ),
                    ));
                }
                Err(e) => return Err(TrainError::io(&path, e)),
            };
            if got.sha256 != f.sha256 || got.bytes != f.bytes {
                return Err(TrainError::checkpoint(
                    &path,
                    format!(
                        "sha256 mismatch: state.json records {} ({} bytes) for this {} file, \
                         it has {} ({} bytes); it was changed or damaged after the checkpoint \
                         was committed: restore it, or start a new run",
                        f.sha256,
                        f.bytes,
                        f.role.name(),
                        got.sha256,
                        got.bytes
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A new physical name `checkpoints/STEM.safetensors` that no file of `taken` uses (a
    /// suffix `-2`, `-3`, ... only if one does).
    pub(crate) fn fresh_checkpoint(&self, stem: &str, taken: &[CheckpointFile]) -> PathBuf {
        let used = |rel: &str| taken.iter().any(|f| f.file == rel);
        let mut rel = format!("{CHECKPOINTS}/{stem}.safetensors");
        let mut k = 2;
        while used(&rel) {
            rel = format!("{CHECKPOINTS}/{stem}-{k}.safetensors");
            k += 1;
        }
        self.root.join(rel)
    }

    /// The [`CheckpointFile`] entry of a file just written under `path`.
    pub(crate) fn entry(
        &self,
        role: FileRole,
        path: &Path,
        written: mmanet_fs::Written,
    ) -> CheckpointFile {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        CheckpointFile {
            role,
            epoch: None,
            file: format!("{CHECKPOINTS}/{name}"),
            sha256: written.sha256,
            bytes: written.bytes,
        }
    }

    /// After a commit: removes the checkpoint files no entry of `keep` names (older sets,
    /// files of an interrupted commit, the optimizer and scaler files of runs written before
    /// the protocol) and temporary files left by killed processes. Other files, the `last` and
    /// `best` names and pre-protocol `epoch-NNN.safetensors` are left alone. A file that cannot
    /// be removed is logged and tried again after the next commit.
    pub(crate) fn collect_garbage(&self, keep: &[CheckpointFile]) {
        let kept: Vec<&str> = keep.iter().map(|f| f.file.as_str()).collect();
        for (dir, in_checkpoints) in [(self.checkpoints(), true), (self.root.clone(), false)] {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut names: Vec<String> = entries
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for name in names {
                let ours = in_checkpoints && is_physical_name(&name);
                let referenced = kept.contains(&format!("{CHECKPOINTS}/{name}").as_str());
                if mmanet_fs::is_temp_name(&name) || (ours && !referenced) {
                    if let Err(e) = mmanet_fs::remove_file(&dir.join(&name)) {
                        tracing::warn!(error = %e, "cannot remove an old checkpoint file");
                    }
                }
            }
        }
    }

    /// After a commit: makes `checkpoints/last.safetensors` and `best.safetensors` name the
    /// files `files` calls `last` and `best` (hard links; nothing is done where they already
    /// do).
    pub(crate) fn refresh_aliases(&self, files: &[CheckpointFile]) -> Result<(), TrainError> {
        for role in [FileRole::Last, FileRole::Best] {
            let Some(f) = files.iter().find(|f| f.role == role) else { continue };
            let src = self.file_path(f)?;
            let alias = self.legacy(role, None);
            if src == alias || same_file(&src, &alias) {
                continue;
            }
            mmanet_fs::link(&src, &alias)?;
        }
        Ok(())
    }

    /// `weak_set.json`: the weak set MAR mined.
    pub fn weak_set(&self) -> PathBuf {
        self.root.join("weak_set.json")
    }

    /// `train.log`: one line per epoch and event.
    pub fn log(&self) -> PathBuf {
        self.root.join("train.log")
    }

    /// Appends a line to `train.log`.
    pub fn append_log(&self, line: &str) -> Result<(), TrainError> {
        Ok(mmanet_fs::append(&self.log(), format!("{line}\n").as_bytes())?)
    }

    /// A report file, e.g. `report.md`.
    pub fn report(&self, ext: &str) -> PathBuf {
        self.root.join(format!("report.{ext}"))
    }
}

/// Physical names the trainer writes (`weights-*`, `optim-*`, `scaler-*` `.safetensors`) and
/// the optimizer and scaler names of runs written before the commit protocol.
fn is_physical_name(name: &str) -> bool {
    let ours = ["weights-", "optim-", "scaler-"].iter().any(|p| name.starts_with(p))
        && name.ends_with(".safetensors");
    ours || name == "last.optim.safetensors" || name == "last.scaler.safetensors"
}

/// Whether two paths name the same file (same device and inode).
fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(a), std::fs::metadata(b)) {
            (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (a, b);
        false
    }
}

/// Writes `bytes` to `path` atomically and durably ([`mmanet_fs::write`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    mmanet_fs::write(path, bytes)?;
    Ok(())
}

/// Writes named tensors as safetensors atomically and durably
/// ([`mmanet_models::checkpoint::write_safetensors_atomic`]); returns the file's sha256 and
/// size.
pub fn write_safetensors_atomic(
    named: &[(String, Tensor)],
    path: &Path,
) -> Result<mmanet_fs::Written, TrainError> {
    mmanet_models::checkpoint::write_safetensors_atomic(named, path).map_err(TrainError::from_model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path().join("run")).unwrap();
        write_atomic(&run.state(), b"one").unwrap();
        write_atomic(&run.state(), b"two").unwrap();
        assert_eq!(std::fs::read(run.state()).unwrap(), b"two");
        let leftovers: Vec<_> = std::fs::read_dir(run.root())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty());
    }

    #[test]
    fn safetensors_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.safetensors");
        let t = Tensor::from_slice(&[1.5f32, -2.0, 3.25]).view([3, 1]);
        let w = write_safetensors_atomic(&[("a.b".into(), t.shallow_clone())], &p).unwrap();
        assert_eq!(w, mmanet_fs::sha256_file(&p).unwrap());
        let back = Tensor::read_safetensors(&p).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "a.b");
        assert!(back[0].1.equal(&t));
    }

    fn put(run: &RunDir, role: FileRole, name: &str, bytes: &[u8]) -> CheckpointFile {
        let path = run.checkpoints().join(name);
        let w = mmanet_fs::write(&path, bytes).unwrap();
        run.entry(role, &path, w)
    }

    #[test]
    fn names_resolve_through_state_json_and_fall_back_to_the_fixed_names() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        // No state.json (or one written before the protocol): the fixed names.
        assert_eq!(run.last_weights(), run.checkpoints().join("last.safetensors"));
        assert_eq!(run.best_weights(), run.checkpoints().join("best.safetensors"));
        assert_eq!(run.epoch_weights(3), run.checkpoints().join("epoch-003.safetensors"));
        let last = put(&run, FileRole::Last, "weights-e0003.safetensors", b"w3");
        let best = put(&run, FileRole::Best, "weights-e0001.safetensors", b"w1");
        let state = TrainState {
            checkpoint: vec![last.clone(), best, last.as_role(FileRole::Epoch, Some(3))],
            ..TrainState::default()
        };
        write_atomic(&run.state(), serde_json::to_string(&state).unwrap().as_bytes()).unwrap();
        assert_eq!(run.last_weights(), run.checkpoints().join("weights-e0003.safetensors"));
        assert_eq!(run.best_weights(), run.checkpoints().join("weights-e0001.safetensors"));
        assert_eq!(run.epoch_weights(3), run.last_weights());
        assert_eq!(run.weights(FileRole::Best).unwrap(), run.best_weights());

        // The aliases are hard links to the files state.json names; garbage collection keeps
        // them, the named files and foreign files, and removes the rest.
        run.refresh_aliases(&state.checkpoint).unwrap();
        assert_eq!(std::fs::read(run.checkpoints().join("last.safetensors")).unwrap(), b"w3");
        assert_eq!(std::fs::read(run.checkpoints().join("best.safetensors")).unwrap(), b"w1");
        put(&run, FileRole::Last, "weights-e0002.safetensors", b"w2");
        put(&run, FileRole::Optimizer, "optim-e0002.safetensors", b"o2");
        put(&run, FileRole::Optimizer, "last.optim.safetensors", b"legacy");
        std::fs::write(run.checkpoints().join("notes.txt"), b"mine").unwrap();
        std::fs::write(run.checkpoints().join(".weights-e0004.safetensors.tmp-1-0"), b"").unwrap();
        std::fs::write(run.root().join(".state.json.tmp-1-1"), b"").unwrap();
        run.collect_garbage(&state.checkpoint);
        let mut left: Vec<String> = std::fs::read_dir(run.checkpoints())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "best.safetensors",
                "last.safetensors",
                "notes.txt",
                "weights-e0001.safetensors",
                "weights-e0003.safetensors"
            ]
        );
        assert!(!run.root().join(".state.json.tmp-1-1").exists());
        assert_eq!(
            run.fresh_checkpoint("weights-e0003", &state.checkpoint),
            run.checkpoints().join("weights-e0003-2.safetensors")
        );
        assert_eq!(
            run.fresh_checkpoint("weights-e0004", &state.checkpoint),
            run.checkpoints().join("weights-e0004.safetensors")
        );
    }

    #[test]
    fn a_changed_or_missing_file_and_a_name_outside_the_folder_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path()).unwrap();
        let last = put(&run, FileRole::Last, "weights-e0000.safetensors", b"good");
        run.verify(std::slice::from_ref(&last)).unwrap();
        std::fs::write(run.file_path(&last).unwrap(), b"evil").unwrap();
        let msg = run.verify(std::slice::from_ref(&last)).unwrap_err().to_string();
        assert!(
            msg.contains("weights-e0000.safetensors") && msg.contains("sha256 mismatch"),
            "{msg}"
        );
        std::fs::remove_file(run.file_path(&last).unwrap()).unwrap();
        let msg = run.verify(std::slice::from_ref(&last)).unwrap_err().to_string();
        assert!(msg.contains("missing"), "{msg}");
        for bad in ["../x.safetensors", "/etc/passwd", "checkpoints/../../x", "config.toml"] {
            let f = CheckpointFile { file: bad.into(), ..last.clone() };
            let msg = run.file_path(&f).unwrap_err().to_string();
            assert!(msg.contains("is not a file of checkpoints/"), "{bad}: {msg}");
        }
    }
}
