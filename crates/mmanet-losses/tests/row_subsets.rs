//! MAD and SP on the rows the teacher sees completely, with static shapes, equal MAD and SP on
//! the sub-batch selected by index.

use mmanet_core::Fidelity;
use mmanet_losses::{f_mad_classification, f_mad_classification_rows, f_sp_loss, f_sp_loss_rows};
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
