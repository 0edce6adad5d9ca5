//! NYUv2 and its synthetic look-alike as data sources.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    DEPTH_MEAN, DEPTH_STD, IMAGENET_MEAN, IMAGENET_STD, Nyuv2Augment, Nyuv2Dataset,
    SYNTHETIC_NYUV2_CLASSES, rgbd_modalities, write_synthetic_nyuv2,
};
use crate::input_spec::{ColorOrder, Decoder, INPUT_SPEC_VERSION, InputModality, InputSpec};
use crate::{DataError, DataSource, Dataset, Result, Split, Task};

/// NYUv2 in the ESANet layout (`train.txt`/`test.txt`, `{split}/rgb`, `depth`,
/// `labels_<C>`); validation (mining, model selection) uses the test split, as the reference
/// does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nyuv2Source {
    /// Data root.
    pub root: PathBuf,
    /// Number of classes (40 or 13; void excluded).
    pub num_classes: usize,
    /// Training crop `[height, width]` (reference: 480 x 640).
    pub crop: [usize; 2],
}

impl DataSource for Nyuv2Source {
    fn name(&self) -> &'static str {
        "nyuv2"
    }

    fn check(&self) -> Result<()> {
        check_crop(self.crop)
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: Split, _seed: u64) -> Result<Arc<dyn Dataset>> {
        open_split(&self.root, split, self.num_classes, self.crop)
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        Ok(rgbd_input_spec(self.name(), self.num_classes))
    }
}

/// A seeded synthetic RGB-D segmentation set in the NYUv2 layout (some classes separable only
/// by colour, some only by depth), written under `root` on first use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticNyuv2Source {
    /// Where the files are (or will be) written.
    pub root: PathBuf,
    /// Training images (the test split gets a quarter).
    pub n: usize,
    /// Image `[height, width]`.
    pub size: [usize; 2],
    /// Training crop `[height, width]`.
    pub crop: [usize; 2],
}

impl DataSource for SyntheticNyuv2Source {
    fn name(&self) -> &'static str {
        "synthetic-nyuv2"
    }

    fn check(&self) -> Result<()> {
        check_crop(self.crop)
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>> {
        let root = &self.root;
        if !(root.join("train.txt").is_file() && root.join("test.txt").is_file()) {
            tracing::info!(root = %root.display(), n = self.n, "writing the synthetic NYUv2 set");
            write_synthetic_nyuv2(root, self.n, seed, self.size[0], self.size[1])?;
        }
        open_split(root, split, SYNTHETIC_NYUV2_CLASSES, self.crop)
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        Ok(rgbd_input_spec(self.name(), SYNTHETIC_NYUV2_CLASSES))
    }
}

fn check_crop(crop: [usize; 2]) -> Result<()> {
    Nyuv2Augment::train(crop[0], crop[1])
        .validate()
        .map_err(|e| DataError::field("crop", e.to_string()))
}

fn open_split(
    root: &Path,
    split: Split,
    num_classes: usize,
    crop: [usize; 2],
) -> Result<Arc<dyn Dataset>> {
    let (name, augment) = match split {
        Split::Train => ("train", Nyuv2Augment::train(crop[0], crop[1])),
        Split::Val | Split::Test => ("test", Nyuv2Augment::test()),
    };
    Ok(Arc::new(Nyuv2Dataset::open(root, name, num_classes)?.with_augment(augment)?))
}

/// The NYUv2 test transform as data: RGB with ImageNet statistics, depth (uint16 PNG, mm)
/// with the refined-depth mean and std, both at the input's size.
fn rgbd_input_spec(dataset: &str, num_classes: usize) -> InputSpec {
    let set = rgbd_modalities();
    let m = |k: usize, decoder: Decoder| InputModality {
        name: set.modalities()[k].name().to_string(),
        symbol: set.modalities()[k].symbol().to_string(),
        decoder,
    };
    InputSpec {
        version: INPUT_SPEC_VERSION,
        dataset: dataset.to_string(),
        task: Task::Segmentation { num_classes },
        classes: InputSpec::numbered_classes(num_classes, 1),
        modalities: vec![
            m(0, imagenet_rgb(None)),
            m(1, Decoder::GreyPng { size: None, mean: DEPTH_MEAN, std: DEPTH_STD }),
        ],
    }
}

/// An RGB image normalised with ImageNet's statistics (on the 0-255 scale).
pub(crate) fn imagenet_rgb(size: Option<[usize; 2]>) -> Decoder {
    Decoder::Image {
        color: ColorOrder::Rgb,
        size,
        mean: IMAGENET_MEAN.map(|v| v * 255.0),
        std: IMAGENET_STD.map(|v| v * 255.0),
    }
}
