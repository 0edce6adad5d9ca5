//! [`DataConfig`]: which data set a run reads, how it is split and loaded.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_data::cityscapes::{CityscapesDataset, CityscapesDepth, cityscapes_train_augment};
use mmanet_data::nyuv2::{
    Nyuv2Augment, Nyuv2Dataset, SYNTHETIC_NYUV2_CLASSES, write_synthetic_nyuv2,
};
use mmanet_data::surf::{SurfAugment, SurfDataset, write_synthetic_surf};
use mmanet_data::{Dataset, InMemoryDataset, LoaderConfig, MaskPolicy, Task};
use serde::{Deserialize, Serialize};

use crate::TrainError;
use crate::registry_data;

/// The three splits of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    /// Training.
    Train,
    /// Validation: model selection and weak-set mining.
    Val,
    /// Final per-combination test.
    Test,
}

/// A data set and its splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DatasetSpec {
    /// Seeded Gaussian prototypes per class and modality; a modality with more noise is
    /// weaker. Instant to make: for tests and smoke runs.
    Toy {
        /// Modalities, e.g. `["rgb", "depth", "ir"]`.
        modalities: ModalitySet,
        /// Sample shape per modality, e.g. `[[3, 16, 16], [3, 16, 16], [3, 16, 16]]` for
        /// images or `[[20], [8]]` for feature vectors.
        shapes: Vec<Vec<i64>>,
        /// Noise standard deviation per modality (prototype entries are N(0, 1)).
        noise: Vec<f32>,
        /// Number of classes.
        num_classes: usize,
        /// Samples in train / val / test.
        sizes: [usize; 3],
    },
    /// CASIA-SURF list files (`<rgb> <depth> <ir> <label>` per line, paths relative to
    /// `root`, label 1 = real), with the reference augmentation at the given sizes.
    Surf {
        /// Data root.
        root: PathBuf,
        /// Training list (reference: `train_list.txt`).
        train_list: PathBuf,
        /// Validation list (reference: `val_private_list.txt`).
        val_list: PathBuf,
        /// Test list (reference: `test_private_list.txt`).
        test_list: PathBuf,
        /// Side after the first resize (reference: 144).
        resize: usize,
        /// Network input side (reference: 112).
        crop: usize,
    },
    /// CASIA-SURF CeFA (race subset), protocol `race_prot_rdi_4@5`: train = EA IDs 0-199,
    /// val = the 'dev' split (EA 200-299), test = AF 300-499; label 0 = real.
    Cefa {
        /// `<root>/<Race>/<Race>-<ID>/<video>/{profile,depth,ir}/<frames>`.
        root: PathBuf,
        /// Side after the first resize (reference: 144).
        resize: usize,
        /// Network input side (reference: 112).
        crop: usize,
    },
    /// A seeded synthetic face-anti-spoofing set in the CASIA-SURF layout (JPEG files; RGB
    /// easy, depth medium, IR hard), written under `root` on first use, then read like
    /// [`DatasetSpec::Surf`].
    SyntheticSurf {
        /// Where the files are (or will be) written.
        root: PathBuf,
        /// Training samples (validation and test get a quarter each).
        n: usize,
        /// Side of the written JPEGs.
        size: usize,
        /// Side after the first resize.
        resize: usize,
        /// Network input side.
        crop: usize,
    },
    /// NYUv2 in the ESANet layout (`train.txt`/`test.txt`, `{split}/rgb`, `depth`,
    /// `labels_<C>`); validation (mining, model selection) uses the test split, as the
    /// reference does.
    Nyuv2 {
        /// Data root.
        root: PathBuf,
        /// Number of classes (40 or 13; void excluded).
        num_classes: usize,
        /// Training crop `[height, width]` (reference: 480 x 640).
        crop: [usize; 2],
    },
    /// Cityscapes in the ESANet "cityscapes-with-depth" layout (`{split}_rgb.txt`,
    /// `{split}_depth_raw.txt` or `{split}_disparity_raw.txt`, `{split}_labels_<C>.txt`,
    /// `{split}/{rgb,depth_raw,disparity_raw,labels_<C>}/<city>/<file>`); splits `train`
    /// and `valid`. Validation (mining, model selection) and the final test both read
    /// `valid`, as the reference does (Cityscapes' test labels are not public).
    Cityscapes {
        /// Data root.
        root: PathBuf,
        /// Number of classes (19, void excluded; 33 for the full label set).
        num_classes: usize,
        /// `depth` (float16 metres, `depth_raw/*.npy`, MMANet's `--raw_depth`) or
        /// `disparity` (uint16 `disparity_raw/*.png`).
        #[serde(default)]
        depth: CityscapesDepth,
        /// Training crop `[height, width]` (reference: 512 x 1024) after a random rescale by
        /// `U[0.5, 2.0]`.
        crop: [usize; 2],
        /// Evaluation resize `[height, width]` (RGB bilinear, depth and labels nearest);
        /// absent: the native 1024 x 2048.
        #[serde(default)]
        eval_size: Option<[usize; 2]>,
    },
    /// A seeded synthetic RGB-D segmentation set in the NYUv2 layout (some classes separable
    /// only by colour, some only by depth), written under `root` on first use.
    SyntheticNyuv2 {
        /// Where the files are (or will be) written.
        root: PathBuf,
        /// Training images (the test split gets a quarter).
        n: usize,
        /// Image `[height, width]`.
        size: [usize; 2],
        /// Training crop `[height, width]`.
        crop: [usize; 2],
    },
    /// UCI Multiple Features (`cargo xtask data fetch mfeat`): 2,000 digits, 10 classes, any
    /// subset of the six views; seeded stratified 80/20 train/test, validation from the 80.
    Mfeat {
        /// Folder holding `mfeat-*.csv`.
        root: PathBuf,
        /// Views, e.g. `["pixel", "fourier", "karhunen_loeve"]` (empty: all six).
        #[serde(default)]
        views: Vec<String>,
        /// Give the Pix view as a `[1, 16, 15]` image (for a small CNN branch).
        #[serde(default)]
        pixel_image: bool,
        /// Fraction of the training split held out for validation.
        val_fraction: f64,
    },
    /// AV-MNIST-lite (`cargo xtask data fetch avmnist`): MNIST image + spoken-digit MFCCs.
    Avmnist {
        /// Folder holding `mnist/` and `fsdd/`.
        root: PathBuf,
        /// Frames per padded MFCC sequence (true lengths are kept).
        max_frames: usize,
        /// Fraction of the training split held out for validation.
        val_fraction: f64,
    },
    /// BasicMotions (`cargo xtask data fetch basicmotions`): accelerometer + gyroscope
    /// sequences `[100, 3]`, the official 40/40 split, validation from the training part.
    BasicMotions {
        /// Folder holding `BasicMotions_{TRAIN,TEST}.ts`.
        root: PathBuf,
        /// Fraction of the training split held out for validation.
        val_fraction: f64,
    },
}

impl DatasetSpec {
    /// A short name of the data set (`mfeat`, `casia-surf`, ...), for reports.
    pub fn name(&self) -> &'static str {
        match self {
            DatasetSpec::Toy { .. } => "toy",
            DatasetSpec::Surf { .. } => "casia-surf",
            DatasetSpec::Cefa { .. } => "cefa",
            DatasetSpec::SyntheticSurf { .. } => "synthetic-surf",
            DatasetSpec::Nyuv2 { .. } => "nyuv2",
            DatasetSpec::Cityscapes { .. } => "cityscapes",
            DatasetSpec::SyntheticNyuv2 { .. } => "synthetic-nyuv2",
            DatasetSpec::Mfeat { .. } => "mfeat",
            DatasetSpec::Avmnist { .. } => "avmnist-lite",
            DatasetSpec::BasicMotions { .. } => "basicmotions",
        }
    }

    /// The data root of file-based sets (`None` for in-memory sets).
    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        match self {
            DatasetSpec::Toy { .. } => None,
            DatasetSpec::Surf { root, .. }
            | DatasetSpec::Cefa { root, .. }
            | DatasetSpec::SyntheticSurf { root, .. }
            | DatasetSpec::Nyuv2 { root, .. }
            | DatasetSpec::Cityscapes { root, .. }
            | DatasetSpec::SyntheticNyuv2 { root, .. }
            | DatasetSpec::Mfeat { root, .. }
            | DatasetSpec::Avmnist { root, .. }
            | DatasetSpec::BasicMotions { root, .. } => Some(root),
        }
    }

    /// Replaces the data root of file-based sets (no effect on in-memory sets).
    pub fn set_root(&mut self, new_root: &Path) {
        if let Some(root) = self.root_mut() {
            *root = new_root.to_path_buf();
        }
    }

    fn resolve_paths(&mut self, dir: &Path) {
        if let Some(root) = self.root_mut() {
            absolutise(root, dir);
        }
    }

    fn check(&self) -> Result<(), TrainError> {
        match self {
            DatasetSpec::Toy { modalities, shapes, noise, num_classes, sizes } => {
                let m = modalities.len();
                if shapes.len() != m || noise.len() != m {
                    return Err(TrainError::config(
                        "data.dataset.shapes",
                        format!("shapes and noise need one entry per modality ({m})"),
                    ));
                }
                if *num_classes < 2 || sizes.contains(&0) {
                    return Err(TrainError::config(
                        "data.dataset",
                        "need >= 2 classes and non-empty splits",
                    ));
                }
                Ok(())
            }
            DatasetSpec::Surf { resize, crop, .. }
            | DatasetSpec::Cefa { resize, crop, .. }
            | DatasetSpec::SyntheticSurf { resize, crop, .. } => {
                SurfAugment::sized(true, *resize, *crop)
                    .validate()
                    .map_err(|e| TrainError::config("data.dataset.crop", e.to_string()))?;
                if let DatasetSpec::SyntheticSurf { n, size, .. } = self {
                    if *n < 4 || *size < 8 {
                        return Err(TrainError::config(
                            "data.dataset.n",
                            "need n >= 4 and size >= 8",
                        ));
                    }
                }
                Ok(())
            }
            DatasetSpec::Nyuv2 { crop, .. } | DatasetSpec::SyntheticNyuv2 { crop, .. } => {
                Nyuv2Augment::train(crop[0], crop[1])
                    .validate()
                    .map_err(|e| TrainError::config("data.dataset.crop", e.to_string()))
            }
            DatasetSpec::Cityscapes { num_classes, crop, eval_size, .. } => {
                if !matches!(num_classes, 19 | 33) {
                    return Err(TrainError::config(
                        "data.dataset.num_classes",
                        format!("Cityscapes has 19 (or 33) classes, got {num_classes}"),
                    ));
                }
                if eval_size.is_some_and(|[h, w]| h == 0 || w == 0) {
                    return Err(TrainError::config("data.dataset.eval_size", "sides must be >= 1"));
                }
                cityscapes_train_augment(crop[0], crop[1])
                    .validate()
                    .map_err(|e| TrainError::config("data.dataset.crop", e.to_string()))
            }
            DatasetSpec::Mfeat { val_fraction, .. }
            | DatasetSpec::Avmnist { val_fraction, .. }
            | DatasetSpec::BasicMotions { val_fraction, .. } => {
                if !(*val_fraction > 0.0 && *val_fraction < 0.5) {
                    return Err(TrainError::config(
                        "data.dataset.val_fraction",
                        format!("must be in (0, 0.5), got {val_fraction}"),
                    ));
                }
                if let DatasetSpec::Avmnist { max_frames: 0, .. } = self {
                    return Err(TrainError::config("data.dataset.max_frames", "must be >= 1"));
                }
                Ok(())
            }
        }
    }

    /// Opens (or makes) one split.
    pub fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>, TrainError> {
        match self {
            DatasetSpec::Toy { modalities, shapes, noise, num_classes, sizes } => {
                let total = sizes.iter().sum();
                let all = InMemoryDataset::synthetic_classification(
                    modalities.clone(),
                    shapes,
                    noise,
                    *num_classes,
                    total,
                    seed,
                )
                .map_err(data_err)?;
                let (start, len) = match split {
                    Split::Train => (0, sizes[0]),
                    Split::Val => (sizes[0], sizes[1]),
                    Split::Test => (sizes[0] + sizes[1], sizes[2]),
                };
                let samples = all.samples()[start..start + len].to_vec();
                let task = Task::Classification { num_classes: *num_classes };
                Ok(Arc::new(
                    InMemoryDataset::new(modalities.clone(), task, samples).map_err(data_err)?,
                ))
            }
            DatasetSpec::Surf { root, train_list, val_list, test_list, resize, crop } => {
                let list = match split {
                    Split::Train => train_list,
                    Split::Val => val_list,
                    Split::Test => test_list,
                };
                open_surf(root, list, split, *resize, *crop)
            }
            DatasetSpec::Cefa { root, resize, crop } => {
                use mmanet_data::cefa::{CefaDataset, CefaSplit};
                let s = match split {
                    Split::Train => CefaSplit::Train,
                    Split::Val => CefaSplit::Dev,
                    Split::Test => CefaSplit::Test,
                };
                let augment = SurfAugment::sized(split == Split::Train, *resize, *crop);
                Ok(Arc::new(CefaDataset::open(root, s)?.with_augment(augment)?))
            }
            DatasetSpec::SyntheticSurf { root, n, size, resize, crop } => {
                let lists = ["train_list.txt", "val_private_list.txt", "test_private_list.txt"];
                if !lists.iter().all(|l| root.join(l).is_file()) {
                    tracing::info!(root = %root.display(), n, size, "writing the synthetic CASIA-SURF set");
                    write_synthetic_surf(root, *n, seed, *size)?;
                }
                let list = match split {
                    Split::Train => lists[0],
                    Split::Val => lists[1],
                    Split::Test => lists[2],
                };
                open_surf(root, Path::new(list), split, *resize, *crop)
            }
            DatasetSpec::Nyuv2 { root, num_classes, crop } => {
                open_nyuv2(root, split, *num_classes, *crop)
            }
            DatasetSpec::Cityscapes { root, num_classes, depth, crop, eval_size } => {
                let data = CityscapesDataset::open(
                    root,
                    if split == Split::Train { "train" } else { "valid" },
                    *num_classes,
                    *depth,
                )?;
                Ok(Arc::new(match split {
                    Split::Train => {
                        data.with_augment(cityscapes_train_augment(crop[0], crop[1]))?
                    }
                    Split::Val | Split::Test => data.with_eval_size(*eval_size)?,
                }))
            }
            DatasetSpec::SyntheticNyuv2 { root, n, size, crop } => {
                if !(root.join("train.txt").is_file() && root.join("test.txt").is_file()) {
                    tracing::info!(root = %root.display(), n, "writing the synthetic NYUv2 set");
                    write_synthetic_nyuv2(root, *n, seed, size[0], size[1])?;
                }
                open_nyuv2(root, split, SYNTHETIC_NYUV2_CLASSES, *crop)
            }
            DatasetSpec::Mfeat { root, views, pixel_image, val_fraction } => {
                registry_data::open_mfeat(root, views, *pixel_image, *val_fraction, seed, split)
            }
            DatasetSpec::Avmnist { root, max_frames, val_fraction } => {
                registry_data::open_avmnist(root, *max_frames, *val_fraction, seed, split)
            }
            DatasetSpec::BasicMotions { root, val_fraction } => {
                registry_data::open_basicmotions(root, *val_fraction, seed, split)
            }
        }
    }
}

fn open_nyuv2(
    root: &Path,
    split: Split,
    num_classes: usize,
    crop: [usize; 2],
) -> Result<Arc<dyn Dataset>, TrainError> {
    let (name, augment) = match split {
        Split::Train => ("train", Nyuv2Augment::train(crop[0], crop[1])),
        Split::Val | Split::Test => ("test", Nyuv2Augment::test()),
    };
    Ok(Arc::new(Nyuv2Dataset::open(root, name, num_classes)?.with_augment(augment)?))
}

/// Data sets and loading, as written in a config's `[data]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// The data set.
    pub dataset: DatasetSpec,
    /// Training batch size (the reference drops the last incomplete batch).
    pub batch_size: usize,
    /// Decoding threads of the loader.
    pub threads: usize,
    /// Batches decoded ahead.
    pub prefetch: usize,
    /// Combinations drawn per training sample of the student (empty: all `2^M - 1`). The
    /// teacher stage always trains on the complete combination unless this is set.
    #[serde(default)]
    pub train_combos: Vec<String>,
    /// Skip (and count) unreadable samples instead of failing.
    #[serde(default)]
    pub skip_bad_samples: bool,
    /// Segmentation class weighting of the cross-entropy.
    #[serde(default)]
    pub class_weighting: crate::segmentation::ClassWeighting,
}

impl DataConfig {
    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        self.dataset.resolve_paths(dir);
    }

    pub(crate) fn check(&self) -> Result<(), TrainError> {
        if self.batch_size == 0 {
            return Err(TrainError::config("data.batch_size", "must be at least 1"));
        }
        if self.threads == 0 {
            return Err(TrainError::config("data.threads", "must be at least 1"));
        }
        self.dataset.check()
    }

    /// The training loader config.
    pub fn train_loader(&self, seed: u64) -> LoaderConfig {
        LoaderConfig {
            threads: self.threads,
            prefetch: self.prefetch.max(1),
            skip_bad_samples: self.skip_bad_samples,
            ..LoaderConfig::train(self.batch_size, seed)
        }
    }

    /// An evaluation loader config (no shuffle, keep the last batch).
    pub fn eval_loader(&self, batch_size: usize) -> LoaderConfig {
        LoaderConfig {
            threads: self.threads,
            prefetch: self.prefetch.max(1),
            skip_bad_samples: self.skip_bad_samples,
            ..LoaderConfig::eval(batch_size)
        }
    }

    /// The training mask policy for `set`: the configured combinations (`combos`, parsed
    /// from `train_combos`), or the default ones.
    pub fn train_policy(
        &self,
        set: &ModalitySet,
        combos: &[ModalityMask],
        teacher: bool,
    ) -> MaskPolicy {
        if !combos.is_empty() {
            MaskPolicy::Uniform(combos.to_vec())
        } else if teacher {
            MaskPolicy::full(set)
        } else {
            MaskPolicy::uniform_all(set)
        }
    }
}

fn open_surf(
    root: &Path,
    list: &Path,
    split: Split,
    resize: usize,
    crop: usize,
) -> Result<Arc<dyn Dataset>, TrainError> {
    let list = if list.is_relative() { root.join(list) } else { list.to_path_buf() };
    let augment = SurfAugment::sized(split == Split::Train, resize, crop);
    Ok(Arc::new(SurfDataset::open(root, &list)?.with_augment(augment)?))
}

fn data_err(e: mmanet_data::DataError) -> TrainError {
    TrainError::Data(e)
}

fn absolutise(p: &mut PathBuf, dir: &Path) {
    if p.is_relative() {
        *p = dir.join(&*p);
    }
}
