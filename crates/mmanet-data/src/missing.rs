//! Simulated missingness for any data set, as the incomplete multi-view literature defines it:
//! a fixed fraction of the samples is incomplete, each losing a uniformly drawn non-empty
//! proper subset of its modalities (so at least one remains).

use std::sync::Arc;

use mmanet_core::{ModalityMask, ModalitySet};
use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::seeding::{Stream, derive_rng};
use crate::{DataError, Dataset, Result, Sample, Split, Target, Task};

/// `data.missing = { rate = 0.3, seed = 1 }`: which samples lack which modalities.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MissingConfig {
    /// Fraction of the samples of each split made incomplete, in `[0, 1]`.
    pub rate: f64,
    /// Seed of the choice (independent of the run seed, so runs can share one pattern).
    pub seed: u64,
    /// The splits it applies to (default: all three).
    #[serde(default = "all_splits")]
    pub splits: Vec<Split>,
}

fn all_splits() -> Vec<Split> {
    vec![Split::Train, Split::Val, Split::Test]
}

impl MissingConfig {
    /// Checks the rate.
    pub fn check(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(DataError::Config(format!(
                "data.missing.rate: must be in [0, 1], got {}",
                self.rate
            )));
        }
        Ok(())
    }

    /// The availability of each of `len` samples of `split` over `set`: exactly
    /// `round(rate * len)` samples (a seeded choice) get a uniformly drawn non-empty proper
    /// subset of the modalities, the others all of them.
    pub fn availability(
        &self,
        set: &ModalitySet,
        split: Split,
        len: usize,
    ) -> Result<Vec<ModalityMask>> {
        self.check()?;
        let full = set.full();
        let mut out = vec![full; len];
        if !self.splits.contains(&split) || self.rate == 0.0 {
            return Ok(out);
        }
        let m = set.len();
        if m < 2 {
            return Err(DataError::Config(
                "data.missing: a task with one modality cannot lose one".into(),
            ));
        }
        let code = match split {
            Split::Train => 0,
            Split::Val => 1,
            Split::Test => 2,
        };
        let mut order: Vec<usize> = (0..len).collect();
        order.shuffle(&mut derive_rng(self.seed, code, u64::MAX, Stream::Generate));
        let k = ((len as f64) * self.rate).round() as usize;
        // Non-empty proper subsets: bit patterns 1 ..= 2^M - 2 (M <= 32, so u64 holds them).
        let proper = (1u64 << m) - 2;
        for &i in &order[..k.min(len)] {
            let mut rng: ChaCha8Rng = derive_rng(self.seed, code, i as u64, Stream::Generate);
            let bits = rng.random_range(1..=proper) as u32;
            out[i] = ModalityMask::from_bits(bits).expect("non-empty");
        }
        Ok(out)
    }
}

/// A data set whose samples lack the modalities [`MissingConfig`] chose: their inputs are
/// zero placeholders and [`Dataset::availability`] says what each sample has.
pub struct WithMissing {
    inner: Arc<dyn Dataset>,
    available: Vec<ModalityMask>,
}

impl std::fmt::Debug for WithMissing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let incomplete = self.available.iter().filter(|a| **a != self.full()).count();
        f.debug_struct("WithMissing")
            .field("len", &self.len())
            .field("incomplete", &incomplete)
            .finish()
    }
}

impl WithMissing {
    /// `inner` with the availability `cfg` gives its samples in `split` (what `inner` itself
    /// lacks stays missing too).
    pub fn new(inner: Arc<dyn Dataset>, cfg: &MissingConfig, split: Split) -> Result<Self> {
        let simulated = cfg.availability(inner.modalities(), split, inner.len())?;
        let available = simulated
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.intersect(inner.availability(i)).unwrap_or(a))
            .collect();
        Ok(WithMissing { inner, available })
    }

    fn full(&self) -> ModalityMask {
        self.inner.modalities().full()
    }

    /// Per sample, what it has.
    pub fn availabilities(&self) -> &[ModalityMask] {
        &self.available
    }
}

impl Dataset for WithMissing {
    fn len(&self) -> usize {
        self.inner.len()
    }

    fn modalities(&self) -> &ModalitySet {
        self.inner.modalities()
    }

    fn task(&self) -> Task {
        self.inner.task()
    }

    fn decoded_cache_stats(&self) -> Option<crate::decoded_cache::CacheStats> {
        self.inner.decoded_cache_stats()
    }

    fn availability(&self, index: usize) -> ModalityMask {
        self.available.get(index).copied().unwrap_or_else(|| self.full())
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let mut s = self.inner.get(index, rng)?;
        let a = self.availability(index);
        for (m, x) in s.inputs.iter_mut().enumerate() {
            if !a.contains(m) {
                x.data.fill(0.0);
            }
        }
        Ok(s)
    }

    fn fixed_shapes(&self) -> Option<Vec<Vec<i64>>> {
        self.inner.fixed_shapes()
    }

    fn get_into(
        &self,
        index: usize,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Target> {
        let t = self.inner.get_into(index, rng, outs)?;
        let a = self.availability(index);
        for (m, o) in outs.iter_mut().enumerate() {
            if !a.contains(m) {
                o.fill(0.0);
            }
        }
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryDataset;
    use rand::SeedableRng;

    fn toy(n: usize) -> Arc<dyn Dataset> {
        let set = ModalitySet::from_names(["a", "b", "c"]).unwrap();
        Arc::new(
            InMemoryDataset::synthetic_classification(
                set,
                &[vec![2], vec![3], vec![1]],
                &[0.1; 3],
                2,
                n,
                0,
            )
            .unwrap(),
        )
    }

    #[test]
    fn the_rate_makes_that_fraction_incomplete_each_keeping_one_modality() {
        let cfg = MissingConfig { rate: 0.3, seed: 1, splits: all_splits() };
        let data = WithMissing::new(toy(100), &cfg, Split::Train).unwrap();
        let full = data.modalities().full();
        let incomplete: Vec<ModalityMask> =
            data.availabilities().iter().copied().filter(|a| *a != full).collect();
        assert_eq!(incomplete.len(), 30);
        // Every non-empty proper subset of 3 modalities (6 of them) is drawn.
        let mut kinds = incomplete.clone();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 6, "{kinds:?}");
        // Fixed per sample: the same config gives the same pattern; another seed another.
        let again = WithMissing::new(toy(100), &cfg, Split::Train).unwrap();
        assert_eq!(again.availabilities(), data.availabilities());
        let other = MissingConfig { seed: 2, ..cfg.clone() };
        assert_ne!(
            WithMissing::new(toy(100), &other, Split::Train).unwrap().availabilities(),
            data.availabilities()
        );
        // Splits not listed stay complete.
        let train_only = MissingConfig { splits: vec![Split::Train], ..cfg };
        let test = WithMissing::new(toy(100), &train_only, Split::Test).unwrap();
        assert!(test.availabilities().iter().all(|a| *a == full));
    }

    #[test]
    fn missing_inputs_are_zero_placeholders_in_both_read_paths() {
        let cfg = MissingConfig { rate: 1.0, seed: 3, splits: all_splits() };
        let data = WithMissing::new(toy(10), &cfg, Split::Val).unwrap();
        for i in 0..10 {
            let a = data.availability(i);
            let s = data.get(i, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
            let plain = toy(10).get(i, &mut ChaCha8Rng::seed_from_u64(0)).unwrap();
            for m in 0..3 {
                if a.contains(m) {
                    assert_eq!(s.inputs[m], plain.inputs[m]);
                } else {
                    assert!(s.inputs[m].data.iter().all(|v| *v == 0.0));
                    assert_eq!(s.inputs[m].shape, plain.inputs[m].shape);
                }
            }
            let mut bufs: Vec<Vec<f32>> =
                s.inputs.iter().map(|x| vec![7.0; x.data.len()]).collect();
            let mut outs: Vec<&mut [f32]> = bufs.iter_mut().map(Vec::as_mut_slice).collect();
            data.get_into(i, &mut ChaCha8Rng::seed_from_u64(0), &mut outs).unwrap();
            for (buf, x) in bufs.iter().zip(&s.inputs) {
                assert_eq!(*buf, x.data);
            }
        }
    }

    #[test]
    fn bad_rates_and_single_modality_tasks_are_errors() {
        let bad = MissingConfig { rate: 1.5, seed: 0, splits: all_splits() };
        assert!(WithMissing::new(toy(4), &bad, Split::Train).is_err());
        let set = ModalitySet::from_names(["a"]).unwrap();
        let one: Arc<dyn Dataset> = Arc::new(
            InMemoryDataset::synthetic_classification(set, &[vec![2]], &[0.1], 2, 4, 0).unwrap(),
        );
        let cfg = MissingConfig { rate: 0.5, seed: 0, splits: all_splits() };
        assert!(WithMissing::new(one, &cfg, Split::Train).is_err());
    }
}
