//! Behaviour beyond the fixture: blocked Gram against a direct computation, MAR's empty weak
//! batch, the 2-D cross-entropy against a hand computation, median-frequency weights, shape errors.

mod common;

use common::{assert_close, values};
use mmanet_core::{ModalityMask, ModalitySet};
use mmanet_losses::{
    ClassPixelCounts, Fidelity, GramBlocks, LossError, MAR_SEGMENTATION_EMPTY, WeakSet,
    blocked_relation_error, f_blocked_relation_error, f_mad_classification, f_mar_classification,
    f_mar_segmentation, f_mar_segmentation_static, f_weighted_ce_2d, mar_classification_combos,
    mar_segmentation, multiscale_weighted_ce_2d, weighted_ce_2d,
};
use tch::{Device, Kind, Tensor};

const OPTS: (Kind, Device) = (Kind::Double, Device::Cpu);

/// Direct computation: the full N × N Gram, then each column block's rows normalised.
fn direct_relation_error(s: &Tensor, t: &Tensor, block: i64) -> Tensor {
    let n = s.size()[0];
    let (gs, gt) = (s.matmul(&s.tr()), t.matmul(&t.tr()));
    let norm = |g: &Tensor| g / g.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
    let mut e = Tensor::zeros([n], OPTS);
    let mut c0 = 0;
    while c0 < n {
        let cl = block.min(n - c0);
        let d = norm(&gs.narrow(1, c0, cl)) - norm(&gt.narrow(1, c0, cl));
        e += d.square().sum_dim_intlist(1, false, Kind::Double);
        c0 += cl;
    }
    e
}

#[test]
fn blocked_gram_equals_direct_computation() {
    tch::manual_seed(21);
    let n = 12;
    let s = Tensor::randn([n, 5], OPTS);
    let t = Tensor::randn([n, 5], OPTS);
    // 4 and 6 divide 12, 5 and 7 do not, 12 and 100 are one block; Halves = Size(6) for even N.
    for (blocks, block) in [
        (GramBlocks::Size(4), 4),
        (GramBlocks::Size(6), 6),
        (GramBlocks::Size(5), 5),
        (GramBlocks::Size(7), 7),
        (GramBlocks::Size(12), 12),
        (GramBlocks::Size(100), 12),
        (GramBlocks::Halves, 6),
    ] {
        let direct = values(&direct_relation_error(&s, &t, block));
        for row_chunk in [1, 5, 12, usize::MAX] {
            let tiled = f_blocked_relation_error(&s, &t, blocks, row_chunk).unwrap();
            assert_close(
                &values(&tiled),
                &direct,
                1e-12,
                1e-15,
                &format!("{blocks:?} rows {row_chunk}"),
            );
        }
    }
}

#[test]
fn halves_split_at_floor_of_half_for_odd_n() {
    assert_eq!(GramBlocks::Halves.ranges(9).unwrap(), vec![(0, 4), (4, 5)]);
    assert_eq!(GramBlocks::Halves.ranges(1).unwrap(), vec![(0, 1)]);
    assert_eq!(GramBlocks::Size(4).ranges(9).unwrap(), vec![(0, 4), (4, 4), (8, 1)]);
    assert!(GramBlocks::Size(0).ranges(9).is_err());
    tch::manual_seed(22);
    let s = Tensor::randn([9, 3], OPTS);
    let t = Tensor::randn([9, 3], OPTS);
    // Halves of 9 are [0,4) and [4,9): not Size(4) (three blocks) nor Size(5).
    let halves = values(&blocked_relation_error(&s, &t, GramBlocks::Halves));
    let mut direct = Vec::new();
    let (gs, gt) = (s.matmul(&s.tr()), t.matmul(&t.tr()));
    let norm = |g: &Tensor| g / g.norm_scalaropt_dim(2, [1i64], true).clamp_min(1e-12);
    for (c0, cl) in [(0, 4), (4, 5)] {
        direct.push(norm(&gs.narrow(1, c0, cl)) - norm(&gt.narrow(1, c0, cl)));
    }
    let direct = values(
        &(direct[0].square().sum_dim_intlist(1, false, Kind::Double)
            + direct[1].square().sum_dim_intlist(1, false, Kind::Double)),
    );
    assert_close(&halves, &direct, 1e-12, 1e-15, "halves of 9");
}

#[test]
fn mar_without_weak_samples_is_an_attached_zero() {
    let surf = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let weak = WeakSet::new(surf.clone(), vec![surf.parse_mask("R+I").unwrap()]).unwrap();
    let combos: Vec<ModalityMask> = surf.parse_masks(&["R+D+I", "D", "R+D"]).unwrap();
    tch::manual_seed(23);
    let logits = Tensor::randn([3, 2], OPTS).set_requires_grad(true);
    let targets = Tensor::from_slice(&[0i64, 1, 1]);
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let loss = mar_classification_combos(&logits, &targets, &combos, &weak, fidelity).unwrap();
        assert_eq!(loss.double_value(&[]), 0.0);
        assert!(loss.requires_grad(), "the zero must stay attached to the graph");
        loss.backward();
        assert!(values(&logits.grad()).iter().all(|g| *g == 0.0));
        let _ = logits.grad().zero_();
    }
}

/// Hand computation of ESANet's loss for one scale: Σ w_y (lse(z) − z_y) / Σ w_y over non-void.
fn hand_ce(logits: &[[f64; 3]], labels: &[i64], w: &[f64; 3]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (z, &y) in logits.iter().zip(labels) {
        if y == 0 {
            continue;
        }
        let c = (y - 1) as usize;
        let lse = z.iter().map(|v| v.exp()).sum::<f64>().ln();
        num += w[c] * (lse - z[c]);
        den += w[c];
    }
    if den > 0.0 { num / den } else { 0.0 }
}

#[test]
fn weighted_ce_2d_matches_hand_computation_and_all_void_is_zero() {
    tch::manual_seed(24);
    // B = 1, C = 3, H = 2, W = 3; pixel-major values for the hand computation.
    let logits = Tensor::randn([1, 3, 2, 3], OPTS).set_requires_grad(true);
    let labels = Tensor::from_slice(&[0i64, 1, 3, 2, 2, 0]).view([1, 2, 3]);
    let w = [0.5, 2.0, 1.25];
    let weights = Tensor::from_slice(&w);
    let pix: Vec<[f64; 3]> = {
        let v = values(&logits.permute([0, 2, 3, 1]).reshape([-1, 3]));
        v.chunks(3).map(|c| [c[0], c[1], c[2]]).collect()
    };
    let lab: Vec<i64> = Vec::<i64>::try_from(&labels.flatten(0, -1)).unwrap();
    let expected = hand_ce(&pix, &lab, &w);
    let loss = weighted_ce_2d(&logits, &labels, &weights);
    assert_close(&values(&loss), &[expected], 1e-12, 0.0, "weighted CE");
    // f32 logits, i32 labels.
    let loss32 = weighted_ce_2d(&logits.to_kind(Kind::Float), &labels.to_kind(Kind::Int), &weights);
    assert_close(&values(&loss32), &[expected], 1e-5, 0.0, "weighted CE f32");
    // Two scales: the sum; the second all void adds 0 (not NaN) and its gradient is 0.
    let small = Tensor::randn([1, 3, 1, 2], OPTS).set_requires_grad(true);
    let void = Tensor::zeros([1, 1, 2], (Kind::Int64, Device::Cpu));
    let total = multiscale_weighted_ce_2d(&[(&logits, &labels), (&small, &void)], &weights);
    assert_close(&values(&total), &[expected], 1e-12, 0.0, "multi-scale with an all-void scale");
    total.backward();
    assert!(values(&small.grad()).iter().all(|g| *g == 0.0));
    assert!(values(&logits.grad()).iter().any(|g| *g != 0.0));
}

#[test]
fn median_frequency_weights_follow_esanet() {
    // Hand example, C = 3 (+ void). Image A (4 px): labels 0,1,1,2. Image B (6 px): 1,3,3,3,3,0.
    // pixels: c1 = 3, c2 = 1, c3 = 4; image pixels with class: c1 = 4+6, c2 = 4, c3 = 6.
    // freq = [0.3, 0.25, 0.666…]; median = 0.3; w = [1, 1.2, 0.45].
    let mut counts = ClassPixelCounts::new(3);
    counts.add_image(&[0, 1, 1, 2]).unwrap();
    counts.add_image(&[1, 3, 3, 3, 3, 0]).unwrap();
    assert_eq!(counts.pixels_per_class(), &[2, 3, 1, 4]);
    assert_eq!(counts.image_pixels_with_class(), &[10, 10, 4, 6]);
    let w = counts.median_frequency_weights().unwrap();
    assert_close(&w, &[1.0, 1.2, 0.45], 1e-12, 0.0, "median frequency");
    assert!(counts.add_image(&[4]).is_err());
    // Even C: numpy's median averages the two middle values; a missing class is an error.
    let mut even = ClassPixelCounts::new(2);
    even.add_image(&[1, 2, 2, 2]).unwrap();
    // freq = [0.25, 0.75], median 0.5, w = [2, 2/3].
    assert_close(&even.median_frequency_weights().unwrap(), &[2.0, 2.0 / 3.0], 1e-12, 0.0, "even");
    let mut missing = ClassPixelCounts::new(2);
    missing.add_image(&[1, 1]).unwrap();
    assert!(missing.median_frequency_weights().is_err());
}

#[test]
fn shape_errors_are_reported() {
    let s = Tensor::zeros([4, 3], OPTS);
    let z = Tensor::zeros([3, 2], OPTS);
    let err = f_mad_classification(&s, &s, &z, Fidelity::Paper).unwrap_err();
    assert!(matches!(err, LossError::Shape { .. }), "{err}");
    let err = f_mad_classification(
        &s,
        &Tensor::zeros([4, 2], OPTS),
        &Tensor::zeros([4, 2], OPTS),
        Fidelity::Paper,
    )
    .unwrap_err();
    assert!(matches!(err, LossError::Shape { .. }), "{err}");
    let weak = rgbd_weak_d();
    let masks3 = Tensor::zeros([4, 3], OPTS);
    let targets = Tensor::zeros([4], (Kind::Int64, Device::Cpu));
    let err = f_mar_classification(
        &Tensor::zeros([4, 2], OPTS),
        &targets,
        &masks3,
        &weak,
        Fidelity::Paper,
    )
    .unwrap_err();
    assert!(matches!(err, LossError::Shape { .. }), "{err}");
    let err =
        f_mar_classification(&Tensor::zeros([4, 2], OPTS), &s, &masks3, &weak, Fidelity::Paper)
            .unwrap_err();
    assert!(matches!(err, LossError::Rank { .. } | LossError::Kind { .. }), "{err}");
    let err = f_weighted_ce_2d(
        &Tensor::zeros([1, 3, 2, 2], OPTS),
        &Tensor::zeros([1, 2, 3], (Kind::Int64, Device::Cpu)),
        &Tensor::ones([3], OPTS),
    )
    .unwrap_err();
    assert!(matches!(err, LossError::Shape { .. }), "{err}");
}

#[test]
fn weak_set_validates_and_round_trips_through_json() {
    let surf = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
    let ri: ModalityMask = surf.parse_mask("R+I").unwrap();
    assert!(WeakSet::new(surf.clone(), vec![]).is_err());
    assert!(WeakSet::new(surf.clone(), vec![ri, ri]).is_err());
    let rgbd = ModalitySet::from_names(["rgb", "depth"]).unwrap();
    assert!(WeakSet::new(rgbd, vec![ri]).is_err());
    let w = WeakSet::new(surf.clone(), surf.parse_masks(&["R+I", "R", "I"]).unwrap()).unwrap();
    let json = serde_json::to_string(&w).unwrap();
    assert_eq!(json, r#"{"modalities":["rgb","depth","ir"],"weak":["R+I","R","I"]}"#);
    let back: WeakSet = serde_json::from_str(&json).unwrap();
    assert_eq!(back, w);
    let t = w.presence_tensor(Kind::Float, Device::Cpu);
    assert_eq!(t.size(), [3, 3]);
    assert_eq!(
        Vec::<f32>::try_from(&t.flatten(0, -1)).unwrap(),
        vec![1., 0., 1., 1., 0., 0., 0., 0., 1.]
    );
}

#[test]
fn mar_segmentation_uses_only_weak_samples() {
    tch::manual_seed(25);
    let weak = rgbd_weak_d();
    // Samples: R+D, D, R, D -> weak samples 1 and 3.
    let masks = Tensor::from_slice2(&[[1.0f32, 1.], [0., 1.], [1., 0.], [0., 1.]]);
    let full = Tensor::randn([4, 3, 4, 4], OPTS).set_requires_grad(true);
    let half = Tensor::randn([4, 3, 2, 2], OPTS).set_requires_grad(true);
    let y_full = Tensor::randint_low(0, 4, [4, 4, 4], (Kind::Int64, Device::Cpu));
    let y_half = Tensor::randint_low(0, 4, [4, 2, 2], (Kind::Int64, Device::Cpu));
    let weights = Tensor::from_slice(&[1.0, 0.5, 2.0]);
    let loss = mar_segmentation(
        &[(&full, &y_full), (&half, &y_half)],
        &masks,
        &weak,
        &weights,
        Fidelity::Paper,
    );
    let idx = Tensor::from_slice(&[1i64, 3]);
    let expected = multiscale_weighted_ce_2d(
        &[
            (&full.index_select(0, &idx), &y_full.index_select(0, &idx)),
            (&half.index_select(0, &idx), &y_half.index_select(0, &idx)),
        ],
        &weights,
    );
    assert_close(&values(&loss), &values(&expected), 1e-12, 0.0, "weak subset");
    loss.backward();
    let g = full.grad();
    for (i, weak_sample) in [false, true, false, true].into_iter().enumerate() {
        let nonzero = values(&g.get(i as i64)).iter().any(|v| *v != 0.0);
        assert_eq!(nonzero, weak_sample, "sample {i} gradient");
    }
    // No weak sample: attached 0 (paper) or the released code's 1e-16.
    let none = Tensor::from_slice2(&[[1.0f32, 1.], [1., 0.], [1., 0.], [1., 1.]]);
    let zero = mar_segmentation(&[(&full, &y_full)], &none, &weak, &weights, Fidelity::Paper);
    assert_eq!(zero.double_value(&[]), 0.0);
    assert!(zero.requires_grad());
    let tiny =
        mar_segmentation(&[(&full, &y_full)], &none, &weak, &weights, Fidelity::ReferenceCode);
    assert_eq!(tiny.double_value(&[]), MAR_SEGMENTATION_EMPTY);
}

#[test]
fn the_static_segmentation_mar_equals_the_indexed_one() {
    tch::manual_seed(26);
    let weak = rgbd_weak_d();
    let full = Tensor::randn([4, 3, 4, 4], OPTS).set_requires_grad(true);
    let half = Tensor::randn([4, 3, 2, 2], OPTS).set_requires_grad(true);
    let y_full = Tensor::randint_low(0, 4, [4, 4, 4], (Kind::Int64, Device::Cpu));
    let y_half = Tensor::randint_low(0, 4, [4, 2, 2], (Kind::Int64, Device::Cpu));
    let weights = Tensor::from_slice(&[1.0, 0.5, 2.0]);
    let scales = [(&full, &y_full), (&half, &y_half)];
    // Weak samples 1 and 3; then none.
    let some = Tensor::from_slice2(&[[1.0f32, 1.], [0., 1.], [1., 0.], [0., 1.]]);
    let none = Tensor::from_slice2(&[[1.0f32, 1.], [1., 0.], [1., 0.], [1., 1.]]);
    for masks in [&some, &none] {
        for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
            let indexed = f_mar_segmentation(&scales, masks, &weak, &weights, fidelity).unwrap();
            let fixed =
                f_mar_segmentation_static(&scales, masks, &weak, &weights, fidelity).unwrap();
            assert_close(&values(&fixed), &values(&indexed), 1e-12, 0.0, "value");
            let g_indexed = Tensor::run_backward(&[&indexed], &[&full, &half], false, false);
            let g_fixed = Tensor::run_backward(&[&fixed], &[&full, &half], false, false);
            for (a, b) in g_fixed.iter().zip(&g_indexed) {
                assert_close(&values(a), &values(b), 1e-12, 0.0, "gradient");
            }
        }
    }
}

#[test]
fn segmentation_config_serialises_with_reference_defaults() {
    use mmanet_losses::SegMadConfig;
    let cfg: SegMadConfig = serde_json::from_str(r#"{"blocks": {"size": 4800}}"#).unwrap();
    assert_eq!(cfg.blocks, GramBlocks::Size(4800));
    assert_eq!((cfg.pool_above, cfg.pool_to), (30, [30, 40]));
    let back: SegMadConfig =
        serde_json::from_str(&serde_json::to_string(&SegMadConfig::default()).unwrap()).unwrap();
    assert_eq!(back, SegMadConfig::default());
    assert_eq!(serde_json::to_string(&GramBlocks::Halves).unwrap(), r#""halves""#);
}

/// The RGB-D weak set `[D]`.
fn rgbd_weak_d() -> WeakSet {
    let rgbd = ModalitySet::from_names(["rgb", "depth"]).unwrap();
    WeakSet::new(rgbd.clone(), vec![rgbd.parse_mask("D").unwrap()]).unwrap()
}
