//! The error type of `mmanet-core`.

/// Errors raised while building or parsing modality masks and sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CoreError {
    /// A mask must contain at least one modality.
    #[error("a modality mask must contain at least one modality")]
    EmptyMask,
    /// A token that names no modality of the task.
    #[error("unknown modality `{token}` (the task has {set})")]
    UnknownModality {
        /// The token as written.
        token: String,
        /// The task's modalities, `rgb (R), depth (D)`.
        set: String,
    },
    /// The same modality was named twice.
    #[error("modality `{0}` appears twice")]
    DuplicateModality(String),
    /// Two modalities whose symbols (or a symbol and a name) are equal ignoring case.
    #[error(
        "modalities {first} and {second} would share a mask symbol; give one an explicit `symbol`"
    )]
    SymbolCollision {
        /// The first modality, `name (symbol)`.
        first: String,
        /// The second modality.
        second: String,
    },
    /// An invalid modality name.
    #[error("invalid modality name `{name}`: {why}")]
    InvalidName {
        /// The name.
        name: String,
        /// Which rule it breaks.
        why: String,
    },
    /// An invalid mask symbol.
    #[error("invalid modality symbol `{0}`: a symbol matches [A-Za-z][A-Za-z0-9_]*")]
    InvalidSymbol(String),
    /// A mask uses a position that the task does not have.
    #[error("mask bits {bits:#b} use a position outside the task's set `{set}`")]
    NotInSet {
        /// The mask's bits.
        bits: u32,
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
