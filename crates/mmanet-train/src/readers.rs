//! The data-set readers a config can name: the one place the train crate picks a reader by the
//! `kind` of `[data.dataset]`.
//!
//! Each reader lives in `mmanet-data` with its config type, validation, splits and input spec
//! (it implements [`DataSource`]); registering it here is one line. Nothing else in this crate
//! knows about a particular data set.

use std::path::Path;
use std::sync::Arc;

use mmanet_data::cefa::CefaSource;
use mmanet_data::cityscapes::CityscapesSource;
use mmanet_data::mfeat::MfeatSource;
use mmanet_data::nyuv2::{Nyuv2Source, SyntheticNyuv2Source};
use mmanet_data::surf::{SurfSource, SyntheticSurfSource};
use mmanet_data::toy::ToySource;
use mmanet_data::{DataSource, Dataset, InputSpec, Split};
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
        Ok(self.source().open(split, seed)?)
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
