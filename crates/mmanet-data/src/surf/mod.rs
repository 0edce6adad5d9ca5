//! CASIA-SURF: the list-file reader, its augmentation and a synthetic look-alike.
//!
//! A list file (docs/method.md §8.1) holds one sample per line, space separated:
//! `<rgb> <depth> <ir> <label>`, paths relative to the data root, label 1 = real (live),
//! 0 = spoof. Images are read as 3-channel 8-bit **BGR**, like `cv2.imread` (grey depth and IR
//! are replicated), and the colour order is kept as the reference keeps it.

mod augment;
mod reader;
mod source;
mod synthetic;

pub use augment::SurfAugment;
pub(crate) use reader::{ImageOut, read_augment_into, read_augment_into_with};
pub use reader::{SurfDataset, SurfEntry, parse_surf_list};
pub use source::{SurfSource, SyntheticSurfSource};
pub(crate) use source::{check_sizes, surf_input_spec};
pub use synthetic::{SyntheticSurf, write_synthetic_surf};

use mmanet_core::ModalitySet;

/// The modalities of CASIA-SURF and CeFA, in the reference's fusion order: `rgb` (`R`),
/// `depth` (`D`), `ir` (`I`).
pub fn surf_modalities() -> ModalitySet {
    ModalitySet::from_pairs(&[("rgb", "R"), ("depth", "D"), ("ir", "I")]).expect("valid set")
}
