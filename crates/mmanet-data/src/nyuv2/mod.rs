//! NYUv2 in the ESANet layout (docs/method.md §8.3), its augmentation and a synthetic
//! RGB-D segmentation set in the same layout.
//!
//! ```text
//! <root>/train.txt, <root>/test.txt          one id per line (e.g. 0003)
//! <root>/<split>/rgb/<id>.png                8-bit RGB
//! <root>/<split>/depth/<id>.png              uint16 depth in mm
//! <root>/<split>/labels_<C>/<id>.png         uint8, 0 = void, 1..=C
//! ```

mod augment;
mod reader;
mod source;
mod synthetic;

pub(crate) use augment::imagenet_chw;
pub use augment::{
    DEPTH_MEAN, DEPTH_STD, IMAGENET_MEAN, IMAGENET_STD, Nyuv2Augment, SegmentationArrays,
};
pub use reader::Nyuv2Dataset;
pub(crate) use reader::check_segmentation_files;
pub(crate) use source::imagenet_rgb;
pub use source::{Nyuv2Source, SyntheticNyuv2Source};
pub use synthetic::{SYNTHETIC_NYUV2_CLASSES, SyntheticNyuv2, write_synthetic_nyuv2};

use mmanet_core::ModalitySet;

/// The modalities of the RGB-D segmentation sets (NYUv2, Cityscapes): `rgb` (`R`), `depth`
/// (`D`), in ESANet's order.
pub fn rgbd_modalities() -> ModalitySet {
    ModalitySet::from_pairs(&[("rgb", "R"), ("depth", "D")]).expect("valid set")
}
