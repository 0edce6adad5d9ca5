//! [`ConfusionMatrix`]: segmentation confusion matrix, per-class IoU, mIoU and pixel accuracy.

use crate::binary::ratio;
use crate::{MetricsError, Result};

/// A `C x C` confusion matrix accumulated over a whole split, as the official segmentation
/// code does (one matrix for the split, not a mean of per-image scores).
///
/// Labels follow the data sets' files: `0` = void (ignored), `1..=C` = classes. Predictions are
/// class indices `0..C` (the argmax of the logits), so label `l` matches prediction `l - 1`.
///
/// - IoU of class `c` = TP / (GT_c + Pred_c - TP). A class absent from both the ground truth
///   and the predictions has IoU **0** and still counts in the mean (the reference convention).
/// - mIoU = mean IoU over all `C` classes.
/// - Pixel accuracy = TP summed over classes / non-void pixels (0 when there are none).
///
/// All values are fractions in `[0, 1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfusionMatrix {
    num_classes: usize,
    /// Row-major `[ground truth][prediction]`.
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// Names of [`ConfusionMatrix::metric_values`], in order; the columns of a segmentation
    /// [`crate::CombinationReport`].
    pub const METRIC_NAMES: [&'static str; 2] = ["miou", "pixel_acc"];

    /// An empty matrix over `num_classes` classes; fails when `num_classes` is 0.
    pub fn new(num_classes: usize) -> Result<Self> {
        if num_classes == 0 {
            return Err(MetricsError::NoClasses);
        }
        Ok(ConfusionMatrix { num_classes, counts: vec![0; num_classes * num_classes] })
    }

    /// Number of classes `C`.
    pub fn num_classes(&self) -> usize {
        self.num_classes
    }

    /// Adds every pixel `i` with `labels[i] != 0` as ground truth class `labels[i] - 1` and
    /// prediction `preds[i]`.
    ///
    /// # Shapes
    /// `labels` and `preds` are flattened pixel maps of the same length (any `[B, H, W]`
    /// flattened in the same order).
    ///
    /// # Errors
    /// A length mismatch, a label outside `0..=C` or a prediction outside `0..C` (checked on
    /// every pixel, void ones included). On an error nothing is added.
    pub fn update(&mut self, labels: &[i64], preds: &[i64]) -> Result<()> {
        if labels.len() != preds.len() {
            return Err(MetricsError::LengthMismatch { labels: labels.len(), preds: preds.len() });
        }
        let c = self.num_classes as i64;
        for (index, (&value, &pred)) in labels.iter().zip(preds).enumerate() {
            if !(0..=c).contains(&value) {
                return Err(MetricsError::LabelOutOfRange {
                    index,
                    value,
                    num_classes: self.num_classes,
                });
            }
            if !(0..c).contains(&pred) {
                return Err(MetricsError::PredictionOutOfRange {
                    index,
                    value: pred,
                    num_classes: self.num_classes,
                });
            }
        }
        for (&label, &pred) in labels.iter().zip(preds) {
            if label != 0 {
                let (gt, p) = ((label - 1) as usize, pred as usize);
                self.counts[gt * self.num_classes + p] += 1;
            }
        }
        Ok(())
    }

    /// Adds the counts of `other` (for parallel accumulation); fails when the class counts
    /// differ.
    pub fn merge(&mut self, other: &ConfusionMatrix) -> Result<()> {
        if self.num_classes != other.num_classes {
            return Err(MetricsError::ClassCountMismatch {
                right: self.num_classes,
                left: other.num_classes,
            });
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        Ok(())
    }

    /// Every count, row-major `[ground truth][prediction]` (`C * C` of them).
    pub fn counts(&self) -> &[u64] {
        &self.counts
    }

    /// Adds raw counts laid out as [`Self::counts`] (e.g. summed over other processes); fails
    /// (adding nothing) unless there are `C * C` of them.
    pub fn add_counts(&mut self, counts: &[u64]) -> Result<()> {
        if counts.len() != self.counts.len() {
            return Err(MetricsError::InvalidCounts(format!(
                "{} counts for {} classes (expected {})",
                counts.len(),
                self.num_classes,
                self.counts.len()
            )));
        }
        for (a, b) in self.counts.iter_mut().zip(counts) {
            *a += b;
        }
        Ok(())
    }

    /// Pixels with ground truth class `gt` predicted as `pred` (both 0-based), or `None` when
    /// either is out of range.
    pub fn count(&self, gt: usize, pred: usize) -> Option<u64> {
        (gt < self.num_classes && pred < self.num_classes)
            .then(|| self.counts[gt * self.num_classes + pred])
    }

    /// Number of non-void pixels added.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    fn true_positives(&self, c: usize) -> u64 {
        self.counts[c * self.num_classes + c]
    }

    /// IoU of each class, `TP / (GT + Pred - TP)`; 0 for a class absent from both.
    pub fn iou_per_class(&self) -> Vec<f64> {
        let n = self.num_classes;
        (0..n)
            .map(|c| {
                let gt: u64 = self.counts[c * n..(c + 1) * n].iter().sum();
                let pred: u64 = (0..n).map(|r| self.counts[r * n + c]).sum();
                let tp = self.true_positives(c);
                ratio(tp, gt + pred - tp)
            })
            .collect()
    }

    /// Mean IoU over all classes (absent classes count as 0).
    pub fn miou(&self) -> f64 {
        self.iou_per_class().iter().sum::<f64>() / self.num_classes as f64
    }

    /// Fraction of non-void pixels predicted correctly; 0 when there are none.
    pub fn pixel_accuracy(&self) -> f64 {
        let tp: u64 = (0..self.num_classes).map(|c| self.true_positives(c)).sum();
        ratio(tp, self.total())
    }

    /// `[miou, pixel_acc]`, matching [`ConfusionMatrix::METRIC_NAMES`].
    pub fn metric_values(&self) -> [f64; 2] {
        [self.miou(), self.pixel_accuracy()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_iou_with_void_and_absent_class() {
        // 3 classes. Labels (0 = void): 1 1 2 2 0 0; preds: 0 1 1 1 2 0.
        // Non-void pixels: (gt 0, p 0), (gt 0, p 1), (gt 1, p 1), (gt 1, p 1).
        // Class 0: TP 1, GT 2, Pred 1 -> 1/2. Class 1: TP 2, GT 2, Pred 3 -> 2/3.
        // Class 2: absent from both (its prediction falls on a void pixel) -> 0, still averaged.
        let mut cm = ConfusionMatrix::new(3).unwrap();
        cm.update(&[1, 1, 2, 2, 0, 0], &[0, 1, 1, 1, 2, 0]).unwrap();
        assert_eq!(cm.iou_per_class(), vec![0.5, 2.0 / 3.0, 0.0]);
        assert_eq!(cm.miou(), (0.5 + 2.0 / 3.0) / 3.0);
        assert_eq!(cm.pixel_accuracy(), 0.75);
        assert_eq!(cm.total(), 4);
        assert_eq!(cm.count(0, 1), Some(1));
        assert_eq!(cm.count(3, 0), None);
    }

    #[test]
    fn merge_equals_one_pass() {
        let labels = [1, 2, 3, 3, 0, 2, 1, 3];
        let preds = [0, 1, 2, 0, 1, 1, 2, 2];
        let mut whole = ConfusionMatrix::new(3).unwrap();
        whole.update(&labels, &preds).unwrap();
        let mut a = ConfusionMatrix::new(3).unwrap();
        let mut b = ConfusionMatrix::new(3).unwrap();
        a.update(&labels[..5], &preds[..5]).unwrap();
        b.update(&labels[5..], &preds[5..]).unwrap();
        a.merge(&b).unwrap();
        assert_eq!(a, whole);
        let other = ConfusionMatrix::new(4).unwrap();
        assert_eq!(a.merge(&other), Err(MetricsError::ClassCountMismatch { right: 3, left: 4 }));
    }

    #[test]
    fn typed_errors_and_nothing_added() {
        let mut cm = ConfusionMatrix::new(2).unwrap();
        assert_eq!(
            cm.update(&[1, 3], &[0, 0]),
            Err(MetricsError::LabelOutOfRange { index: 1, value: 3, num_classes: 2 })
        );
        assert_eq!(
            cm.update(&[1, 0], &[0, 2]),
            Err(MetricsError::PredictionOutOfRange { index: 1, value: 2, num_classes: 2 })
        );
        assert!(cm.update(&[1, -1], &[0, 0]).unwrap_err().to_string().contains("-1"));
        assert_eq!(cm.update(&[1], &[]), Err(MetricsError::LengthMismatch { labels: 1, preds: 0 }));
        assert_eq!(cm.total(), 0);
        assert_eq!(ConfusionMatrix::new(0), Err(MetricsError::NoClasses));
        // Empty matrix: every class absent, all metrics 0 rather than NaN.
        assert_eq!(cm.metric_values(), [0.0, 0.0]);
    }
}
