//! NYUv2 and its synthetic look-alike as data sources.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{
    DEPTH_MEAN, DEPTH_STD, IMAGENET_MEAN, IMAGENET_STD, Nyuv2Augment, Nyuv2Dataset,
    SYNTHETIC_NYUV2_CLASSES, rgbd_modalities, write_synthetic_nyuv2,
};
use crate::input_spec::{ColorOrder, Decoder, INPUT_SPEC_VERSION, InputModality, InputSpec};
use crate::{DataError, DataSource, Dataset, Result, Split, Subset, Task};

/// NYUv2 in the ESANet layout (`train.txt`/`test.txt`, `{split}/rgb`, `depth`,
/// `labels_<C>`). The layout has no validation split: by default validation (mining, model
/// selection) reads the test split, as the reference does; `val_fraction > 0` carves a
/// seeded validation split out of the training images instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nyuv2Source {
    /// Data root.
    pub root: PathBuf,
    /// Number of classes (40 or 13; void excluded).
    pub num_classes: usize,
    /// Training crop `[height, width]` (reference: 480 x 640).
    pub crop: [usize; 2],
    /// Fraction of the training images held out as the validation split (seeded by the run
    /// seed, test transform), in `[0, 1)`; 0 (the default): validate on the test split.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub val_fraction: f64,
}

impl DataSource for Nyuv2Source {
    fn name(&self) -> &'static str {
        "nyuv2"
    }

    fn check(&self) -> Result<()> {
        check_crop(self.crop)?;
        check_val_fraction(self.val_fraction)
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>> {
        let layout = Layout { num_classes: self.num_classes, crop: self.crop };
        open_split(&self.root, split, layout, self.val_fraction, seed)
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        Ok(rgbd_input_spec(self.name(), self.num_classes))
    }

    fn validation_is_test(&self) -> bool {
        self.val_fraction == 0.0
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
    /// Fraction of the training images held out as the validation split, as
    /// [`Nyuv2Source::val_fraction`]; 0 (the default): validate on the test split.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub val_fraction: f64,
}

impl DataSource for SyntheticNyuv2Source {
    fn name(&self) -> &'static str {
        "synthetic-nyuv2"
    }

    fn check(&self) -> Result<()> {
        check_crop(self.crop)?;
        check_val_fraction(self.val_fraction)
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
        let layout = Layout { num_classes: SYNTHETIC_NYUV2_CLASSES, crop: self.crop };
        open_split(root, split, layout, self.val_fraction, seed)
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        Ok(rgbd_input_spec(self.name(), SYNTHETIC_NYUV2_CLASSES))
    }

    fn validation_is_test(&self) -> bool {
        self.val_fraction == 0.0
    }
}

fn is_zero(v: &f64) -> bool {
    *v == 0.0
}

fn check_crop(crop: [usize; 2]) -> Result<()> {
    Nyuv2Augment::train(crop[0], crop[1])
        .validate()
        .map_err(|e| DataError::field("crop", e.to_string()))
}

fn check_val_fraction(f: f64) -> Result<()> {
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::field("val_fraction", format!("must be in [0, 1), got {f}")));
    }
    Ok(())
}

/// What a split of the layout needs besides its root.
#[derive(Clone, Copy)]
struct Layout {
    num_classes: usize,
    crop: [usize; 2],
}

/// One split: the layout's `train` (training transform) or `test` (test transform); with
/// `val_fraction > 0` the training images are split by `seed` into the training split and the
/// validation split (test transform), which share no image.
fn open_split(
    root: &Path,
    split: Split,
    layout: Layout,
    val_fraction: f64,
    seed: u64,
) -> Result<Arc<dyn Dataset>> {
    let train_augment = Nyuv2Augment::train(layout.crop[0], layout.crop[1]);
    if val_fraction > 0.0 && split != Split::Test {
        let augment = if split == Split::Train { train_augment } else { Nyuv2Augment::test() };
        let images =
            Nyuv2Dataset::open(root, "train", layout.num_classes)?.with_augment(augment)?;
        let n = images.len();
        let (rest, held) = Subset::split(Arc::new(images), val_fraction, seed)?;
        if rest.is_empty() || held.is_empty() {
            return Err(DataError::field(
                "val_fraction",
                format!(
                    "{val_fraction} of {n} training images leaves {} for training and {} for \
                     validation: both need at least one",
                    rest.len(),
                    held.len()
                ),
            ));
        }
        return Ok(Arc::new(if split == Split::Train { rest } else { held }));
    }
    let (name, augment) = match split {
        Split::Train => ("train", train_augment),
        Split::Val | Split::Test => ("test", Nyuv2Augment::test()),
    };
    Ok(Arc::new(Nyuv2Dataset::open(root, name, layout.num_classes)?.with_augment(augment)?))
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
