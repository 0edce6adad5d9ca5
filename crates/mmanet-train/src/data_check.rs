//! `mmanet data check`: open every split of a config's data set and read every sample.

use std::collections::BTreeMap;

use mmanet_data::Target;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::TrainError;
use crate::data_spec::{DatasetSpec, Split};

/// What one split holds.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitSummary {
    /// The split.
    pub split: Split,
    /// Number of samples listed.
    pub samples: usize,
    /// Samples per class (segmentation: samples, keyed 0).
    pub label_counts: BTreeMap<i64, usize>,
    /// One message per unreadable sample (file and reason).
    pub bad: Vec<String>,
}

/// Reads every sample of every split (without augmentation randomness mattering) and reports
/// counts, label balance and unreadable samples. Fails only when a split cannot be opened at
/// all (missing or malformed list file).
pub fn check_data(spec: &DatasetSpec, seed: u64) -> Result<Vec<SplitSummary>, TrainError> {
    let mut out = Vec::new();
    for split in [Split::Train, Split::Val, Split::Test] {
        let data = spec.open(split, seed)?;
        let mut label_counts = BTreeMap::new();
        let mut bad = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        for i in 0..data.len() {
            match data.get(i, &mut rng) {
                Ok(sample) => {
                    let key = match sample.target {
                        Target::Class(c) => c,
                        _ => 0,
                    };
                    *label_counts.entry(key).or_insert(0) += 1;
                }
                Err(e) => bad.push(format!("sample {i}: {e}")),
            }
        }
        out.push(SplitSummary { split, samples: data.len(), label_counts, bad });
    }
    Ok(out)
}
