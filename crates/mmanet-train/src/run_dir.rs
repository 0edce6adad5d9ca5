//! [`RunDir`]: the files of one training run, written atomically.
//!
//! ```text
//! run_dir/
//!   config.toml            the resolved configuration
//!   state.json             epoch reached, weak set, miner scores, history (written last)
//!   metrics.csv            one row per epoch
//!   checkpoints/last.safetensors, last.optim.safetensors
//!   checkpoints/best.safetensors, epoch-NNN.safetensors (the last `checkpoint_keep`)
//!   weak_set.json           the mined weak set
//!   train.log               one line per epoch
//!   report.md / report.json / report.csv   the per-combination evaluation
//! ```
//! Every file is written to a temporary name in the same folder and renamed into place, so an
//! interruption never leaves a half-written checkpoint; `state.json` is renamed last, so the
//! state on disk always names files that exist.

use std::path::{Path, PathBuf};

use tch::Tensor;

use crate::TrainError;

/// The folder of one run.
#[derive(Clone, Debug)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Creates (or opens) the run folder and its `checkpoints/`.
    pub fn create(root: impl Into<PathBuf>) -> Result<Self, TrainError> {
        let root = root.into();
        let ck = root.join("checkpoints");
        std::fs::create_dir_all(&ck).map_err(|e| TrainError::io(&ck, e))?;
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

    /// The latest model weights.
    pub fn last_weights(&self) -> PathBuf {
        self.root.join("checkpoints").join("last.safetensors")
    }

    /// The optimizer state matching [`RunDir::last_weights`].
    pub fn last_optimizer(&self) -> PathBuf {
        self.root.join("checkpoints").join("last.optim.safetensors")
    }

    /// The loss scaler's state matching [`RunDir::last_weights`] (mixed-precision runs only).
    pub fn last_scaler(&self) -> PathBuf {
        self.root.join("checkpoints").join("last.scaler.safetensors")
    }

    /// The best weights by the validation metric.
    pub fn best_weights(&self) -> PathBuf {
        self.root.join("checkpoints").join("best.safetensors")
    }

    /// Per-epoch weights `checkpoints/epoch-NNN.safetensors` (kept when `checkpoint_keep > 0`).
    pub fn epoch_weights(&self, epoch: usize) -> PathBuf {
        self.root.join("checkpoints").join(format!("epoch-{epoch:03}.safetensors"))
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
        use std::io::Write;
        let path = self.log();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| TrainError::io(&path, e))?;
        writeln!(f, "{line}").map_err(|e| TrainError::io(&path, e))
    }

    /// A report file, e.g. `report.md`.
    pub fn report(&self, ext: &str) -> PathBuf {
        self.root.join(format!("report.{ext}"))
    }
}

/// A sibling temporary path for an atomic write of `path`.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    use std::io::Write;
    let tmp = temp_path(path);
    let mut f = std::fs::File::create(&tmp).map_err(|e| TrainError::io(&tmp, e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// Writes named tensors as safetensors atomically (copied to dense CPU tensors first, so GPU
/// and channels-last tensors are written in the file's row-major layout).
pub fn write_safetensors_atomic(named: &[(String, Tensor)], path: &Path) -> Result<(), TrainError> {
    let tmp = temp_path(path);
    let dense: Vec<Tensor> =
        named.iter().map(|(_, t)| t.detach().to_device(tch::Device::Cpu).contiguous()).collect();
    let refs: Vec<(&str, &Tensor)> =
        named.iter().zip(&dense).map(|((n, _), t)| (n.as_str(), t)).collect();
    Tensor::write_safetensors(&refs, &tmp)
        .map_err(|e| TrainError::checkpoint(&tmp, format!("cannot write: {e}")))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
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
        write_safetensors_atomic(&[("a.b".into(), t.shallow_clone())], &p).unwrap();
        let back = Tensor::read_safetensors(&p).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].0, "a.b");
        assert!(back[0].1.equal(&t));
    }
}
