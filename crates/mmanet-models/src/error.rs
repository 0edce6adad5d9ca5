//! [`ModelError`]: everything that can go wrong building, running or loading a network.

use std::path::PathBuf;

/// Errors of `mmanet-models`.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A libtorch call failed. Its message is part of this one and therefore not also the
    /// `source()` (a chain of causes states it once).
    #[error("libtorch: {0}")]
    Tch(tch::TchError),
    /// A file could not be read, written or renamed (the system's error is in the message, not
    /// also the `source()`).
    #[error("{}: {error}", path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file could not be written (which operation, which file, the system's error).
    #[error(transparent)]
    File(#[from] mmanet_fs::FsError),
    /// A safetensors file is malformed, or holds a tensor libtorch cannot represent.
    #[error("{}: {message}", path.display())]
    Safetensors {
        /// The file.
        path: PathBuf,
        /// What is wrong (names the tensor where one is at fault).
        message: String,
    },
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

impl From<tch::TchError> for ModelError {
    fn from(e: tch::TchError) -> Self {
        ModelError::Tch(e)
    }
}

/// `Result` with [`ModelError`].
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
