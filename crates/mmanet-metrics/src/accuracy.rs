//! [`AccuracyCounter`]: top-1 accuracy of predicted class labels, for any number of classes.

use crate::binary::ratio;
use crate::{MetricsError, Result};

/// Counts correct top-1 predictions: a sample is correct when its predicted label (the argmax
/// of its logits) equals its label. Labels are compared as they are; no range is checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccuracyCounter {
    correct: u64,
    total: u64,
}

impl AccuracyCounter {
    /// An empty counter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one sample.
    pub fn push(&mut self, label: i64, pred: i64) {
        self.total += 1;
        self.correct += u64::from(label == pred);
    }

    /// Adds every `(labels[i], preds[i])`; fails (and adds nothing) on a length mismatch.
    pub fn update(&mut self, labels: &[i64], preds: &[i64]) -> Result<()> {
        if labels.len() != preds.len() {
            return Err(MetricsError::LengthMismatch { labels: labels.len(), preds: preds.len() });
        }
        for (&l, &p) in labels.iter().zip(preds) {
            self.push(l, p);
        }
        Ok(())
    }

    /// Adds the counts of `other`.
    pub fn merge(&mut self, other: &AccuracyCounter) {
        self.correct += other.correct;
        self.total += other.total;
    }

    /// Adds raw counts (e.g. [`Self::correct`] and [`Self::total`] summed over other
    /// processes); fails (adding nothing) when `correct > total`.
    pub fn add_counts(&mut self, correct: u64, total: u64) -> Result<()> {
        if correct > total {
            return Err(MetricsError::InvalidCounts(format!("{correct} correct of {total}")));
        }
        self.correct += correct;
        self.total += total;
        Ok(())
    }

    /// Number of correct predictions.
    pub fn correct(&self) -> u64 {
        self.correct
    }

    /// Number of samples.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Fraction correct; 0 (not NaN) when no sample was added.
    pub fn accuracy(&self) -> f64 {
        ratio(self.correct, self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_top1_hits() {
        let mut acc = AccuracyCounter::new();
        assert_eq!(acc.accuracy(), 0.0);
        // 3 of 5 equal: positions 0, 2, 4.
        acc.update(&[0, 1, 2, 3, 9], &[0, 2, 2, 1, 9]).unwrap();
        assert_eq!((acc.correct(), acc.total()), (3, 5));
        assert_eq!(acc.accuracy(), 0.6);
        let mut other = AccuracyCounter::new();
        other.push(4, 5);
        acc.merge(&other);
        assert_eq!(acc.accuracy(), 0.5);
        assert_eq!(
            acc.update(&[1, 2], &[1]),
            Err(MetricsError::LengthMismatch { labels: 2, preds: 1 })
        );
        assert_eq!(acc.total(), 6);
    }
}
