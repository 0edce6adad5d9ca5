//! Weak-set mining (docs/method.md §2.1 "Mining window" / "Selection", §2.2 "Mining" / "Selection").
//!
//! Pure Rust on predictions and scores; no tensors. Each miner is fed once per mining epoch and
//! accumulates a distance per candidate combination; the weakest candidate is the arg-max
//! (the first one on ties).
//!
//! **Candidates.** Classification: the combinations with `M − 1` modalities, in evaluation order
//! ([`ModalitySet::combinations_of_size`]). For M = 3 these are R+D, R+I, D+I, the reference's
//! `[[1,1,0],[1,0,1],[0,1,1]]`; for M = 2 they are the single modalities. Segmentation: the
//! single modalities (R, D for RGB-D, the reference's `[[1,0],[0,1]]`). The full combination is
//! the reference every candidate is compared with.

use mmanet_core::{ModalityMask, ModalitySet};

use crate::{LossError, Result, WeakSet};

/// Normalised histogram of predicted labels: `v_k = #{i : pred_i = k} / n` for `k < num_classes`
/// (the reference's `get_dataself_hist`). Fails on an empty slice or a label out of range.
pub fn label_histogram(predictions: &[i64], num_classes: usize) -> Result<Vec<f64>> {
    if predictions.is_empty() {
        return Err(LossError::Invalid("label histogram of no predictions".into()));
    }
    let mut counts = vec![0u64; num_classes];
    for &p in predictions {
        let k = usize::try_from(p).ok().filter(|k| *k < num_classes).ok_or_else(|| {
            LossError::Invalid(format!("predicted label {p} outside 0..{num_classes}"))
        })?;
        counts[k] += 1;
    }
    let n = predictions.len() as f64;
    Ok(counts.into_iter().map(|c| c as f64 / n).collect())
}

fn log_softmax(v: &[f64]) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let lse = max + v.iter().map(|x| (x - max).exp()).sum::<f64>().ln();
    v.iter().map(|x| x - lse).collect()
}

/// `KL(softmax(v_c) ‖ softmax(v_full)) = Σ_k softmax(v_c)_k · (log softmax(v_c)_k − log softmax(v_full)_k)`:
/// what `F.kl_div(log_softmax(v_full), softmax(v_c), reduction='batchmean')` gives on `(1, K)`
/// inputs. The softmax is applied to vectors that are already probabilities, as the released
/// code does (docs/method.md §2.1 step 3).
pub fn softmax_kl(v_c: &[f64], v_full: &[f64]) -> f64 {
    let (lc, lf) = (log_softmax(v_c), log_softmax(v_full));
    lc.iter().zip(&lf).map(|(a, b)| a.exp() * (a - b)).sum()
}

fn first_argmax(scores: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, s) in scores.iter().enumerate() {
        if best.is_none_or(|b| *s > scores[b]) {
            best = Some(i);
        }
    }
    best
}

/// Classification weak-set miner (docs/method.md §2.1): accumulates, over the mining epochs, the
/// label-distribution distance `D_c += softmax_kl(v_c, v_full)` of each `(M−1)`-modality
/// candidate `c`, where `v` is the [`label_histogram`] of the predictions on the validation split.
///
/// The weak set is `[c*, then each single modality of c*]` with `c* = argmax_c D_c` (for M = 3 it
/// always has 3 entries; for M = 2, `c*` is already a single modality and the set is `[c*]`).
///
/// ```
/// use mmanet_core::ModalitySet;
/// use mmanet_losses::ClassificationMiner;
///
/// let mut miner = ClassificationMiner::new(ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"), 2).unwrap();
/// // candidates R+D, R+I, D+I; R+I predicts only class 0, unlike the full combination
/// let full = [0, 1, 0, 1];
/// miner.add_epoch(&full, &[&[0, 1, 0, 1], &[0, 0, 0, 0], &[0, 1, 1, 1]]).unwrap();
/// assert_eq!(miner.weak_set().unwrap().to_string(), "[R+I, R, I]");
/// ```
#[derive(Clone, Debug)]
pub struct ClassificationMiner {
    set: ModalitySet,
    num_classes: usize,
    tally: Tally,
}

impl ClassificationMiner {
    /// A miner over the `(M−1)`-modality combinations of `set`; fails for M < 2 or
    /// `num_classes == 0`.
    pub fn new(set: ModalitySet, num_classes: usize) -> Result<Self> {
        if set.len() < 2 {
            return Err(LossError::Invalid(format!(
                "mining needs at least 2 modalities, {set} has 1"
            )));
        }
        let candidates = set.combinations_of_size(set.len() - 1);
        Self::with_candidates(set, num_classes, candidates)
    }

    /// A miner over explicit candidates (each within `set`, distinct, none the full
    /// combination).
    pub fn with_candidates(
        set: ModalitySet,
        num_classes: usize,
        candidates: Vec<ModalityMask>,
    ) -> Result<Self> {
        if num_classes == 0 {
            return Err(LossError::Invalid("num_classes must be positive".into()));
        }
        if candidates.contains(&set.full()) {
            return Err(LossError::Invalid("the full combination cannot be a candidate".into()));
        }
        // Validates membership, emptiness and duplicates.
        WeakSet::new(set.clone(), candidates.clone())?;
        Ok(ClassificationMiner { set, num_classes, tally: Tally::new(candidates) })
    }

    /// The task's modalities.
    pub fn set(&self) -> &ModalitySet {
        &self.set
    }

    /// The candidate combinations, in the order [`Self::add_epoch`] expects their predictions.
    pub fn candidates(&self) -> &[ModalityMask] {
        &self.tally.candidates
    }

    /// The accumulated distances `D_c`, aligned with [`Self::candidates`].
    pub fn scores(&self) -> &[f64] {
        &self.tally.scores
    }

    /// Number of epochs fed so far.
    pub fn epochs(&self) -> usize {
        self.tally.epochs
    }

    /// Feeds one mining epoch: the predicted labels of the full combination and of each
    /// candidate (aligned with [`Self::candidates`]) on the validation split. The slices may
    /// differ in length (the reference reshuffles the loader for every combination).
    ///
    /// Fails, leaving the scores unchanged, on a wrong number of candidates, an empty slice or a
    /// label outside `0..num_classes`.
    pub fn add_epoch(&mut self, full: &[i64], per_candidate: &[&[i64]]) -> Result<()> {
        if per_candidate.len() != self.tally.candidates.len() {
            return Err(LossError::Invalid(format!(
                "expected predictions for {} candidates, got {}",
                self.tally.candidates.len(),
                per_candidate.len()
            )));
        }
        let v_full = label_histogram(full, self.num_classes)?;
        let kl = per_candidate
            .iter()
            .map(|p| Ok(softmax_kl(&label_histogram(p, self.num_classes)?, &v_full)))
            .collect::<Result<Vec<f64>>>()?;
        self.tally.add(&kl);
        tracing::debug!(epoch = self.tally.epochs, scores = ?self.tally.scores, "classification weak-set mining");
        Ok(())
    }

    /// The candidate with the largest accumulated distance (the first on ties); `None` before
    /// any epoch.
    pub fn weakest(&self) -> Option<ModalityMask> {
        self.tally.weakest()
    }

    /// The weak set `[c*, singles of c*]` (just `[c*]` when `c*` is a single modality); fails
    /// before any epoch.
    pub fn weak_set(&self) -> Result<WeakSet> {
        let c = self.weakest().ok_or_else(|| LossError::Invalid("no mining epoch yet".into()))?;
        let mut combos = vec![c];
        if c.count() > 1 {
            combos.extend(c.positions().map(ModalityMask::single));
        }
        WeakSet::new(self.set.clone(), combos)
    }
}

/// Segmentation weak-set miner (docs/method.md §2.2): accumulates `D_m += (mIoU_full − mIoU_m)²` for each
/// single modality `m`; the weak set is `[argmax_m D_m]`.
///
/// ```
/// use mmanet_core::ModalitySet;
/// use mmanet_losses::SegmentationMiner;
///
/// let mut miner = SegmentationMiner::new(ModalitySet::from_names(["rgb", "depth"]).expect("valid set")).unwrap();
/// miner.add_epoch(0.45, &[0.40, 0.30]).unwrap(); // candidates R, D
/// assert_eq!(miner.weak_set().unwrap().to_string(), "[D]");
/// ```
#[derive(Clone, Debug)]
pub struct SegmentationMiner {
    set: ModalitySet,
    tally: Tally,
}

impl SegmentationMiner {
    /// A miner over the single modalities of `set`; fails for M < 2.
    pub fn new(set: ModalitySet) -> Result<Self> {
        if set.len() < 2 {
            return Err(LossError::Invalid(format!(
                "mining needs at least 2 modalities, {set} has 1"
            )));
        }
        let tally = Tally::new(set.singles());
        Ok(SegmentationMiner { set, tally })
    }

    /// The candidates (single modalities, in set order).
    pub fn candidates(&self) -> &[ModalityMask] {
        &self.tally.candidates
    }

    /// The accumulated distances, aligned with [`Self::candidates`].
    pub fn scores(&self) -> &[f64] {
        &self.tally.scores
    }

    /// Number of epochs fed so far.
    pub fn epochs(&self) -> usize {
        self.tally.epochs
    }

    /// Feeds one mining epoch: the validation mIoU with all modalities and with each candidate
    /// alone (aligned with [`Self::candidates`]). Fails on a wrong count or a non-finite value.
    pub fn add_epoch(&mut self, miou_full: f64, miou_per_candidate: &[f64]) -> Result<()> {
        if miou_per_candidate.len() != self.tally.candidates.len() {
            return Err(LossError::Invalid(format!(
                "expected {} mIoU values, got {}",
                self.tally.candidates.len(),
                miou_per_candidate.len()
            )));
        }
        if !miou_full.is_finite() || miou_per_candidate.iter().any(|m| !m.is_finite()) {
            return Err(LossError::Invalid("mIoU values must be finite".into()));
        }
        let d: Vec<f64> = miou_per_candidate.iter().map(|m| (miou_full - m).powi(2)).collect();
        self.tally.add(&d);
        tracing::debug!(epoch = self.tally.epochs, scores = ?self.tally.scores, "segmentation weak-set mining");
        Ok(())
    }

    /// The candidate with the largest accumulated distance (first on ties); `None` before any
    /// epoch.
    pub fn weakest(&self) -> Option<ModalityMask> {
        self.tally.weakest()
    }

    /// The weak set `[argmax_m D_m]`; fails before any epoch.
    pub fn weak_set(&self) -> Result<WeakSet> {
        let c = self.weakest().ok_or_else(|| LossError::Invalid("no mining epoch yet".into()))?;
        WeakSet::new(self.set.clone(), vec![c])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kl_of_identical_histograms_is_zero_and_positive_otherwise() {
        assert_eq!(softmax_kl(&[0.3, 0.7], &[0.3, 0.7]), 0.0);
        assert!(softmax_kl(&[1.0, 0.0], &[0.0, 1.0]) > 0.0);
    }

    #[test]
    fn histogram_rejects_out_of_range_labels() {
        assert!(label_histogram(&[0, 2], 2).is_err());
        assert!(label_histogram(&[], 2).is_err());
        assert_eq!(label_histogram(&[0, 1, 1, 1], 2).unwrap(), vec![0.25, 0.75]);
    }

    #[test]
    fn two_modalities_give_single_candidates_and_a_one_entry_weak_set() {
        let mut m = ClassificationMiner::new(
            ModalitySet::from_names(["rgb", "depth"]).expect("valid set"),
            3,
        )
        .unwrap();
        let names = m.set().format_all(m.candidates());
        assert_eq!(names, ["R", "D"]);
        m.add_epoch(&[0, 1, 2], &[&[0, 1, 2], &[2, 2, 2]]).unwrap();
        assert_eq!(m.weak_set().unwrap().to_string(), "[D]");
    }

    #[test]
    fn weak_set_needs_an_epoch_and_failed_epochs_change_nothing() {
        let mut m = ClassificationMiner::new(
            ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
            2,
        )
        .unwrap();
        assert!(m.weak_set().is_err());
        assert!(m.add_epoch(&[0, 1], &[&[0, 1], &[0, 1]]).is_err());
        assert!(m.add_epoch(&[0, 1], &[&[0, 1], &[0, 1], &[0, 5]]).is_err());
        assert_eq!(m.epochs(), 0);
        assert_eq!(m.scores(), &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn segmentation_miner_accumulates_squared_gaps() {
        let mut m =
            SegmentationMiner::new(ModalitySet::from_names(["rgb", "depth"]).expect("valid set"))
                .unwrap();
        m.add_epoch(0.5, &[0.25, 0.5]).unwrap();
        m.add_epoch(0.5, &[0.5, 0.0]).unwrap();
        assert_eq!(m.scores(), &[0.0625, 0.25]);
        assert_eq!(m.weak_set().unwrap().to_string(), "[D]");
        assert!(m.add_epoch(f64::NAN, &[0.1, 0.2]).is_err());
    }
}

/// Accumulated distances of the candidate combinations over the mining epochs.
#[derive(Clone, Debug)]
struct Tally {
    candidates: Vec<ModalityMask>,
    scores: Vec<f64>,
    epochs: usize,
}

impl Tally {
    fn new(candidates: Vec<ModalityMask>) -> Self {
        let scores = vec![0.0; candidates.len()];
        Tally { candidates, scores, epochs: 0 }
    }

    /// Adds one epoch's distances (aligned with the candidates).
    fn add(&mut self, distances: &[f64]) {
        for (s, d) in self.scores.iter_mut().zip(distances) {
            *s += d;
        }
        self.epochs += 1;
    }

    /// The candidate with the largest accumulated distance (the first on ties).
    fn weakest(&self) -> Option<ModalityMask> {
        if self.epochs == 0 {
            return None;
        }
        first_argmax(&self.scores).map(|i| self.candidates[i])
    }
}
