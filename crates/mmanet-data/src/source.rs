//! [`DataSource`]: everything the trainer and prediction need from a data set's reader, so
//! neither has any per-data-set code.
//!
//! A reader owns its config type (a serde struct, `deny_unknown_fields`), implements this
//! trait for it, and is registered by one line in `mmanet-train`'s `readers` module, which
//! picks the reader by the config's `kind`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::input_spec::{Decoder, INPUT_SPEC_VERSION, InputModality};
use crate::split::{Standardizer, stratified_split};
use crate::{DataError, Dataset, InMemoryDataset, InputSpec, Result, Sample, Target};

/// The three splits of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training.
    Train,
    /// Validation: model selection and weak-set mining.
    Val,
    /// Final per-combination test.
    Test,
}

/// A configured data set: validation, its splits and what prediction needs.
pub trait DataSource: std::fmt::Debug + Send + Sync {
    /// A short name of the data set for reports (`casia-surf`, `mfeat`, ...).
    fn name(&self) -> &'static str;

    /// Checks the settings once; errors are [`DataError::Field`] naming the field.
    fn check(&self) -> Result<()>;

    /// The data root of a file-based set (`None` for sets made in memory), so relative roots
    /// resolve against the config's folder and `--set data.dataset.root=...` can move it.
    fn root_mut(&mut self) -> Option<&mut PathBuf>;

    /// Opens (or makes, for synthetic sets) one split; `seed` is the run seed.
    fn open(&self, split: Split, seed: u64) -> Result<Arc<dyn Dataset>>;

    /// [`DataSource::open`] with the run's [`OpenOptions`]. With `skip_bad_samples` the lines
    /// of the source's index that cannot be samples (a manifest line with a missing file, an
    /// unknown class, a duplicate id, ...) are left out instead of failing the open, and
    /// listed as `file:line: reason` (all of them, whichever split is opened: which split a
    /// bad line belongs to may be unknown); errors of the index as a whole (its header, an
    /// undeclared column) stay errors. With `decoded_cache_bytes` a reader with an 8-bit image
    /// pipeline keeps decoded images in memory ([`crate::decoded_cache`]). The default opens
    /// normally and lists nothing: readers that check no lines when opening leave unreadable
    /// samples to the loader, which skips and counts them.
    fn open_with(&self, split: Split, seed: u64, _options: &OpenOptions) -> Result<Opened> {
        Ok(Opened { data: self.open(split, seed)?, skipped: Vec::new() })
    }

    /// Whether [`OpenOptions::decoded_cache_bytes`] does anything for this reader (a config
    /// asking for a cache the reader cannot keep is refused).
    fn has_decoded_cache(&self) -> bool {
        false
    }

    /// What prediction needs to turn raw inputs into network inputs: per modality its decoder
    /// and test-time transform as parameters, the class names and the task.
    fn input_spec(&self, seed: u64) -> Result<InputSpec>;

    /// Whether [`Split::Val`] is the test split itself (a layout without a validation split,
    /// read as the reference code reads it). A run should then not pick its weights by
    /// validation score (the trainer warns unless `eval.selection = "last-epoch"`).
    fn validation_is_test(&self) -> bool {
        false
    }
}

/// How a run opens its splits ([`DataSource::open_with`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptions {
    /// Leave bad index lines out (and list them) instead of failing.
    pub skip_bad_samples: bool,
    /// Bytes of decoded images to keep in memory per split (0: none).
    pub decoded_cache_bytes: usize,
}

impl OpenOptions {
    /// What `mmanet data check` opens with: bad index lines listed instead of failing, no
    /// cache (every sample is read once).
    pub const LISTING: OpenOptions = OpenOptions { skip_bad_samples: true, decoded_cache_bytes: 0 };
}

/// A split opened by [`DataSource::open_with`].
pub struct Opened {
    /// The split, without the bad lines.
    pub data: Arc<dyn Dataset>,
    /// The bad lines left out, each `file:line: reason`.
    pub skipped: Vec<String>,
}

/// Resolves a relative `path` against `dir`.
pub fn absolutise(path: &mut PathBuf, dir: &Path) {
    if path.is_relative() {
        *path = dir.join(&*path);
    }
}

/// Carves a seeded, stratified validation split out of `train` and returns `split` (the test
/// split is `test` itself): for sources that ship a train/test split only.
pub fn three_way(
    train: InMemoryDataset,
    test: InMemoryDataset,
    val_fraction: f64,
    seed: u64,
    split: Split,
) -> Result<Arc<dyn Dataset>> {
    if split == Split::Test {
        return Ok(Arc::new(test));
    }
    let labels: Vec<i64> = train
        .samples()
        .iter()
        .map(|s| match s.target {
            Target::Class(c) => c,
            _ => 0,
        })
        .collect();
    let (fit, val) = stratified_split(&labels, val_fraction, seed ^ 0x0005_EED0_F7A1);
    let pick = |idx: &[usize]| -> Vec<Sample> {
        idx.iter().map(|&i| train.samples()[i].clone()).collect()
    };
    let samples = if split == Split::Train { pick(&fit) } else { pick(&val) };
    Ok(Arc::new(InMemoryDataset::new(train.modalities().clone(), train.task(), samples)?))
}

/// Checks a validation fraction in `(0, 0.5)`.
pub fn check_val_fraction(val_fraction: f64) -> Result<()> {
    if val_fraction > 0.0 && val_fraction < 0.5 {
        Ok(())
    } else {
        Err(DataError::field("val_fraction", format!("must be in (0, 0.5), got {val_fraction}")))
    }
}

/// Adds the fetch command to an error reading a registry-packaged set.
pub fn fetch_hint(e: DataError, name: &str) -> DataError {
    DataError::field("root", format!("{e} (fetch the data first: `cargo xtask data fetch {name}`)"))
}

/// The input spec of an in-memory set of numeric modalities, from its first sample: a padded
/// sequence becomes a [`Decoder::Sequence`], anything else a [`Decoder::Vector`] of the
/// sample's shape; `standardize[m]` are modality `m`'s training statistics, if any.
pub fn numeric_input_spec(
    dataset: &str,
    data: &dyn Dataset,
    classes: Vec<String>,
    standardize: Vec<Option<Standardizer>>,
) -> Result<InputSpec> {
    let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
    let first = data.get(0, &mut rng)?;
    let set = data.modalities();
    let modalities = first
        .inputs
        .iter()
        .zip(set.modalities())
        .zip(standardize.into_iter().chain(std::iter::repeat(None)))
        .map(|((x, m), standardize)| InputModality {
            name: m.name().to_string(),
            symbol: m.symbol().to_string(),
            decoder: match (x.length, x.shape.as_slice()) {
                (Some(_), [t, f]) => {
                    Decoder::Sequence { max_len: *t as usize, features: *f as usize, standardize }
                }
                _ => Decoder::Vector { shape: x.shape.clone(), standardize },
            },
        })
        .collect();
    Ok(InputSpec {
        version: INPUT_SPEC_VERSION,
        dataset: dataset.to_string(),
        task: data.task(),
        classes,
        modalities,
    })
}
