//! [`ModelError`]: everything that can go wrong building, running or loading a network.

use std::path::PathBuf;

/// Errors of `mmanet-models`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A libtorch call failed.
    #[error("libtorch: {0}")]
    Tch(#[from] tch::TchError),
    /// A file could not be read, written or renamed.
    #[error("i/o on {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A file could not be written (which operation, which file, the system's error).
    #[error(transparent)]
    File(#[from] mmanet_fs::FsError),
    /// A strict load found names that do not match the network's variables.
    #[error(
        "checkpoint names do not match the network: missing {missing:?}, unexpected {unexpected:?}"
    )]
    NameMismatch {
        /// Network variables the file lacks (sorted).
        missing: Vec<String>,
        /// File entries the network does not have (sorted).
        unexpected: Vec<String>,
    },
    /// A tensor in the file has the wrong shape.
    #[error("tensor `{name}`: network expects shape {expected:?}, file has {got:?}")]
    ShapeMismatch {
        /// The variable name.
        name: String,
        /// Shape of the network's variable.
        expected: Vec<i64>,
        /// Shape found in the file.
        got: Vec<i64>,
    },
    /// A configuration is inconsistent.
    #[error("invalid config: {0}")]
    Config(String),
    /// Inputs do not fit the network (count, rank, batch size).
    #[error("invalid inputs: {0}")]
    Inputs(String),
}

/// `Result` with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
