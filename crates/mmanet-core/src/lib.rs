//! Modalities, modality subsets and their combinations: the vocabulary every mmanet crate shares.
//!
//! MMANet trains one network that must work with any non-empty subset of a task's modalities.
//! This crate names those subsets. It has no libtorch dependency.
//!
//! - [`Modality`]: one sensor or view (RGB, depth, IR, audio, a UCI mfeat view, ...).
//! - [`ModalitySet`]: the modalities of one task, in canonical order (e.g. R, D, I for CASIA-SURF).
//! - [`ModalityMask`]: a non-empty subset, written `R+D+I`, `D`, `Img+A`.
//! - [`Fidelity`]: paper semantics or the released code's (`reference-code`) where they differ.
//!
//! ```
//! use mmanet_core::{ModalityMask, ModalitySet};
//!
//! let surf = ModalitySet::surf();
//! let names: Vec<String> = surf.combinations().iter().map(|c| c.to_string()).collect();
//! assert_eq!(names, ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"]);
//!
//! let ri: ModalityMask = "R+I".parse().unwrap();
//! assert_eq!(surf.presence(ri).unwrap(), vec![true, false, true]);
//! ```

mod error;
mod fidelity;
mod mask;
mod modality;
mod set;

pub use error::CoreError;
pub use fidelity::Fidelity;
pub use mask::ModalityMask;
pub use modality::Modality;
pub use set::ModalitySet;

/// Result alias of this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
