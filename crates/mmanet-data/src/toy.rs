//! [`ToySource`]: seeded Gaussian prototypes per class and modality, instant to make, for tests
//! and smoke runs.

use std::path::PathBuf;
use std::sync::Arc;

use mmanet_core::ModalitySet;
use serde::{Deserialize, Serialize};

use crate::{DataError, DataSource, Dataset, InMemoryDataset, InputSpec, Result, Split, Task};

/// Seeded Gaussian prototypes per class and modality; a modality with more noise is weaker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToySource {
    /// Modalities, e.g. `["rgb", "depth", "ir"]`.
    pub modalities: ModalitySet,
    /// Sample shape per modality, e.g. `[[3, 16, 16], [3, 16, 16], [3, 16, 16]]` for images
    /// or `[[20], [8]]` for feature vectors.
    pub shapes: Vec<Vec<i64>>,
    /// Noise standard deviation per modality (prototype entries are N(0, 1)).
    pub noise: Vec<f32>,
    /// Number of classes.
    pub num_classes: usize,
    /// Samples in train / val / test.
    pub sizes: [usize; 3],
}

impl DataSource for ToySource {
    fn name(&self) -> &'static str {
        "toy"
    }

    fn check(&self) -> Result<()> {
        let m = self.modalities.len();
        if self.shapes.len() != m || self.noise.len() != m {
            return Err(DataError::field(
                "shapes",
                format!("shapes and noise need one entry per modality ({m})"),
            ));
        }
        if self.num_classes < 2 || self.sizes.contains(&0) {
            return Err(DataError::field("sizes", "need >= 2 classes and non-empty splits"));
        }
        Ok(())
    }

    fn root_mut(&mut self) -> Option<&mut PathBuf> {
        None
    }

    fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>> {
        let total = self.sizes.iter().sum();
        let all = InMemoryDataset::synthetic_classification(
            self.modalities.clone(),
            &self.shapes,
            &self.noise,
            self.num_classes,
            total,
            seed,
        )?;
        let [train, val, test] = self.sizes;
        let (start, len) = match split {
            Split::Train => (0, train),
            Split::Val => (train, val),
            Split::Test => (train + val, test),
        };
        let samples = all.samples()[start..start + len].to_vec();
        let task = Task::Classification { num_classes: self.num_classes };
        Ok(Arc::new(InMemoryDataset::new(self.modalities.clone(), task, samples)?))
    }

    fn input_spec(&self, seed: u64) -> Result<InputSpec> {
        let data = self.open(Split::Test, seed)?;
        let classes = InputSpec::numbered_classes(self.num_classes, 0);
        crate::source::numeric_input_spec(self.name(), data.as_ref(), classes, vec![])
    }
}
