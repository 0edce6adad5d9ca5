//! The CASIA-SURF family as data sources: list files ([`SurfSource`]), CeFA's folder layout
//! is in [`crate::cefa`], and the seeded synthetic look-alike ([`SyntheticSurfSource`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{SurfAugment, SurfDataset, surf_modalities, write_synthetic_surf};
use crate::input_spec::{ColorOrder, Decoder, INPUT_SPEC_VERSION, InputModality, InputSpec};
use crate::{DataError, DataSource, Dataset, OpenOptions, Opened, Result, Split, Task};

/// CASIA-SURF list files (`<rgb> <depth> <ir> <label>` per line, paths relative to `root`,
/// label 1 = real), with the reference augmentation at the given sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurfSource {
    /// Data root.
    pub root: PathBuf,
    /// Training list (reference: `train_list.txt`).
    pub train_list: PathBuf,
    /// Validation list (reference: `val_private_list.txt`).
    pub val_list: PathBuf,
    /// Test list (reference: `test_private_list.txt`).
    pub test_list: PathBuf,
    /// Side after the first resize (reference: 144).
    pub resize: usize,
    /// Network input side (reference: 112).
    pub crop: usize,
}

impl DataSource for SurfSource {
    fn name(&self) -> &'static str {
        "casia-surf"
    }

    fn check(&self) -> Result<()> {
        check_sizes(self.resize, self.crop)
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>> {
        Ok(self.open_with(split, seed, &OpenOptions::default())?.data)
    }

    fn open_with(&self, split: Split, _seed: u64, options: &OpenOptions) -> Result<Opened> {
        let list = match split {
            Split::Train => &self.train_list,
            Split::Val => &self.val_list,
            Split::Test => &self.test_list,
        };
        open_list(&self.root, list, split, self.resize, self.crop, options)
    }

    fn has_decoded_cache(&self) -> bool {
        true
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        Ok(surf_input_spec(self.name(), self.crop, ["attack", "real"]))
    }
}

/// A seeded synthetic face-anti-spoofing set in the CASIA-SURF layout (JPEG files; RGB easy,
/// depth medium, IR hard), written under `root` on first use, then read like [`SurfSource`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticSurfSource {
    /// Where the files are (or will be) written.
    pub root: PathBuf,
    /// Training samples (validation and test get a quarter each).
    pub n: usize,
    /// Side of the written JPEGs.
    pub size: usize,
    /// Side after the first resize.
    pub resize: usize,
    /// Network input side.
    pub crop: usize,
}

const SYNTHETIC_LISTS: [&str; 3] =
    ["train_list.txt", "val_private_list.txt", "test_private_list.txt"];

impl DataSource for SyntheticSurfSource {
    fn name(&self) -> &'static str {
        "synthetic-surf"
    }

    fn check(&self) -> Result<()> {
        check_sizes(self.resize, self.crop)?;
        if self.n < 4 || self.size < 8 {
            return Err(DataError::field("n", "need n >= 4 and size >= 8"));
        }
        Ok(())
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        Some(&mut self.root)
    }

    fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>> {
        Ok(self.open_with(split, seed, &OpenOptions::default())?.data)
    }

    fn has_decoded_cache(&self) -> bool {
        true
    }

    fn open_with(&self, split: Split, seed: u64, options: &OpenOptions) -> Result<Opened> {
        let root = &self.root;
        if !SYNTHETIC_LISTS.iter().all(|l| root.join(l).is_file()) {
            tracing::info!(root = %root.display(), n = self.n, size = self.size, "writing the synthetic CASIA-SURF set");
            write_synthetic_surf(root, self.n, seed, self.size)?;
        }
        let list = match split {
            Split::Train => SYNTHETIC_LISTS[0],
            Split::Val => SYNTHETIC_LISTS[1],
            Split::Test => SYNTHETIC_LISTS[2],
        };
        open_list(root, Path::new(list), split, self.resize, self.crop, options)
    }

    fn input_spec(&self, _seed: u64) -> Result<InputSpec> {
        Ok(surf_input_spec(self.name(), self.crop, ["attack", "real"]))
    }
}

/// Checks the augmentation sizes (the crop must fit the rotation canvas).
pub(crate) fn check_sizes(resize: usize, crop: usize) -> Result<()> {
    SurfAugment::sized(true, resize, crop)
        .validate()
        .map_err(|e| DataError::field("crop", e.to_string()))
}

/// The CASIA-SURF test transform as data: every modality read as 3-channel 8-bit BGR (grey
/// replicated), resized to `crop x crop`, `(x - 127.5) / 128`.
pub(crate) fn surf_input_spec(dataset: &str, crop: usize, classes: [&str; 2]) -> InputSpec {
    let set = surf_modalities();
    InputSpec {
        version: INPUT_SPEC_VERSION,
        dataset: dataset.to_string(),
        task: Task::Classification { num_classes: 2 },
        classes: classes.iter().map(|c| c.to_string()).collect(),
        modalities: set
            .modalities()
            .iter()
            .map(|m| InputModality {
                name: m.name().to_string(),
                symbol: m.symbol().to_string(),
                decoder: Decoder::Image {
                    color: ColorOrder::Bgr,
                    size: Some([crop, crop]),
                    mean: [127.5; 3],
                    std: [128.0; 3],
                },
            })
            .collect(),
    }
}

fn open_list(
    root: &Path,
    list: &Path,
    split: Split,
    resize: usize,
    crop: usize,
    options: &OpenOptions,
) -> Result<Opened> {
    // `SurfDataset::open` joins a relative list to the root itself (joining it here too named
    // `surf/surf/train_list.txt` for a relative root).
    let augment = SurfAugment::sized(split == Split::Train, resize, crop);
    let data = SurfDataset::open(root, list)?
        .with_augment(augment)?
        .with_decoded_cache(options.decoded_cache_bytes);
    Ok(Opened { data: Arc::new(data), skipped: Vec::new() })
}
