//! Binary presentation-attack-detection metrics in ISO/IEC 30107-3 terms: [`LabelConvention`]
//! and the [`BinaryCounts`] accumulator (APCER, BPCER, ACER, accuracy).

use serde::{Deserialize, Serialize};

use crate::{MetricsError, Result};

/// Which label value means *bona fide* (a real, live face); the other binary value means
/// *attack* (a presentation attack).
///
/// The data sets disagree: CASIA-SURF uses 1 = real ([`LabelConvention::CASIA_SURF`]), CeFA's
/// `video_2_label` maps real to 0 ([`LabelConvention::CEFA`]). Getting this wrong swaps APCER
/// and BPCER (ACER is unaffected). Serialized as `{"bona_fide_label": 1}`; only 0 and 1 are
/// accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawConvention", deny_unknown_fields)]
pub struct LabelConvention {
    bona_fide_label: i64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConvention {
    bona_fide_label: i64,
}

impl TryFrom<RawConvention> for LabelConvention {
    type Error = MetricsError;

    fn try_from(raw: RawConvention) -> Result<Self> {
        LabelConvention::new(raw.bona_fide_label)
    }
}

impl LabelConvention {
    /// CASIA-SURF: label 1 = bona fide (real), 0 = attack.
    pub const CASIA_SURF: LabelConvention = LabelConvention { bona_fide_label: 1 };
    /// CASIA-SURF CeFA: label 0 = bona fide (real), 1 = attack.
    pub const CEFA: LabelConvention = LabelConvention { bona_fide_label: 0 };

    /// A convention whose bona fide label is `bona_fide_label`; fails unless it is 0 or 1.
    pub fn new(bona_fide_label: i64) -> Result<Self> {
        match bona_fide_label {
            0 | 1 => Ok(LabelConvention { bona_fide_label }),
            other => Err(MetricsError::InvalidConvention(other)),
        }
    }

    /// The label value of bona fide samples.
    pub fn bona_fide_label(self) -> i64 {
        self.bona_fide_label
    }

    /// The label value of attack samples (`1 - bona_fide_label`).
    pub fn attack_label(self) -> i64 {
        1 - self.bona_fide_label
    }
}

/// Counts of bona fide and attack samples and of the errors on each, accumulated over a split.
///
/// Feed it `(label, prediction)` pairs, both 0 or 1, where the prediction is the argmax of the
/// two logits (the official code uses no threshold search). Then, with "attack" and "bona fide"
/// as fixed by the [`LabelConvention`]:
///
/// - APCER = attacks classified as bona fide / attacks,
/// - BPCER = bona fide samples classified as attacks / bona fide samples,
/// - ACER = (APCER + BPCER) / 2,
/// - accuracy = correct / all samples.
///
/// All four are **fractions** in `[0, 1]`; reports ([`crate::CombinationReport`]) show them in
/// percent in Markdown.
///
/// **Empty classes.** A rate over a class with no samples is defined as `0.0`, never NaN, and
/// [`BinaryCounts::has_both_classes`] returns `false` so callers can flag it. ACER then averages
/// the defined rate with that 0. Accuracy over no samples is `0.0`.
///
/// The released code prints "APCER" as the error rate on label-1 samples and "NPCER" on label-0
/// samples; on CASIA-SURF (1 = real) its "APCER" is the ISO BPCER. This type always uses the
/// ISO meaning.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BinaryCounts {
    convention: LabelConvention,
    attacks: u64,
    attack_errors: u64,
    bona_fide: u64,
    bona_fide_errors: u64,
}

impl BinaryCounts {
    /// Names of [`BinaryCounts::metric_values`], in order; the columns of a classification
    /// [`crate::CombinationReport`].
    pub const METRIC_NAMES: [&'static str; 4] = ["acer", "apcer", "bpcer", "accuracy"];

    /// Empty counts under `convention`.
    pub fn new(convention: LabelConvention) -> Self {
        BinaryCounts { convention, attacks: 0, attack_errors: 0, bona_fide: 0, bona_fide_errors: 0 }
    }

    /// Adds one sample; fails (and adds nothing) unless `label` and `pred` are 0 or 1.
    pub fn push(&mut self, label: i64, pred: i64) -> Result<()> {
        check_binary("label", 0, label)?;
        check_binary("prediction", 0, pred)?;
        self.add(label, pred);
        Ok(())
    }

    /// Adds `labels[i]`, `preds[i]` for every `i`. All values are checked first: on an error
    /// (length mismatch, a value other than 0 or 1) nothing is added.
    pub fn update(&mut self, labels: &[i64], preds: &[i64]) -> Result<()> {
        if labels.len() != preds.len() {
            return Err(MetricsError::LengthMismatch { labels: labels.len(), preds: preds.len() });
        }
        for (i, (&l, &p)) in labels.iter().zip(preds).enumerate() {
            check_binary("label", i, l)?;
            check_binary("prediction", i, p)?;
        }
        for (&l, &p) in labels.iter().zip(preds) {
            self.add(l, p);
        }
        Ok(())
    }

    /// Adds the counts of `other` (e.g. from another worker); fails if the conventions differ.
    pub fn merge(&mut self, other: &BinaryCounts) -> Result<()> {
        if self.convention != other.convention {
            return Err(MetricsError::ConventionMismatch {
                right: self.convention.bona_fide_label,
                left: other.convention.bona_fide_label,
            });
        }
        self.attacks += other.attacks;
        self.attack_errors += other.attack_errors;
        self.bona_fide += other.bona_fide;
        self.bona_fide_errors += other.bona_fide_errors;
        Ok(())
    }

    fn add(&mut self, label: i64, pred: i64) {
        let wrong = u64::from(label != pred);
        if label == self.convention.bona_fide_label {
            self.bona_fide += 1;
            self.bona_fide_errors += wrong;
        } else {
            self.attacks += 1;
            self.attack_errors += wrong;
        }
    }

    /// Adds raw counts (e.g. [`Self::attacks`], [`Self::attack_errors`], [`Self::bona_fide`]
    /// and [`Self::bona_fide_errors`] summed over other processes); fails (adding nothing)
    /// when the errors exceed their totals.
    pub fn add_counts(
        &mut self,
        attacks: u64,
        attack_errors: u64,
        bona_fide: u64,
        bona_fide_errors: u64,
    ) -> Result<()> {
        if attack_errors > attacks || bona_fide_errors > bona_fide {
            return Err(MetricsError::InvalidCounts(format!(
                "{attack_errors} errors of {attacks} attacks, {bona_fide_errors} of {bona_fide} \
                 bona fide"
            )));
        }
        self.attacks += attacks;
        self.attack_errors += attack_errors;
        self.bona_fide += bona_fide;
        self.bona_fide_errors += bona_fide_errors;
        Ok(())
    }

    /// The label convention.
    pub fn convention(&self) -> LabelConvention {
        self.convention
    }

    /// Number of attack samples seen.
    pub fn attacks(&self) -> u64 {
        self.attacks
    }

    /// Number of attack samples classified as bona fide.
    pub fn attack_errors(&self) -> u64 {
        self.attack_errors
    }

    /// Number of bona fide samples seen.
    pub fn bona_fide(&self) -> u64 {
        self.bona_fide
    }

    /// Number of bona fide samples classified as attacks.
    pub fn bona_fide_errors(&self) -> u64 {
        self.bona_fide_errors
    }

    /// Number of samples seen.
    pub fn total(&self) -> u64 {
        self.attacks + self.bona_fide
    }

    /// Whether both classes have at least one sample, i.e. APCER and BPCER are both measured
    /// rather than defaulted to 0.
    pub fn has_both_classes(&self) -> bool {
        self.attacks > 0 && self.bona_fide > 0
    }

    /// Attack presentation classification error rate (fraction); 0 when there are no attacks.
    pub fn apcer(&self) -> f64 {
        ratio(self.attack_errors, self.attacks)
    }

    /// Bona fide presentation classification error rate (fraction); 0 when there are no bona
    /// fide samples.
    pub fn bpcer(&self) -> f64 {
        ratio(self.bona_fide_errors, self.bona_fide)
    }

    /// Average classification error rate, `(APCER + BPCER) / 2` (fraction).
    pub fn acer(&self) -> f64 {
        (self.apcer() + self.bpcer()) / 2.0
    }

    /// Fraction of samples classified correctly; 0 when there are no samples.
    pub fn accuracy(&self) -> f64 {
        ratio(self.total() - self.attack_errors - self.bona_fide_errors, self.total())
    }

    /// `[acer, apcer, bpcer, accuracy]`, matching [`BinaryCounts::METRIC_NAMES`].
    pub fn metric_values(&self) -> [f64; 4] {
        [self.acer(), self.apcer(), self.bpcer(), self.accuracy()]
    }
}

/// `num / den`, or 0 when `den == 0`.
pub(crate) fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 { 0.0 } else { num as f64 / den as f64 }
}

fn check_binary(what: &'static str, index: usize, value: i64) -> Result<()> {
    if value == 0 || value == 1 {
        Ok(())
    } else {
        Err(MetricsError::InvalidBinaryValue { what, index, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Hand-made example: labels 1 1 1 1 0 0 0 (four of class 1, three of class 0);
    // preds: class-1 samples 1 1 1 0 (one wrong), class-0 samples 0 1 1 (two wrong).
    const LABELS: [i64; 7] = [1, 1, 1, 1, 0, 0, 0];
    const PREDS: [i64; 7] = [1, 1, 1, 0, 0, 1, 1];

    #[test]
    fn surf_convention_counts_class_0_as_attack() {
        let mut c = BinaryCounts::new(LabelConvention::CASIA_SURF);
        c.update(&LABELS, &PREDS).unwrap();
        assert_eq!(
            (c.attacks(), c.attack_errors(), c.bona_fide(), c.bona_fide_errors()),
            (3, 2, 4, 1)
        );
        assert_eq!(c.apcer(), 2.0 / 3.0);
        assert_eq!(c.bpcer(), 1.0 / 4.0);
        assert_eq!(c.acer(), (2.0 / 3.0 + 0.25) / 2.0);
        assert_eq!(c.accuracy(), 4.0 / 7.0);
        assert!(c.has_both_classes());
    }

    #[test]
    fn swapping_the_convention_swaps_apcer_and_bpcer() {
        let mut surf = BinaryCounts::new(LabelConvention::CASIA_SURF);
        let mut cefa = BinaryCounts::new(LabelConvention::CEFA);
        surf.update(&LABELS, &PREDS).unwrap();
        cefa.update(&LABELS, &PREDS).unwrap();
        assert_eq!(cefa.apcer(), surf.bpcer());
        assert_eq!(cefa.bpcer(), surf.apcer());
        assert_eq!(cefa.apcer(), 0.25);
        assert_eq!(cefa.acer(), surf.acer());
        assert_eq!(cefa.accuracy(), surf.accuracy());
    }

    #[test]
    fn empty_class_rates_are_zero_and_flagged() {
        let c = BinaryCounts::new(LabelConvention::CASIA_SURF);
        assert_eq!(c.metric_values(), [0.0; 4]);
        let mut only_real = BinaryCounts::new(LabelConvention::CASIA_SURF);
        only_real.update(&[1, 1, 1, 1], &[1, 0, 1, 1]).unwrap();
        assert!(!only_real.has_both_classes());
        assert_eq!(only_real.apcer(), 0.0);
        assert_eq!(only_real.bpcer(), 0.25);
        assert_eq!(only_real.acer(), 0.125);
        assert!(only_real.metric_values().iter().all(|v| v.is_finite()));
    }

    #[test]
    fn invalid_input_adds_nothing() {
        let mut c = BinaryCounts::new(LabelConvention::CASIA_SURF);
        assert_eq!(
            c.update(&[1, 0, 2], &[1, 0, 0]),
            Err(MetricsError::InvalidBinaryValue { what: "label", index: 2, value: 2 })
        );
        assert_eq!(
            c.update(&[1, 0], &[1, -1]),
            Err(MetricsError::InvalidBinaryValue { what: "prediction", index: 1, value: -1 })
        );
        assert_eq!(
            c.update(&[1], &[1, 0]),
            Err(MetricsError::LengthMismatch { labels: 1, preds: 2 })
        );
        assert!(c.push(3, 0).is_err());
        assert_eq!(c.total(), 0);
    }

    #[test]
    fn merge_equals_one_pass_and_checks_convention() {
        let mut whole = BinaryCounts::new(LabelConvention::CASIA_SURF);
        whole.update(&LABELS, &PREDS).unwrap();
        let mut a = BinaryCounts::new(LabelConvention::CASIA_SURF);
        let mut b = BinaryCounts::new(LabelConvention::CASIA_SURF);
        a.update(&LABELS[..3], &PREDS[..3]).unwrap();
        for (&l, &p) in LABELS[3..].iter().zip(&PREDS[3..]) {
            b.push(l, p).unwrap();
        }
        a.merge(&b).unwrap();
        assert_eq!(a, whole);
        let cefa = BinaryCounts::new(LabelConvention::CEFA);
        assert_eq!(a.merge(&cefa), Err(MetricsError::ConventionMismatch { right: 1, left: 0 }));
    }

    #[test]
    fn convention_serde_validates() {
        let json = serde_json::to_string(&LabelConvention::CEFA).unwrap();
        assert_eq!(json, r#"{"bona_fide_label":0}"#);
        let back: LabelConvention = serde_json::from_str(r#"{"bona_fide_label":1}"#).unwrap();
        assert_eq!(back, LabelConvention::CASIA_SURF);
        assert_eq!(back.attack_label(), 0);
        assert!(serde_json::from_str::<LabelConvention>(r#"{"bona_fide_label":2}"#).is_err());
        assert_eq!(LabelConvention::new(-1), Err(MetricsError::InvalidConvention(-1)));
    }
}
