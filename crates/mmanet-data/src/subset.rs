//! [`Subset`]: a view of some samples of another data set (e.g. a validation split).

use std::sync::Arc;

use mmanet_core::{ModalityMask, ModalitySet};
use rand_chacha::ChaCha8Rng;

use crate::dataset::index_error;
use crate::{Dataset, Result, Sample, Target, Task};

/// The samples `indices` of `inner`, in that order.
#[derive(Clone)]
pub struct Subset {
    inner: Arc<dyn Dataset>,
    indices: Vec<usize>,
}

impl std::fmt::Debug for Subset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subset").field("len", &self.indices.len()).finish()
    }
}

impl Subset {
    /// A view; fails when an index is out of range.
    pub fn new(inner: Arc<dyn Dataset>, indices: Vec<usize>) -> Result<Self> {
        if let Some(bad) = indices.iter().find(|i| **i >= inner.len()) {
            return Err(index_error(*bad, inner.len()));
        }
        Ok(Subset { inner, indices })
    }

    /// Splits `inner` into a seeded random `(rest, held_out)` pair with
    /// `round(len * fraction)` held-out samples.
    pub fn split(inner: Arc<dyn Dataset>, fraction: f64, seed: u64) -> Result<(Subset, Subset)> {
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..inner.len()).collect();
        idx.shuffle(&mut crate::seeding::derive_rng(seed, 0, 0, crate::seeding::Stream::Generate));
        let k = ((inner.len() as f64) * fraction.clamp(0.0, 1.0)).round() as usize;
        let (held, rest) = idx.split_at(k);
        let (mut held, mut rest) = (held.to_vec(), rest.to_vec());
        held.sort_unstable();
        rest.sort_unstable();
        Ok((Subset::new(inner.clone(), rest)?, Subset::new(inner, held)?))
    }

    /// The indices into the inner set.
    pub fn indices(&self) -> &[usize] {
        &self.indices
    }
}

impl Dataset for Subset {
    fn len(&self) -> usize {
        self.indices.len()
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
        match self.indices.get(index) {
            Some(&i) => self.inner.availability(i),
            None => self.inner.modalities().full(),
        }
    }

    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample> {
        let i = *self.indices.get(index).ok_or_else(|| index_error(index, self.indices.len()))?;
        self.inner.get(i, rng)
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
        let i = *self.indices.get(index).ok_or_else(|| index_error(index, self.indices.len()))?;
        self.inner.get_into(i, rng, outs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::InMemoryDataset;
    use crate::seeding::{Stream, derive_rng};

    #[test]
    fn split_partitions_and_views_forward() {
        let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
        let ds: Arc<dyn Dataset> = Arc::new(
            InMemoryDataset::synthetic_classification(
                set,
                &[vec![2], vec![2], vec![2]],
                &[0.1; 3],
                2,
                10,
                0,
            )
            .unwrap(),
        );
        let (rest, held) = Subset::split(ds.clone(), 0.3, 4).unwrap();
        assert_eq!((rest.len(), held.len()), (7, 3));
        let mut all: Vec<usize> = rest.indices().iter().chain(held.indices()).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        let mut rng = derive_rng(0, 0, 0, Stream::Augment);
        let i = held.indices()[1];
        assert_eq!(held.get(1, &mut rng).unwrap(), ds.get(i, &mut rng).unwrap());
        assert!(held.get(3, &mut rng).is_err());
        assert!(Subset::new(ds, vec![10]).is_err());
    }
}
