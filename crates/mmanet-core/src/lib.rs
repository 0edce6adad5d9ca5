//! Modalities, modality subsets and their combinations: the vocabulary every mmanet crate shares.
//!
//! MMANet trains one network that must work with any non-empty subset of a task's modalities.
//! This crate names those subsets. It has no libtorch dependency.
//!
//! - [`Modality`]: one sensor or view, with the name its task's config gives it (`rgb`, `lidar`)
//!   and a short symbol for mask strings (`R`, `L`). This crate knows no data set: readers and
//!   configs declare their modalities.
//! - [`ModalitySet`]: the modalities of one task, in the task's order (at most 32).
//! - [`ModalityMask`]: a non-empty subset, a bitset over the set's positions, written against
//!   its set as `R+D+I`, `D`, `Img+A`.
//! - [`Fidelity`]: paper semantics or the released code's (`reference-code`) where they differ.
//!
//! ```
//! use mmanet_core::ModalitySet;
//!
//! let surf = ModalitySet::from_pairs(&[("rgb", "R"), ("depth", "D"), ("ir", "I")])?;
//! let names = surf.format_all(&surf.combinations());
//! assert_eq!(names, ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"]);
//!
//! let ri = surf.parse_mask("R+I")?;
//! assert_eq!(surf.presence(ri)?, vec![true, false, true]);
//! # Ok::<(), mmanet_core::CoreError>(())
//! ```

mod error;
mod fidelity;
mod mask;
pub mod modality;
mod set;

pub use error::CoreError;
pub use fidelity::Fidelity;
pub use mask::ModalityMask;
pub use modality::Modality;
pub use set::{ModalityDecl, ModalitySet};

/// Result alias of this crate.
pub type Result<T, E = CoreError> = std::result::Result<T, E>;
