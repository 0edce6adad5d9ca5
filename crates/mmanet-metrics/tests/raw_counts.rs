//! Raw counts round-trip: a split scored in two halves whose raw counts are added gives the
//! metrics of the whole split (how data-parallel evaluation sums across ranks), and counts no
//! accumulation could produce are refused.

use mmanet_metrics::{AccuracyCounter, BinaryCounts, ConfusionMatrix, LabelConvention};

const LABELS: [i64; 10] = [1, 0, 1, 1, 0, 2, 0, 1, 2, 2];
const PREDS: [i64; 10] = [1, 0, 0, 1, 1, 2, 0, 2, 1, 2];

#[test]
fn summed_halves_equal_the_whole_split() {
    let (a, b) = (LABELS.split_at(4), PREDS.split_at(4));
    let mut whole = AccuracyCounter::new();
    whole.update(&LABELS, &PREDS).unwrap();
    let (mut h0, mut h1) = (AccuracyCounter::new(), AccuracyCounter::new());
    h0.update(a.0, b.0).unwrap();
    h1.update(a.1, b.1).unwrap();
    h0.add_counts(h1.correct(), h1.total()).unwrap();
    assert_eq!(h0, whole);

    let bin = |l: &[i64]| l.iter().map(|v| v.min(&1)).copied().collect::<Vec<i64>>();
    let c = LabelConvention::new(1).unwrap();
    let mut whole = BinaryCounts::new(c);
    whole.update(&bin(&LABELS), &bin(&PREDS)).unwrap();
    let (mut h0, mut h1) = (BinaryCounts::new(c), BinaryCounts::new(c));
    h0.update(&bin(a.0), &bin(b.0)).unwrap();
    h1.update(&bin(a.1), &bin(b.1)).unwrap();
    h0.add_counts(h1.attacks(), h1.attack_errors(), h1.bona_fide(), h1.bona_fide_errors()).unwrap();
    assert_eq!(h0.metric_values(), whole.metric_values());

    let mut whole = ConfusionMatrix::new(3).unwrap();
    let shifted = |p: &[i64]| p.iter().map(|v| v.min(&2)).copied().collect::<Vec<i64>>();
    whole.update(&LABELS, &shifted(&PREDS)).unwrap();
    let (mut h0, mut h1) = (ConfusionMatrix::new(3).unwrap(), ConfusionMatrix::new(3).unwrap());
    h0.update(a.0, &shifted(b.0)).unwrap();
    h1.update(a.1, &shifted(b.1)).unwrap();
    h0.add_counts(h1.counts()).unwrap();
    assert_eq!(h0.counts(), whole.counts());
    assert_eq!(h0.metric_values(), whole.metric_values());
}

#[test]
fn impossible_counts_are_refused_and_add_nothing() {
    let mut acc = AccuracyCounter::new();
    assert!(acc.add_counts(3, 2).is_err());
    assert_eq!(acc.total(), 0);
    let mut bin = BinaryCounts::new(LabelConvention::new(0).unwrap());
    assert!(bin.add_counts(1, 2, 0, 0).is_err());
    assert_eq!(bin.attacks(), 0);
    let mut cm = ConfusionMatrix::new(2).unwrap();
    assert!(cm.add_counts(&[1, 2, 3]).is_err());
    assert!(cm.counts().iter().all(|c| *c == 0));
}
