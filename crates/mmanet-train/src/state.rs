//! [`TrainState`]: everything besides weights and optimizer buffers that a resume needs.

use serde::{Deserialize, Serialize};

/// Mean loss terms over the steps of an epoch (or one step's values).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossBreakdown {
    /// The optimised total.
    pub total: f64,
    /// Cross-entropy of the deployment network.
    pub ce: f64,
    /// λ_MAD · MAD (or λ · SP), 0 when off.
    pub distill: f64,
    /// λ_MAR · MAR, 0 when off.
    pub mar: f64,
}

impl LossBreakdown {
    pub(crate) fn add(&mut self, other: &LossBreakdown) {
        self.total += other.total;
        self.ce += other.ce;
        self.distill += other.distill;
        self.mar += other.mar;
    }

    pub(crate) fn scaled(&self, s: f64) -> LossBreakdown {
        LossBreakdown {
            total: self.total * s,
            ce: self.ce * s,
            distill: self.distill * s,
            mar: self.mar * s,
        }
    }
}

/// One epoch of the history (also a row of `metrics.csv`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Learning rate of the epoch.
    pub lr: f64,
    /// Optimisation steps taken (0 for a skipped epoch).
    pub steps: usize,
    /// Mean losses over the steps.
    pub loss: LossBreakdown,
    /// Validation score (mean accuracy or mIoU over the validation combinations), when run.
    pub val: Option<f64>,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Samples skipped as unreadable.
    pub skipped_samples: usize,
}

impl EpochRecord {
    /// The CSV header matching [`EpochRecord::csv_row`].
    pub const CSV_HEADER: &'static str = "epoch,lr,steps,loss,ce,distill,mar,val,seconds\n";

    /// One CSV line.
    pub fn csv_row(&self) -> String {
        let val = self.val.map(|v| format!("{v:.6}")).unwrap_or_default();
        let l = &self.loss;
        format!(
            "{},{:e},{},{:.6},{:.6},{:.6},{:.6},{},{:.2}\n",
            self.epoch, self.lr, self.steps, l.total, l.ce, l.distill, l.mar, val, self.seconds
        )
    }
}

/// Predicted labels of one mining epoch, kept so a resumed run rebuilds the miner exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MiningEpoch {
    /// Epoch the predictions were made after.
    pub epoch: usize,
    /// Predictions with every modality present.
    pub full: Vec<i64>,
    /// Predictions per candidate, in the miner's candidate order.
    pub candidates: Vec<Vec<i64>>,
    /// Segmentation: mIoU of the full combination and of each candidate.
    #[serde(default)]
    pub miou: Vec<f64>,
}

/// The best validation score so far.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// Epoch that reached it.
    pub epoch: usize,
    /// Score (higher is better).
    pub score: f64,
}

/// An epoch interrupted after `steps` optimisation steps.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PartialEpoch {
    /// The epoch.
    pub epoch: usize,
    /// Steps finished (and saved in the weights and optimizer state).
    pub steps: usize,
    /// Sum of the finished steps' losses.
    pub sum: LossBreakdown,
}

/// What a file of a committed checkpoint is for (see [`CheckpointFile`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileRole {
    /// The latest weights (`--weights last`).
    Last,
    /// The optimizer state matching [`FileRole::Last`].
    Optimizer,
    /// The loss scaler's state matching [`FileRole::Last`] (mixed-precision runs only).
    Scaler,
    /// The best weights by the validation metric (`--weights best`).
    Best,
    /// The weights after one epoch, kept for `checkpoint_keep` epochs.
    Epoch,
}

impl FileRole {
    /// The role's name in `state.json` (`last`, `optimizer`, `scaler`, `best`, `epoch`).
    pub fn name(self) -> &'static str {
        match self {
            FileRole::Last => "last",
            FileRole::Optimizer => "optimizer",
            FileRole::Scaler => "scaler",
            FileRole::Best => "best",
            FileRole::Epoch => "epoch",
        }
    }
}

/// One file of the checkpoint a `state.json` commits: the state names exactly the files it
/// belongs to, with their sha256, and a resume refuses a file whose hash differs.
///
/// One physical file may serve several roles (the weights of the best epoch are also `last`
/// or a kept epoch); see `docs/architecture.md`, "Checkpoint commit protocol".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointFile {
    /// What the file is for.
    pub role: FileRole,
    /// The epoch of an [`FileRole::Epoch`] file (0-based).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<usize>,
    /// The file, relative to the run folder with `/` separators
    /// (`checkpoints/weights-e0003.safetensors`).
    pub file: String,
    /// sha256 of the file's bytes, 64 lowercase hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

impl CheckpointFile {
    /// The same file in another role.
    pub fn as_role(&self, role: FileRole, epoch: Option<usize>) -> CheckpointFile {
        CheckpointFile { role, epoch, ..self.clone() }
    }
}

/// The data a run was trained on, as [`TrainState::data`] records it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// sha256 of each list or manifest file, by its path relative to the data root (so a
    /// moved data folder has the same fingerprint).
    pub files: std::collections::BTreeMap<String, String>,
    /// Samples of the training split.
    pub train_samples: usize,
    /// Samples of the validation split.
    pub val_samples: usize,
}

/// The resumable state of a run (`state.json`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    /// The first epoch still to run.
    pub next_epoch: usize,
    /// The mined (or configured) weak set, once selected.
    pub weak_set: Option<Vec<String>>,
    /// Mining inputs so far.
    pub mining: Vec<MiningEpoch>,
    /// Best validation score.
    pub best: Option<Best>,
    /// Every finished epoch.
    pub history: Vec<EpochRecord>,
    /// The epoch in progress when the run was stopped, if any.
    #[serde(default)]
    pub partial: Option<PartialEpoch>,
    /// The checkpoint files this state commits (empty in runs written before the commit
    /// protocol, whose files have fixed names: `checkpoints/last.safetensors`, ...).
    #[serde(default)]
    pub checkpoint: Vec<CheckpointFile>,
    /// What the run was trained on: the sha256 of the data set's list or manifest files and
    /// the sample counts (`None` in runs written before it was recorded). A resume warns when
    /// a file changed and refuses a changed sample count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataFingerprint>,
}

impl TrainState {
    /// The committed file of `role` (for [`FileRole::Epoch`], of that `epoch`).
    pub fn file(&self, role: FileRole, epoch: Option<usize>) -> Option<&CheckpointFile> {
        self.checkpoint
            .iter()
            .find(|f| f.role == role && (role != FileRole::Epoch || f.epoch == epoch))
    }
}
