//! Checks the metrics against `fixtures/mmanet_reference.json` (float64 PyTorch values written by
//! `fixtures/make_reference.py` from the formulas in `docs/method.md` §6): every `acer` and `miou`
//! case, relative 1e-9.
//!
//! The fixture path is `$MMANET_REFERENCE` when set, else the repository's
//! `fixtures/mmanet_reference.json`, resolved from this crate's manifest directory.

use std::path::{Path, PathBuf};

use mmanet_metrics::{BinaryCounts, ConfusionMatrix, LabelConvention};
use serde_json::Value;

fn fixture_path() -> PathBuf {
    match std::env::var_os("MMANET_REFERENCE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mmanet_reference.json"),
    }
}

fn cases(name: &str) -> Vec<Value> {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the reference fixture {} ({e}); set MMANET_REFERENCE to its path",
            path.display()
        )
    });
    let root: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid JSON: {e}", path.display()));
    let list = root["cases"][name]
        .as_array()
        .unwrap_or_else(|| panic!("{} has no list `cases.{name}`", path.display()))
        .clone();
    assert!(!list.is_empty(), "`cases.{name}` is empty in {}", path.display());
    list
}

fn ints(v: &Value, key: &str) -> Vec<i64> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("missing `{key}`"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("`{key}` holds a non-integer {x}")))
        .collect()
}

fn float(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("missing number `{key}`"))
}

fn assert_close(got: f64, want: f64, what: &str) {
    let tol = 1e-9 * want.abs().max(1e-12);
    assert!((got - want).abs() <= tol, "{what}: got {got}, reference {want}");
}

#[test]
fn acer_cases_match_reference() {
    for (i, case) in cases("acer").iter().enumerate() {
        // The fixture uses 1 = bona fide (real), 0 = attack: the CASIA-SURF convention.
        let mut counts = BinaryCounts::new(LabelConvention::CASIA_SURF);
        counts.update(&ints(case, "labels"), &ints(case, "preds")).unwrap();
        assert!(counts.has_both_classes(), "case {i}");
        assert_close(counts.apcer(), float(case, "apcer"), &format!("acer[{i}].apcer"));
        assert_close(counts.bpcer(), float(case, "bpcer"), &format!("acer[{i}].bpcer"));
        assert_close(counts.acer(), float(case, "acer"), &format!("acer[{i}].acer"));
        assert_close(counts.accuracy(), float(case, "accuracy"), &format!("acer[{i}].accuracy"));
    }
}

#[test]
fn miou_cases_match_reference() {
    for (i, case) in cases("miou").iter().enumerate() {
        let num_classes = case["num_classes"].as_u64().expect("num_classes") as usize;
        let mut cm = ConfusionMatrix::new(num_classes).unwrap();
        cm.update(&ints(case, "labels"), &ints(case, "preds_class_index")).unwrap();
        let want: Vec<f64> =
            case["iou"].as_array().expect("iou").iter().map(|x| x.as_f64().unwrap()).collect();
        let got = cm.iou_per_class();
        assert_eq!(got.len(), want.len(), "miou[{i}]: number of classes");
        for (c, (g, w)) in got.iter().zip(&want).enumerate() {
            if *w == 0.0 {
                assert_eq!(*g, 0.0, "miou[{i}].iou[{c}]");
            } else {
                assert_close(*g, *w, &format!("miou[{i}].iou[{c}]"));
            }
        }
        assert_close(cm.miou(), float(case, "miou"), &format!("miou[{i}].miou"));
    }
}

#[test]
fn miou_split_accumulation_matches_reference() {
    // Accumulating the same pixels in two halves and merging gives the same mIoU.
    for case in cases("miou") {
        let num_classes = case["num_classes"].as_u64().unwrap() as usize;
        let (labels, preds) = (ints(&case, "labels"), ints(&case, "preds_class_index"));
        let half = labels.len() / 2;
        let mut a = ConfusionMatrix::new(num_classes).unwrap();
        let mut b = ConfusionMatrix::new(num_classes).unwrap();
        a.update(&labels[..half], &preds[..half]).unwrap();
        b.update(&labels[half..], &preds[half..]).unwrap();
        a.merge(&b).unwrap();
        assert_close(a.miou(), float(&case, "miou"), "merged miou");
    }
}
