//! Deterministic stratified train/test splits and feature standardisation, for sources that
//! ship without a split (UCI mfeat, AV-MNIST-lite).

use rand::seq::SliceRandom;

use crate::seeding::{Stream, derive_rng};

/// Splits sample positions class by class: within each class a seeded shuffle, then the first
/// `round(n_class * test_fraction)` go to the test side. Both outputs are sorted.
pub fn stratified_split(labels: &[i64], test_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for c in classes {
        let mut idx: Vec<usize> = (0..labels.len()).filter(|i| labels[*i] == c).collect();
        idx.shuffle(&mut derive_rng(seed, 7, c as u64, Stream::Generate));
        let n_test = ((idx.len() as f64) * test_fraction.clamp(0.0, 1.0)).round() as usize;
        test.extend_from_slice(&idx[..n_test]);
        train.extend_from_slice(&idx[n_test..]);
    }
    train.sort_unstable();
    test.sort_unstable();
    (train, test)
}

/// Per-feature `(x - mean) / std`, fitted on training rows (a zero std counts as 1).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Standardizer {
    /// Feature means.
    pub mean: Vec<f32>,
    /// Feature standard deviations (population).
    pub std: Vec<f32>,
}

impl Standardizer {
    /// Fits on rows of `dim` features.
    pub fn fit<'a>(rows: impl IntoIterator<Item = &'a [f32]>, dim: usize) -> Self {
        let (mut sum, mut sq, mut n) = (vec![0f64; dim], vec![0f64; dim], 0f64);
        for r in rows {
            for (k, v) in r.iter().enumerate().take(dim) {
                sum[k] += f64::from(*v);
                sq[k] += f64::from(*v) * f64::from(*v);
            }
            n += 1.0;
        }
        let n = n.max(1.0);
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| {
                let s = (q / n - m * m).max(0.0).sqrt();
                if s > 1e-12 { s as f32 } else { 1.0 }
            })
            .collect();
        Standardizer { mean: mean.into_iter().map(|m| m as f32).collect(), std }
    }

    /// Standardises one row in place.
    pub fn apply(&self, row: &mut [f32]) {
        for (k, v) in row.iter_mut().enumerate() {
            *v = (*v - self.mean[k]) / self.std[k];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stratified_split_is_balanced_disjoint_and_seeded() {
        let labels: Vec<i64> = (0..100).map(|i| i % 4).collect();
        let (tr, te) = stratified_split(&labels, 0.2, 1);
        assert_eq!((tr.len(), te.len()), (80, 20));
        for c in 0..4 {
            assert_eq!(te.iter().filter(|i| labels[**i] == c).count(), 5);
        }
        let mut all: Vec<usize> = tr.iter().chain(&te).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
        assert_eq!(stratified_split(&labels, 0.2, 1), (tr, te.clone()));
        assert_ne!(stratified_split(&labels, 0.2, 2).1, te);
    }

    #[test]
    fn standardizer_centres_and_scales() {
        let rows = [vec![1.0f32, 5.0], vec![3.0, 5.0]];
        let s = Standardizer::fit(rows.iter().map(Vec::as_slice), 2);
        assert_eq!(s.mean, [2.0, 5.0]);
        assert_eq!(s.std, [1.0, 1.0]); // population std of {1, 3} is 1; constant column -> 1
        let mut r = [3.0f32, 6.0];
        s.apply(&mut r);
        assert_eq!(r, [1.0, 1.0]);
    }
}
