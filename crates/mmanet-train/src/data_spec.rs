//! [`DataConfig`]: which data set a run reads, how it is split and loaded.

use std::path::Path;

use mmanet_core::{ModalityMask, ModalitySet};
pub use mmanet_data::Split;
use std::sync::Arc;

use mmanet_data::missing::{MissingConfig, WithMissing};
use mmanet_data::{Dataset, LoaderConfig, MaskPolicy, OpenOptions, Opened};
use serde::{Deserialize, Serialize};

use crate::TrainError;
pub use crate::readers::DatasetSpec;

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
    /// Skip (and count) bad samples instead of failing: index lines that cannot be samples
    /// (a manifest's missing files, unknown classes, duplicate ids, ...; logged with file and
    /// line when the split is opened) and samples that do not decode (counted per epoch).
    #[serde(default)]
    pub skip_bad_samples: bool,
    /// Keep each split's decoded, first-resized images (8-bit planes) in memory, up to this
    /// many MiB per split (0: off): later epochs run only the random part of the transform,
    /// with the same values. For CASIA-SURF, the synthetic SURF set and manifest image
    /// modalities; other readers refuse it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub decoded_cache_mb: usize,
    /// Segmentation class weighting of the cross-entropy.
    #[serde(default)]
    pub class_weighting: crate::objective::segmentation::ClassWeighting,
    /// Simulated missingness (`{ rate = 0.3, seed = 1 }`): that fraction of the samples of
    /// each configured split loses a uniformly drawn non-empty proper subset of its
    /// modalities, fixed per sample (saved in the run folder as `missing.json`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missing: Option<MissingConfig>,
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
        if let Some(m) = &self.missing {
            m.check()?;
        }
        if self.decoded_cache_mb > 0 && !self.dataset.source().has_decoded_cache() {
            return Err(TrainError::config(
                "data.decoded_cache_mb",
                format!(
                    "the {} reader has no decoded-image cache (CASIA-SURF, synthetic-surf and \
                     manifest image modalities do)",
                    self.dataset.name()
                ),
            ));
        }
        self.dataset.check()
    }

    /// How the run opens its splits: `skip_bad_samples` and `decoded_cache_mb`.
    pub fn options(&self) -> OpenOptions {
        OpenOptions {
            skip_bad_samples: self.skip_bad_samples,
            decoded_cache_bytes: self.decoded_cache_mb << 20,
        }
    }

    /// Opens one split of the data set as the config says ([`DataConfig::options`]), with
    /// the configured simulated missingness.
    pub fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>, TrainError> {
        Ok(self.open_with(split, seed, &self.options())?.data)
    }

    /// Opens one split leaving out (and listing, as `file:line: reason`) the index lines
    /// that cannot be samples, whatever `skip_bad_samples` says (`mmanet data check`).
    pub fn open_skipping(&self, split: Split, seed: u64) -> Result<Opened, TrainError> {
        self.open_with(split, seed, &OpenOptions::LISTING)
    }

    fn open_with(
        &self,
        split: Split,
        seed: u64,
        options: &OpenOptions,
    ) -> Result<Opened, TrainError> {
        let Opened { data, skipped } = self.dataset.open_with(split, seed, options)?;
        Ok(Opened { data: self.with_missing(data, split)?, skipped })
    }

    fn with_missing(
        &self,
        data: Arc<dyn Dataset>,
        split: Split,
    ) -> Result<Arc<dyn Dataset>, TrainError> {
        match &self.missing {
            Some(m) if m.splits.contains(&split) => Ok(Arc::new(WithMissing::new(data, m, split)?)),
            _ => Ok(data),
        }
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

fn is_zero(v: &usize) -> bool {
    *v == 0
}
