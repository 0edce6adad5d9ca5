//! The error type of `mmanet-core`.

/// Errors raised while building or parsing modality masks and sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A mask must contain at least one modality.
    #[error("a modality mask must contain at least one modality")]
    EmptyMask,
    /// A modality symbol or name that is not known.
    #[error(
        "unknown modality `{0}` (expected e.g. R, D, I, Img, A, Acc, Gyr, Pix, X3, or a full name such as rgb)"
    )]
    UnknownModality(String),
    /// The same modality was named twice.
    #[error("modality `{0}` appears twice")]
    DuplicateModality(String),
    /// A mask uses a modality that the task does not have.
    #[error("mask `{mask}` uses modality `{modality}`, which is not in the task's set `{set}`")]
    NotInSet {
        /// The mask, displayed.
        mask: String,
        /// The offending modality.
        modality: String,
        /// The task's modality set, displayed.
        set: String,
    },
    /// A presence vector of the wrong length.
    #[error("presence vector has {got} entries, the task has {expected} modalities")]
    WrongLength {
        /// Length given.
        got: usize,
        /// Number of modalities in the set.
        expected: usize,
    },
    /// A task needs between 1 and [`crate::ModalitySet::MAX`] modalities.
    #[error("a task needs between 1 and {max} modalities, got {got}")]
    SetSize {
        /// Number of modalities given.
        got: usize,
        /// Upper bound.
        max: usize,
    },
}
