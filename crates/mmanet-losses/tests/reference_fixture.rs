//! Every case of `fixtures/mmanet_reference.json` (in the repository) that this crate computes,
//! in f64 (relative 1e-9) and f32 (relative 1e-4).
//!
//! Provenance: the fixture's inputs and expected values are written by `fixtures/make_reference.py`
//! (PyTorch, float64, the formulas of `docs/method.md`); `fixtures/README.md` lists the cases and
//! the command that regenerates the file. Set `MMANET_REFERENCE` to check another copy of it.

mod common;

use std::path::{Path, PathBuf};

use common::{assert_close, json_values, tensor, values};
use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_losses::{
    ClassificationMiner, Fidelity, SegMadConfig, WeakSet, entropy_weights, mad_classification,
    mad_segmentation, mar_classification, mar_classification_combos, per_sample_cross_entropy,
    softmax_entropy, sp_loss, weak_sample_mask,
};
use serde_json::Value;
use tch::{Kind, Tensor};

fn fixture_path() -> PathBuf {
    match std::env::var_os("MMANET_REFERENCE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/mmanet_reference.json"),
    }
}

fn cases() -> Value {
    let path = fixture_path();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read the reference fixture {} ({e}); set MMANET_REFERENCE to its path",
            path.display()
        )
    });
    let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!("the reference fixture {} is not valid JSON: {e}", path.display())
    });
    json["cases"].clone()
}

fn list<'a>(cases: &'a Value, name: &str) -> &'a [Value] {
    cases[name].as_array().unwrap_or_else(|| panic!("fixture has no case list `{name}`"))
}

/// (kind, relative tolerance) pairs every case is checked in.
const PRECISIONS: [(Kind, f64); 2] = [(Kind::Double, 1e-9), (Kind::Float, 1e-4)];

#[test]
fn mad_classification_matches_reference() {
    let cases = cases();
    let examples = list(&cases, "mad_classification");
    assert!(!examples.is_empty());
    for (i, ex) in examples.iter().enumerate() {
        for (kind, rtol) in PRECISIONS {
            let s = tensor(&ex["student_feat"], kind);
            let t = tensor(&ex["teacher_feat"], kind);
            let z = tensor(&ex["teacher_logits"], kind);
            let h = softmax_entropy(&z, 1);
            let what = |w: &str| format!("mad_classification[{i}] {kind:?} {w}");
            assert_close(&values(&h), &json_values(&ex["entropy"]), rtol, 0.0, &what("entropy"));
            let w = entropy_weights(&h);
            assert_close(&values(&w), &json_values(&ex["weights"]), rtol, 0.0, &what("weights"));
            let sp = sp_loss(&s, &t);
            assert_close(&values(&sp), &json_values(&ex["sp"]), rtol, 0.0, &what("sp"));
            let row = mad_classification(&s, &t, &z, Fidelity::Paper);
            assert_close(
                &values(&row),
                &json_values(&ex["mad_row_weighted"]),
                rtol,
                0.0,
                &what("paper"),
            );
            let col = mad_classification(&s, &t, &z, Fidelity::ReferenceCode);
            let expected = json_values(&ex["mad_column_weighted"]);
            assert_close(&values(&col), &expected, rtol, 0.0, &what("reference-code"));
        }
    }
}

#[test]
fn entropy_of_saturated_teacher_matches_reference_and_is_finite() {
    let cases = cases();
    let ex = &cases["entropy_saturated"];
    // f64 keeps the denormal-free tiny entropies (1e-42, 1e-68); f32 flushes them towards 0, so
    // it is compared with an absolute tolerance far below any f32 entropy of interest.
    for (kind, rtol, atol) in [(Kind::Double, 1e-9, 0.0), (Kind::Float, 1e-4, 1e-30)] {
        let z = tensor(&ex["teacher_logits"], kind);
        let h = softmax_entropy(&z, 1);
        let w = entropy_weights(&h);
        assert!(values(&h).iter().chain(&values(&w)).all(|x| x.is_finite()), "{kind:?}: NaN");
        assert_close(&values(&h), &json_values(&ex["entropy"]), rtol, atol, "saturated entropy");
        assert_close(&values(&w), &json_values(&ex["weights"]), rtol, atol, "saturated weights");
    }
}

fn surf_weak_set(ex: &Value) -> WeakSet {
    let rows: Vec<Vec<bool>> = ex["weak_set"]
        .as_array()
        .expect("weak_set rows")
        .iter()
        .map(|r| json_values(r).into_iter().map(|b| b != 0.0).collect())
        .collect();
    WeakSet::from_presence_rows(
        ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
        &rows,
    )
    .expect("valid weak set")
}

#[test]
fn mar_classification_matches_reference() {
    let cases = cases();
    let examples = list(&cases, "mar_classification");
    assert!(!examples.is_empty());
    let surf = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    for (i, ex) in examples.iter().enumerate() {
        let weak = surf_weak_set(ex);
        let labels = tensor(&ex["labels"], Kind::Int64);
        let combos: Vec<ModalityMask> = ex["masks"]
            .as_array()
            .expect("masks")
            .iter()
            .map(|r| {
                let bits: Vec<bool> = json_values(r).into_iter().map(|b| b != 0.0).collect();
                surf.mask_from_presence(&bits).expect("non-empty mask")
            })
            .collect();
        for (kind, rtol) in PRECISIONS {
            let what = |w: &str| format!("mar_classification[{i}] {kind:?} {w}");
            let logits = tensor(&ex["aux_logits"], kind);
            let masks = tensor(&ex["masks"], kind);
            let ce = per_sample_cross_entropy(&logits, &labels);
            assert_close(&values(&ce), &json_values(&ex["per_sample_ce"]), rtol, 0.0, &what("ce"));
            let n_weak = weak_sample_mask(&masks, &weak).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(n_weak as f64, json_values(&ex["n_weak"])[0], "{}", what("n_weak"));
            for (fidelity, key) in [
                (Fidelity::Paper, "mar_per_sample"),
                (Fidelity::ReferenceCode, "mar_reference_code"),
            ] {
                let expected = json_values(&ex[key]);
                let mar = mar_classification(&logits, &labels, &masks, &weak, fidelity);
                assert_close(&values(&mar), &expected, rtol, 0.0, &what(key));
                let mar =
                    mar_classification_combos(&logits, &labels, &combos, &weak, fidelity).unwrap();
                assert_close(&values(&mar), &expected, rtol, 0.0, &what(key));
            }
        }
    }
}

#[test]
fn mar_mining_matches_reference() {
    let cases = cases();
    let examples = list(&cases, "mar_mining");
    assert!(!examples.is_empty());
    for (i, ex) in examples.iter().enumerate() {
        let num_classes = ex["num_classes"].as_u64().expect("num_classes") as usize;
        let surf = ModalitySet::from_names(["rgb", "depth", "ir"]).unwrap();
        let mut miner = ClassificationMiner::new(surf.clone(), num_classes).unwrap();
        let preds = |epoch: &Value, key: &str| -> Vec<i64> {
            json_values(&epoch[key]).into_iter().map(|x| x as i64).collect()
        };
        let epochs = ex["epochs_predictions"].as_array().expect("epochs");
        assert!(!epochs.is_empty());
        for epoch in epochs {
            let full = preds(epoch, "RDI");
            let per: Vec<Vec<i64>> = miner
                .candidates()
                .iter()
                .map(|c| preds(epoch, &surf.format(*c).replace('+', "")))
                .collect();
            let per_refs: Vec<&[i64]> = per.iter().map(Vec::as_slice).collect();
            miner.add_epoch(&full, &per_refs).unwrap();
        }
        let scores = ex["scores"].as_object().expect("scores");
        assert_eq!(scores.len(), miner.candidates().len());
        for (name, expected) in scores {
            let mask: ModalityMask = surf.parse_mask(name).unwrap();
            let k = miner.candidates().iter().position(|c| *c == mask).expect("candidate");
            let what = format!("mar_mining[{i}] score {name}");
            assert_close(&[miner.scores()[k]], &json_values(expected), 1e-9, 0.0, &what);
        }
        let weakest = surf.parse_mask(ex["weakest_pair"].as_str().expect("weakest")).unwrap();
        assert_eq!(miner.weakest(), Some(weakest), "mar_mining[{i}] weakest");
        let weak = miner.weak_set().unwrap();
        assert_eq!(weak.len(), 3);
        assert_eq!(weak.combos()[0], weakest);
    }
}

#[test]
fn mad_segmentation_one_scale_matches_reference() {
    let cases = cases();
    let examples = list(&cases, "mad_segmentation_one_scale");
    assert!(!examples.is_empty());
    let cfg = SegMadConfig::default();
    for (i, ex) in examples.iter().enumerate() {
        for (kind, rtol) in PRECISIONS {
            let t = tensor(&ex["teacher_feat"], kind);
            let p = tensor(&ex["teacher_map"], kind);
            let expected = json_values(&ex["mad"]);
            // Without a gradient (plain tiled forward) and with one (the surrogate path).
            for requires_grad in [false, true] {
                let s = tensor(&ex["student_feat"], kind).set_requires_grad(requires_grad);
                let mad = mad_segmentation(&[(&s, &t)], &p, &cfg);
                let what = format!("mad_segmentation[{i}] {kind:?} grad={requires_grad}");
                assert_close(&values(&mad), &expected, rtol, 0.0, &what);
                assert_eq!(mad.requires_grad(), requires_grad, "{what}: graph attachment");
            }
            // One row per tile must not change the value either.
            let s = tensor(&ex["student_feat"], kind);
            let tiny = SegMadConfig { row_chunk: 1, ..cfg };
            let mad = mad_segmentation(&[(&s, &t)], &p, &tiny);
            assert_close(&values(&mad), &expected, rtol, 0.0, "mad_segmentation row_chunk 1");
        }
    }
}

#[test]
fn fixture_teacher_maps_are_unpooled() {
    // The fixture's maps are at most 30 rows high, so the (30, 40) pooling must not apply; a
    // taller fixture would silently test something else.
    let cases = cases();
    for ex in list(&cases, "mad_segmentation_one_scale") {
        let s = tensor(&ex["student_feat"], Kind::Double);
        assert!(s.size()[2] <= 30);
        let p: Tensor = tensor(&ex["teacher_map"], Kind::Double);
        assert_eq!(s.size()[2..], p.size()[2..]);
    }
}
