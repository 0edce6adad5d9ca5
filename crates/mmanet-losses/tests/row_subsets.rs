//! MAD (classification and segmentation) and SP on the rows the teacher sees completely, with
//! static shapes, equal MAD and SP on the sub-batch selected by index.

use mmanet_core::Fidelity;
use mmanet_losses::{
    GramBlocks, SegMadConfig, f_mad_classification, f_mad_classification_rows, f_mad_segmentation,
    f_mad_segmentation_rows, f_sp_loss, f_sp_loss_rows,
};
use tch::{Device, Kind, Tensor};

const OPTS: (Kind, Device) = (Kind::Double, Device::Cpu);

#[test]
fn masked_rows_equal_the_index_selected_sub_batch() {
    tch::manual_seed(41);
    let s = Tensor::randn([6, 4, 2, 2], OPTS).set_requires_grad(true);
    let t = Tensor::randn([6, 4, 2, 2], OPTS);
    let z = Tensor::randn([6, 3], OPTS);
    let keep = [1.0f64, 0.0, 1.0, 1.0, 0.0, 1.0];
    let rows = Tensor::from_slice(&keep);
    let idx = Tensor::from_slice(&[0i64, 2, 3, 5]);
    for fidelity in [Fidelity::Paper, Fidelity::ReferenceCode] {
        let masked = f_mad_classification_rows(&s, &t, &z, fidelity, &rows).unwrap();
        let sub = f_mad_classification(
            &s.index_select(0, &idx),
            &t.index_select(0, &idx),
            &z.index_select(0, &idx),
            fidelity,
        )
        .unwrap();
        let (a, b) = (masked.double_value(&[]), sub.double_value(&[]));
        assert!((a - b).abs() <= 1e-12 * b.abs().max(1.0), "{fidelity}: {a} vs {b}");
        // The same gradient on the kept rows, none on the others.
        let g_masked = Tensor::run_backward(&[&masked], &[&s], false, false).remove(0);
        let g_sub = Tensor::run_backward(&[&sub], &[&s], false, false).remove(0);
        assert!(g_masked.allclose(&g_sub, 1e-10, 1e-12, false), "{fidelity}: gradients");
        assert_eq!(g_masked.get(1).abs().sum(Kind::Double).double_value(&[]), 0.0);
    }
    let sp = f_sp_loss_rows(&s, &t, &rows).unwrap().double_value(&[]);
    let sub = f_sp_loss(&s.index_select(0, &idx), &t.index_select(0, &idx)).unwrap();
    assert!((sp - sub.double_value(&[])).abs() < 1e-12);
}

#[test]
fn fewer_than_two_rows_give_an_exact_zero_with_a_graph() {
    tch::manual_seed(42);
    let s = Tensor::randn([4, 8], OPTS).set_requires_grad(true);
    let t = Tensor::randn([4, 8], OPTS);
    let z = Tensor::randn([4, 2], OPTS);
    for keep in [[0.0f64, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]] {
        let rows = Tensor::from_slice(&keep);
        let mad = f_mad_classification_rows(&s, &t, &z, Fidelity::Paper, &rows).unwrap();
        assert_eq!(mad.double_value(&[]), 0.0);
        assert!(mad.requires_grad());
        let sp = f_sp_loss_rows(&s, &t, &rows).unwrap();
        assert_eq!(sp.double_value(&[]), 0.0);
        assert!(sp.requires_grad());
    }
    let wrong = Tensor::from_slice(&[1.0f64, 1.0]);
    assert!(f_mad_classification_rows(&s, &t, &z, Fidelity::Paper, &wrong).is_err());
}

/// Two tapped scales of a 5-sample batch (student maps require a gradient) and the teacher's
/// prediction map.
fn seg_batch() -> (Vec<Tensor>, Vec<Tensor>, Tensor) {
    tch::manual_seed(43);
    let students = vec![
        Tensor::randn([5, 4, 6, 8], OPTS).set_requires_grad(true),
        Tensor::randn([5, 3, 3, 4], OPTS).set_requires_grad(true),
    ];
    let teachers = vec![Tensor::randn([5, 4, 6, 8], OPTS), Tensor::randn([5, 3, 3, 4], OPTS)];
    (students, teachers, Tensor::randn([5, 3, 6, 8], OPTS))
}

fn seg_mad(
    s: &[Tensor],
    t: &[Tensor],
    pred: &Tensor,
    cfg: &SegMadConfig,
    rows: Option<&Tensor>,
) -> Tensor {
    let pairs: Vec<(&Tensor, &Tensor)> = s.iter().zip(t).collect();
    match rows {
        Some(r) => f_mad_segmentation_rows(&pairs, pred, cfg, r).unwrap(),
        None => f_mad_segmentation(&pairs, pred, cfg).unwrap(),
    }
}

#[test]
fn segmentation_mad_on_kept_samples_equals_the_index_selected_sub_batch() {
    let (s, t, pred) = seg_batch();
    let rows = Tensor::from_slice(&[1.0f64, 0.0, 1.0, 1.0, 0.0]);
    let idx = Tensor::from_slice(&[0i64, 2, 3]);
    // 3 kept samples x 48 pixels: the halves split inside sample 2 of the sub-batch, so block
    // membership must follow the kept pixels' ranks, not their batch positions.
    for blocks in [GramBlocks::Halves, GramBlocks::Size(50), GramBlocks::Size(1000)] {
        for row_chunk in [2048, 17] {
            let cfg = SegMadConfig { blocks, row_chunk, ..SegMadConfig::default() };
            let masked = seg_mad(&s, &t, &pred, &cfg, Some(&rows));
            let sub_s: Vec<Tensor> = s.iter().map(|x| x.index_select(0, &idx)).collect();
            let sub_t: Vec<Tensor> = t.iter().map(|x| x.index_select(0, &idx)).collect();
            let sub = seg_mad(&sub_s, &sub_t, &pred.index_select(0, &idx), &cfg, None);
            let (a, b) = (masked.double_value(&[]), sub.double_value(&[]));
            assert!(b > 0.0 && (a - b).abs() <= 1e-10 * b, "{blocks:?}/{row_chunk}: {a} vs {b}");
            let inputs: Vec<&Tensor> = s.iter().collect();
            let g_masked = Tensor::run_backward(&[&masked], &inputs, false, false);
            let g_sub = Tensor::run_backward(&[&sub], &inputs, false, false);
            for (gm, gs) in g_masked.iter().zip(&g_sub) {
                assert!(gm.allclose(gs, 1e-9, 1e-12, false), "{blocks:?}/{row_chunk}: gradients");
                for dropped in [1, 4] {
                    assert_eq!(gm.get(dropped).abs().sum(Kind::Double).double_value(&[]), 0.0);
                }
            }
        }
    }
}

#[test]
fn segmentation_mad_rows_all_kept_or_none_kept() {
    let (s, t, pred) = seg_batch();
    let cfg = SegMadConfig { row_chunk: 31, ..SegMadConfig::default() };
    let all = seg_mad(&s, &t, &pred, &cfg, Some(&Tensor::ones([5], OPTS)));
    let plain = seg_mad(&s, &t, &pred, &cfg, None);
    let (a, b) = (all.double_value(&[]), plain.double_value(&[]));
    assert!(b > 0.0 && (a - b).abs() <= 1e-10 * b, "{a} vs {b}");
    let none = seg_mad(&s, &t, &pred, &cfg, Some(&Tensor::zeros([5], OPTS)));
    assert_eq!(none.double_value(&[]), 0.0);
    assert!(none.requires_grad());
    let pairs: Vec<(&Tensor, &Tensor)> = s.iter().zip(&t).collect();
    let wrong = Tensor::ones([4], OPTS);
    assert!(f_mad_segmentation_rows(&pairs, &pred, &cfg, &wrong).is_err());
}
