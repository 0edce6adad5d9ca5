//! The error type of `mmanet-data`: every variant names the file (and line) at fault.

use std::path::PathBuf;

/// Errors raised while reading, decoding or batching data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file could not be opened, read or written. The system's error is in the message and
    /// therefore not also the `source()` (a chain of causes states it once).
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A file could not be written (the operation, the file and the system's error).
    #[error(transparent)]
    File(#[from] mmanet_fs::FsError),
    /// A file exists but its content could not be decoded (image, CSV value, npy header, ...).
    #[error("{}: cannot decode: {message}", path.display())]
    Decode {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A malformed line of a list or text file (1-based line number).
    #[error("{}:{line}: {message}", path.display())]
    ListFormat {
        /// The list file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// A file or folder where a layout does not allow it (`mmanet data manifest --root`: a
    /// second file for one sample and modality, a file of an unlisted id, a folder name that
    /// is not a modality name).
    #[error("{}: {message}", path.display())]
    Layout {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Sizes that must agree do not (image sizes of one sample, feature lengths, batch parts).
    #[error("{context}: size mismatch: expected {expected}, got {got}")]
    Shape {
        /// Where the mismatch was found (a file, or a batch).
        context: String,
        /// Expected size, displayed.
        expected: String,
        /// Actual size, displayed.
        got: String,
    },
    /// A configuration that cannot work (crop larger than the image, empty data set, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A data-set setting with a bad value; `field` is relative to `data.dataset` (`crop`).
    #[error("config: data.dataset.{field}: {message}")]
    Field {
        /// The setting, e.g. `crop`.
        field: String,
        /// What is wrong with it.
        message: String,
    },
    /// A modality mask or set problem.
    #[error(transparent)]
    Core(#[from] mmanet_core::CoreError),
    /// A libtorch error while building tensors.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
    /// The loader's worker thread stopped unexpectedly.
    #[error("data loader worker failed: {0}")]
    Worker(String),
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io { path: path.into(), error: source }
    }

    /// A [`DataError::Field`] for the data-set setting `field`.
    pub fn field(field: impl Into<String>, message: impl Into<String>) -> Self {
        DataError::Field { field: field.into(), message: message.into() }
    }

    /// A [`DataError::Decode`] for `path`.
    pub fn decode(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        DataError::Decode { path: path.into(), message: message.into() }
    }

    /// A [`DataError::ListFormat`] for `path` at 1-based `line`.
    pub fn list(path: impl Into<PathBuf>, line: usize, message: impl Into<String>) -> Self {
        DataError::ListFormat { path: path.into(), line, message: message.into() }
    }

    /// A [`DataError::Shape`].
    pub fn shape(
        context: impl Into<String>,
        expected: impl std::fmt::Display,
        got: impl std::fmt::Display,
    ) -> Self {
        DataError::Shape {
            context: context.into(),
            expected: expected.to_string(),
            got: got.to_string(),
        }
    }
}
