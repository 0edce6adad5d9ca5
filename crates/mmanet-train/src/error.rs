//! The error type of `mmanet-train`.

use std::path::{Path, PathBuf};

/// Errors of the training driver.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A configuration field is missing, unknown or invalid.
    #[error("config: {field}: {message}")]
    Config {
        /// Dotted path of the field, e.g. `loss.lambda_mad`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration file could not be parsed.
    #[error("{path}: {message}")]
    ConfigFile {
        /// The file.
        path: PathBuf,
        /// Parser message (names the line and the field).
        message: String,
    },
    /// A file system operation failed. The system's error is in the message and therefore not
    /// also the `source()` (a chain of causes states it once).
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file could not be written, renamed, linked or removed (the operation, the file and
    /// the system's error, e.g. "No space left on device").
    #[error(transparent)]
    File(#[from] mmanet_fs::FsError),
    /// A checkpoint or state file is unreadable or inconsistent.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The loss became NaN or infinite.
    #[error("non-finite loss at epoch {epoch}, step {step}: {what}")]
    NonFinite {
        /// Epoch (0-based).
        epoch: usize,
        /// Step within the epoch.
        step: usize,
        /// Which term.
        what: String,
    },
    /// Reading or loading data failed.
    #[error(transparent)]
    Data(#[from] mmanet_data::DataError),
    /// Building or loading a network failed.
    #[error(transparent)]
    Model(#[from] mmanet_models::ModelError),
    /// A model file or prediction failed.
    #[error(transparent)]
    Deploy(#[from] mmanet_deploy::DeployError),
    /// A loss could not be computed.
    #[error(transparent)]
    Loss(#[from] mmanet_losses::LossError),
    /// A metric could not be computed.
    #[error(transparent)]
    Metrics(#[from] mmanet_metrics::MetricsError),
    /// The run was stopped on request; `mmanet resume` continues it exactly.
    #[error("stopped at epoch {epoch}, step {step}; a checkpoint was written")]
    Interrupted {
        /// Epoch (0-based).
        epoch: usize,
        /// Steps finished in that epoch.
        step: usize,
    },
    /// A libtorch operation failed.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// A collective of data-parallel training failed (a rank died or hung past the timeout,
    /// the rendezvous failed); this rank stops.
    #[error("rank {rank} of {world}: {source}")]
    Distributed {
        /// This process's rank.
        rank: usize,
        /// The world size.
        world: usize,
        /// What c10d reported.
        source: mmanet_sys::DistError,
    },
}

impl TrainError {
    /// A config error for `field`.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        TrainError::Config { field: field.into(), message: message.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io { path: path.to_path_buf(), error: source }
    }

    /// A model error, with a failed file operation lifted to [`TrainError::File`] (so callers
    /// match one variant for "the disk refused a write", wherever it happened).
    pub fn from_model(e: mmanet_models::ModelError) -> Self {
        match e {
            mmanet_models::ModelError::File(f) => TrainError::File(f),
            other => TrainError::Model(other),
        }
    }

    /// A checkpoint error on `path`.
    pub fn checkpoint(path: &Path, message: impl Into<String>) -> Self {
        TrainError::Checkpoint { path: path.to_path_buf(), message: message.into() }
    }
}
