//! [`LossError`]: what the `f_*` loss functions report instead of panicking.

use mmanet_core::CoreError;

/// Errors of the loss functions and weak-set miners.
#[derive(Debug, thiserror::Error)]
pub enum LossError {
    /// Two inputs whose shapes must agree do not.
    #[error("shape mismatch in {op}: {lhs:?} vs {rhs:?}")]
    Shape {
        /// The function that checked the shapes.
        op: &'static str,
        /// Shape of the first input.
        lhs: Vec<i64>,
        /// Shape of the second input (or the expected shape).
        rhs: Vec<i64>,
    },
    /// An input has the wrong number of dimensions.
    #[error("{op}: `{input}` must have {expected} dimensions, got shape {got:?}")]
    Rank {
        /// The function that checked the rank.
        op: &'static str,
        /// The input's name.
        input: &'static str,
        /// Expected rank, in words (`"2"`, `"at least 2"`).
        expected: &'static str,
        /// The shape received.
        got: Vec<i64>,
    },
    /// An input has an unsupported element kind (a float tensor where an index was expected, ...).
    #[error("{op}: `{input}` has kind {got:?}, expected {expected}")]
    Kind {
        /// The function that checked the kind.
        op: &'static str,
        /// The input's name.
        input: &'static str,
        /// Expected kind, in words.
        expected: &'static str,
        /// The kind received.
        got: tch::Kind,
    },
    /// A configuration or argument value is out of its range.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A modality mask or set was rejected by `mmanet-core`.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// libtorch reported an error.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// Result alias of this crate.
pub type Result<T, E = LossError> = std::result::Result<T, E>;
