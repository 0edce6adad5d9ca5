//! The data-set readers a config can name: the one place the train crate picks a reader by the
//! `kind` of `[data.dataset]`.
//!
//! Each reader lives in `mmanet-data` with its config type, validation, splits and input spec
//! (it implements [`DataSource`]); registering it here is one line. Nothing else in this crate
//! knows about a particular data set.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mmanet_data::cefa::CefaSource;
use mmanet_data::cityscapes::CityscapesSource;
use mmanet_data::mfeat::MfeatSource;
use mmanet_data::nyuv2::{Nyuv2Source, SyntheticNyuv2Source};
use mmanet_data::surf::{SurfSource, SyntheticSurfSource};
use mmanet_data::toy::ToySource;
use mmanet_data::{DataSource, Dataset, InputSpec, OpenOptions, Opened, Split};
use serde::{Deserialize, Serialize};

use crate::TrainError;

/// Declares [`DatasetSpec`]: one variant per reader, written `Variant(ConfigType) = "kind"`.
macro_rules! readers {
    ($($(#[$doc:meta])* $variant:ident($source:ty) = $kind:literal,)+) => {
        /// A data set as a config's `[data.dataset]` table names it: `kind` picks the reader,
        /// the other fields are that reader's config (unknown fields are errors).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "kind")]
        pub enum DatasetSpec {
            $($(#[$doc])* #[serde(rename = $kind)] $variant($source),)+
        }

        impl DatasetSpec {
            /// Every `kind` a config may name.
            pub const KINDS: &'static [&'static str] = &[$($kind),+];

            /// The reader.
            pub fn source(&self) -> &dyn DataSource {
                match self {
                    $(DatasetSpec::$variant(s) => s,)+
                }
            }

            /// The reader, mutably (to move its data root).
            pub fn source_mut(&mut self) -> &mut dyn DataSource {
                match self {
                    $(DatasetSpec::$variant(s) => s,)+
                }
            }
        }
    };
}

readers! {
    /// Seeded Gaussian prototypes per class and modality (tests and smoke runs).
    Toy(ToySource) = "toy",
    /// CASIA-SURF list files.
    Surf(SurfSource) = "surf",
    /// CASIA-SURF CeFA, race protocol.
    Cefa(CefaSource) = "cefa",
    /// The synthetic CASIA-SURF look-alike.
    SyntheticSurf(SyntheticSurfSource) = "synthetic-surf",
    /// NYUv2 in the ESANet layout.
    Nyuv2(Nyuv2Source) = "nyuv2",
    /// Cityscapes in the ESANet layout.
    Cityscapes(CityscapesSource) = "cityscapes",
    /// The synthetic NYUv2 look-alike.
    SyntheticNyuv2(SyntheticNyuv2Source) = "synthetic-nyuv2",
    /// UCI Multiple Features.
    Mfeat(MfeatSource) = "mfeat",
    /// AV-MNIST-lite.
    Avmnist(mmanet_data::avmnist::AvmnistSource) = "avmnist",
    /// BasicMotions.
    BasicMotions(mmanet_data::basicmotions::BasicMotionsSource) = "basic-motions",
    /// A CSV or JSON Lines manifest of the user's own files, modalities possibly missing.
    Manifest(mmanet_data::manifest::ManifestSource) = "manifest",
}

impl DatasetSpec {
    /// A short name of the data set (`mfeat`, `casia-surf`, ...), for reports.
    pub fn name(&self) -> &'static str {
        self.source().name()
    }

    /// Replaces the data root of file-based sets (no effect on in-memory sets).
    pub fn set_root(&mut self, new_root: &Path) {
        if let Some(root) = self.source_mut().root_mut() {
            *root = new_root.to_path_buf();
        }
    }

    /// The data root of a file-based set (`None` for sets made in memory).
    pub fn root(&self) -> Option<PathBuf> {
        self.clone().source_mut().root_mut().map(|r| r.clone())
    }

    /// Rewrites the data root with `f` (file-based sets only).
    pub(crate) fn map_root(&mut self, f: impl FnOnce(&Path) -> PathBuf) {
        if let Some(root) = self.source_mut().root_mut() {
            *root = f(root);
        }
    }

    /// A missing data root of a set read from files is a config error naming the key (a moved
    /// data folder: `--set data.dataset.root=NEW`); synthetic sets write theirs on first use.
    pub(crate) fn check_root(&self) -> Result<(), TrainError> {
        let generated =
            matches!(self, DatasetSpec::SyntheticSurf(_) | DatasetSpec::SyntheticNyuv2(_));
        // The manifest's "root" is its file.
        let key = if matches!(self, DatasetSpec::Manifest(_)) {
            "data.dataset.path"
        } else {
            "data.dataset.root"
        };
        match self.root() {
            Some(root) if !generated && !root.exists() => Err(TrainError::config(
                key,
                format!(
                    "{} does not exist (data moved? give `--set {key}=NEW_PATH`)",
                    crate::config::absolute(&root).display()
                ),
            )),
            Some(_) | None => Ok(()),
        }
    }

    /// The files that say which samples the set holds: SURF's three lists, the manifest,
    /// NYUv2's and Cityscapes' `*.txt` lists in the root; none for sets made in memory or
    /// read from a folder layout or a fetched archive.
    pub fn list_files(&self) -> Vec<PathBuf> {
        let txt_in = |root: &Path| -> Vec<PathBuf> {
            let mut v: Vec<PathBuf> = std::fs::read_dir(root)
                .map(|d| {
                    d.filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "txt") && p.is_file())
                        .collect()
                })
                .unwrap_or_default();
            v.sort();
            v
        };
        match self {
            DatasetSpec::Surf(s) => {
                [&s.train_list, &s.val_list, &s.test_list].map(|l| s.root.join(l)).to_vec()
            }
            DatasetSpec::SyntheticSurf(s) => txt_in(&s.root),
            DatasetSpec::Manifest(m) => vec![m.path.clone()],
            DatasetSpec::Nyuv2(s) => txt_in(&s.root),
            DatasetSpec::SyntheticNyuv2(s) => txt_in(&s.root),
            DatasetSpec::Cityscapes(s) => txt_in(&s.root),
            DatasetSpec::Toy(_)
            | DatasetSpec::Cefa(_)
            | DatasetSpec::Mfeat(_)
            | DatasetSpec::Avmnist(_)
            | DatasetSpec::BasicMotions(_) => Vec::new(),
        }
    }

    pub(crate) fn resolve_paths(&mut self, dir: &Path) {
        if let Some(root) = self.source_mut().root_mut() {
            mmanet_data::source::absolutise(root, dir);
        }
    }

    pub(crate) fn check(&self) -> Result<(), TrainError> {
        Ok(self.source().check()?)
    }

    /// Opens (or makes) one split.
    pub fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>, TrainError> {
        self.check_root()?;
        Ok(self.source().open(split, seed)?)
    }

    /// Opens one split as `options` say (see [`DataSource::open_with`]).
    pub fn open_with(
        &self,
        split: Split,
        seed: u64,
        options: &OpenOptions,
    ) -> Result<Opened, TrainError> {
        self.check_root()?;
        Ok(self.source().open_with(split, seed, options)?)
    }

    /// Whether the validation split is the test split (see
    /// [`DataSource::validation_is_test`]).
    pub fn validation_is_test(&self) -> bool {
        self.source().validation_is_test()
    }

    /// What prediction needs to read raw inputs for a model trained on this data set.
    pub fn input_spec(&self, seed: u64) -> Result<InputSpec, TrainError> {
        Ok(self.source().input_spec(seed)?)
    }
}
