//! Analytic gradients against central finite differences (f64), and the teacher's isolation.

mod common;

use common::{assert_close, values};
use mmanet_core::ModalitySet;
use mmanet_losses::{
    Fidelity, GramBlocks, SegMadConfig, WeakSet, blocked_relation_error, entropy_weights,
    mad_classification, mad_segmentation, mar_classification, pixel_rows, softmax_entropy,
};
use tch::{Device, Kind, Tensor};

const OPTS: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Central differences of the scalar `f` at `x` (step 1e-6; error O(1e-12) for smooth f).
fn numeric_grad(x: &Tensor, f: &dyn Fn(&Tensor) -> f64) -> Vec<f64> {
    let base = values(x);
    let shape = x.size();
    let eps = 1e-6;
    (0..base.len())
        .map(|i| {
            let mut plus = base.clone();
            plus[i] += eps;
            let mut minus = base.clone();
            minus[i] -= eps;
            let at = |v: Vec<f64>| f(&Tensor::from_slice(&v).view(shape.as_slice()));
            (at(plus) - at(minus)) / (2.0 * eps)
        })
        .collect()
}

fn analytic_grad(x: &Tensor, f: &dyn Fn(&Tensor) -> Tensor) -> Vec<f64> {
    let leaf = x.detach().set_requires_grad(true);
    f(&leaf).backward();
    values(&leaf.grad())
}

#[test]
fn mad_classification_student_gradient_matches_finite_differences() {
    tch::manual_seed(11);
    let s = Tensor::randn([4, 3, 2, 1], OPTS);
    let t = Tensor::randn([4, 3, 2, 1], OPTS);
    let z = Tensor::randn([4, 3], OPTS);
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let f = |x: &Tensor| mad_classification(x, &t, &z, fidelity);
        let analytic = analytic_grad(&s, &f);
        let numeric = numeric_grad(&s, &|x| f(x).double_value(&[]));
        assert!(analytic.iter().any(|g| g.abs() > 1e-4), "gradient should not vanish");
        assert_close(&analytic, &numeric, 1e-5, 1e-8, &format!("MAD grad {fidelity}"));
    }
}

#[test]
fn mar_classification_aux_gradient_matches_finite_differences() {
    tch::manual_seed(12);
    let logits = Tensor::randn([6, 3], OPTS);
    let targets = Tensor::from_slice(&[0i64, 2, 1, 1, 0, 2]);
    // R+I, I, R+D+I, D, R+I, R: samples 0, 1, 4 are weak under [R+I, R, I]; so is 5.
    let masks = Tensor::from_slice2(&[
        [1.0, 0., 1.],
        [0., 0., 1.],
        [1., 1., 1.],
        [0., 1., 0.],
        [1., 0., 1.],
        [1., 0., 0.],
    ]);
    let weak = WeakSet::from_presence_rows(
        ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
        &[vec![true, false, true], vec![true, false, false], vec![false, false, true]],
    )
    .unwrap();
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let f = |x: &Tensor| mar_classification(x, &targets, &masks, &weak, fidelity);
        let analytic = analytic_grad(&logits, &f);
        let numeric = numeric_grad(&logits, &|x| f(x).double_value(&[]));
        assert_close(&analytic, &numeric, 1e-5, 1e-8, &format!("MAR grad {fidelity}"));
        // Paper: non-weak samples 2 and 3 get no gradient; reference code: every sample does.
        let row_norm = |r: usize| analytic[3 * r..3 * r + 3].iter().map(|g| g.abs()).sum::<f64>();
        match fidelity {
            Fidelity::Paper => {
                assert!(row_norm(2) == 0.0 && row_norm(3) == 0.0 && row_norm(0) > 0.0)
            }
            Fidelity::ReferenceCode => assert!((0..6).all(|r| row_norm(r) > 0.0)),
        }
    }
}

#[test]
fn teacher_gets_no_gradient() {
    tch::manual_seed(13);
    let s = Tensor::randn([4, 5], OPTS).set_requires_grad(true);
    let t = Tensor::randn([4, 5], OPTS).set_requires_grad(true);
    let z = Tensor::randn([4, 2], OPTS).set_requires_grad(true);
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        mad_classification(&s, &t, &z, fidelity).backward();
    }
    assert!(s.grad().defined());
    assert!(!t.grad().defined(), "teacher features received a gradient");
    assert!(!z.grad().defined(), "teacher logits received a gradient");

    let ss = Tensor::randn([2, 3, 4, 5], OPTS).set_requires_grad(true);
    let ts = Tensor::randn([2, 3, 4, 5], OPTS).set_requires_grad(true);
    let ps = Tensor::randn([2, 6, 2, 3], OPTS).set_requires_grad(true);
    mad_segmentation(&[(&ss, &ts)], &ps, &SegMadConfig::default()).backward();
    assert!(ss.grad().defined());
    assert!(!ts.grad().defined(), "segmentation teacher features received a gradient");
    assert!(!ps.grad().defined(), "segmentation teacher prediction received a gradient");
}

/// The same loss through plain autograd on the tiled relation (keeps every tile).
fn seg_mad_autograd(s: &Tensor, t: &Tensor, p: &Tensor, cfg: &SegMadConfig) -> Tensor {
    let (xs, xt, w) = pixel_rows(s, t, p, cfg).unwrap();
    (blocked_relation_error(&xs, &xt, cfg.blocks) * w).sum(Kind::Double)
}

#[test]
fn segmentation_mad_gradient_matches_finite_differences() {
    tch::manual_seed(14);
    // N = 2·2·3 = 12 pixels, odd block size 5 and row chunks of 4: tiles of every shape.
    let s = Tensor::randn([2, 3, 2, 3], OPTS);
    let t = Tensor::randn([2, 3, 2, 3], OPTS);
    let p = Tensor::randn([2, 4, 1, 3], OPTS);
    for blocks in [GramBlocks::Halves, GramBlocks::Size(5)] {
        let cfg = SegMadConfig { blocks, row_chunk: 4, ..SegMadConfig::default() };
        let f = |x: &Tensor| mad_segmentation(&[(x, &t)], &p, &cfg);
        let analytic = analytic_grad(&s, &f);
        let numeric = numeric_grad(&s, &|x| f(x).double_value(&[]));
        assert!(analytic.iter().any(|g| g.abs() > 1e-4));
        assert_close(&analytic, &numeric, 1e-5, 1e-8, &format!("seg MAD grad {blocks:?}"));
    }
}

#[test]
fn segmentation_mad_bounded_memory_gradient_equals_autograd_with_pooling() {
    tch::manual_seed(15);
    // H = 32 > 30: the maps are pooled to (30, 40), N = 1200; two scales summed.
    let s1 = Tensor::randn([1, 4, 32, 44], OPTS);
    let t1 = Tensor::randn([1, 4, 32, 44], OPTS);
    let s2 = Tensor::randn([1, 3, 5, 6], OPTS);
    let t2 = Tensor::randn([1, 3, 5, 6], OPTS);
    let p = Tensor::randn([1, 7, 10, 11], OPTS);
    let cfg = SegMadConfig { row_chunk: 500, ..SegMadConfig::default() };
    let (a1, a2) = (s1.detach().set_requires_grad(true), s2.detach().set_requires_grad(true));
    let loss = mad_segmentation(&[(&a1, &t1), (&a2, &t2)], &p, &cfg);
    loss.backward();
    let (b1, b2) = (s1.detach().set_requires_grad(true), s2.detach().set_requires_grad(true));
    let reference = seg_mad_autograd(&b1, &t1, &p, &cfg) + seg_mad_autograd(&b2, &t2, &p, &cfg);
    reference.backward();
    assert_close(&values(&loss), &values(&reference), 1e-10, 0.0, "value");
    assert_close(&values(&a1.grad()), &values(&b1.grad()), 1e-8, 1e-14, "pooled scale grad");
    assert_close(&values(&a2.grad()), &values(&b2.grad()), 1e-8, 1e-14, "small scale grad");
}

#[test]
fn segmentation_nan_becomes_zero_with_zero_gradient() {
    tch::manual_seed(16);
    let s = Tensor::randn([1, 2, 3, 3], OPTS);
    let _ = s.get(0).get(0).get(0).get(0).fill_(f64::NAN);
    let s = s.set_requires_grad(true);
    let t = Tensor::randn([1, 2, 3, 3], OPTS);
    let p = Tensor::randn([1, 3, 3, 3], OPTS);
    let loss = mad_segmentation(&[(&s, &t)], &p, &SegMadConfig::default());
    assert_eq!(loss.double_value(&[]), 0.0);
    loss.backward();
    assert!(values(&s.grad()).iter().all(|g| *g == 0.0), "NaN loss must give a zero gradient");
}

#[test]
fn saturated_teacher_gives_zero_mad_not_nan() {
    tch::manual_seed(17);
    let s = Tensor::randn([3, 4], OPTS).set_requires_grad(true);
    let t = Tensor::randn([3, 4], OPTS);
    let z = Tensor::from_slice2(&[[900.0, -900.0], [-900.0, 900.0], [1e4, 0.0]]);
    let h = softmax_entropy(&z, 1);
    assert!(values(&entropy_weights(&h)).iter().all(|w| *w == 0.0));
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let loss = mad_classification(&s, &t, &z, fidelity);
        assert_eq!(loss.double_value(&[]), 0.0);
        loss.backward();
        assert!(values(&s.grad()).iter().all(|g| g.is_finite()));
    }
}
