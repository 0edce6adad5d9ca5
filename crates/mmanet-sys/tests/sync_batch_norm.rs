//! SyncBatchNorm's arithmetic on one rank equals libtorch's training-mode batch norm: output,
//! running statistics and the gradients of input, weight and bias (the two-rank equality with
//! one process on whole batches is `crates/mmanet/tests/distributed.rs`).

use std::time::Duration;

use mmanet_sys::ProcessGroup;
use tch::{Kind, Tensor};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn one_rank_sync_batch_norm_equals_batch_norm_forward_and_backward() {
    tch::manual_seed(3);
    let pg = ProcessGroup::new(0, 1, "127.0.0.1", free_port(), Duration::from_secs(20)).unwrap();
    let sync = pg.sync_batch_norm().unwrap();
    for shape in [vec![6i64, 4, 3, 5], vec![7, 4]] {
        let x0 = Tensor::randn(shape.as_slice(), (Kind::Float, tch::Device::Cpu)) * 3.0 + 1.0;
        let w0 = Tensor::randn([4], (Kind::Float, tch::Device::Cpu));
        let b0 = Tensor::randn([4], (Kind::Float, tch::Device::Cpu));
        let dy = Tensor::randn(shape.as_slice(), (Kind::Float, tch::Device::Cpu));
        let run = |use_sync: bool| {
            let x = x0.copy().set_requires_grad(true);
            let w = w0.copy().set_requires_grad(true);
            let b = b0.copy().set_requires_grad(true);
            let rm = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)) + 0.5;
            let rv = Tensor::ones([4], (Kind::Float, tch::Device::Cpu)) * 2.0;
            let y = if use_sync {
                sync.forward(&x, &w, &b, &rm, &rv, None, 0.1, 1e-5).unwrap()
            } else {
                Tensor::batch_norm(
                    &x,
                    Some(&w),
                    Some(&b),
                    Some(&rm),
                    Some(&rv),
                    true,
                    0.1,
                    1e-5,
                    false,
                )
            };
            (&y * &dy).sum(Kind::Float).backward();
            (y.detach(), rm, rv, x.grad(), w.grad(), b.grad())
        };
        let (ya, rma, rva, gxa, gwa, gba) = run(true);
        let (yb, rmb, rvb, gxb, gwb, gbb) = run(false);
        for (name, a, b) in [
            ("output", &ya, &yb),
            ("running_mean", &rma, &rmb),
            ("running_var", &rva, &rvb),
            ("grad x", &gxa, &gxb),
            ("grad weight", &gwa, &gwb),
            ("grad bias", &gba, &gbb),
        ] {
            let d = max_diff(a, b);
            assert!(d < 1e-4, "{shape:?} {name}: max difference {d:e}");
        }
    }
}

/// Two ranks (two threads, each with its own group over 127.0.0.1) on halves of a batch equal
/// batch norm on the whole batch: outputs and input gradients row for row, running statistics,
/// and the weight's and bias's gradients summed over the ranks.
#[test]
fn two_rank_sync_batch_norm_equals_batch_norm_on_the_whole_batch() {
    tch::manual_seed(5);
    let opts = (Kind::Float, tch::Device::Cpu);
    let x = Tensor::randn([8, 4, 3, 3], opts) * 2.0 - 0.5;
    let dy = Tensor::randn([8, 4, 3, 3], opts);
    let w0 = Tensor::randn([4], opts);
    let b0 = Tensor::randn([4], opts);
    let port = free_port();
    // One rank: rows rank, rank + 2, ...; returns (y, dx, dw, db, running mean, running var).
    let rank = |r: usize, x: Tensor, dy: Tensor, w0: Tensor, b0: Tensor| {
        std::thread::spawn(move || {
            let pg = ProcessGroup::new(r, 2, "127.0.0.1", port, Duration::from_secs(20)).unwrap();
            let sync = pg.sync_batch_norm().unwrap();
            let rows = Tensor::arange_start_step(r as i64, 8, 2, (Kind::Int64, tch::Device::Cpu));
            let xr = x.index_select(0, &rows).set_requires_grad(true);
            let dyr = dy.index_select(0, &rows);
            let w = w0.set_requires_grad(true);
            let b = b0.set_requires_grad(true);
            let rm = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu));
            let rv = Tensor::ones([4], (Kind::Float, tch::Device::Cpu));
            let y = sync.forward(&xr, &w, &b, &rm, &rv, None, 0.1, 1e-5).unwrap();
            (&y * &dyr).sum(Kind::Float).backward();
            let out: Vec<Vec<f32>> = [y.detach(), xr.grad(), w.grad(), b.grad(), rm, rv]
                .iter()
                .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
                .collect();
            drop(sync);
            drop(pg);
            out
        })
    };
    let h0 = rank(0, x.copy(), dy.copy(), w0.copy(), b0.copy());
    let h1 = rank(1, x.copy(), dy.copy(), w0.copy(), b0.copy());
    let (r0, r1) = (h0.join().unwrap(), h1.join().unwrap());
    // The whole batch in one call.
    let xw = x.copy().set_requires_grad(true);
    let w = w0.copy().set_requires_grad(true);
    let b = b0.copy().set_requires_grad(true);
    let rm = Tensor::zeros([4], opts);
    let rv = Tensor::ones([4], opts);
    let y =
        Tensor::batch_norm(&xw, Some(&w), Some(&b), Some(&rm), Some(&rv), true, 0.1, 1e-5, false);
    (&y * &dy).sum(Kind::Float).backward();
    let t = |v: &Vec<f32>, shape: &[i64]| Tensor::from_slice(v).view(shape);
    let rows = |r: i64| Tensor::arange_start_step(r, 8, 2, (Kind::Int64, tch::Device::Cpu));
    for (k, name, whole) in [(0usize, "output", y.detach()), (1, "grad x", xw.grad())] {
        for (r, got) in [(0i64, &r0), (1, &r1)] {
            let d = max_diff(&t(&got[k], &[4, 4, 3, 3]), &whole.index_select(0, &rows(r)));
            assert!(d < 1e-4, "{name} rank {r}: max difference {d:e}");
        }
    }
    for (k, name, whole) in [(2usize, "grad weight", w.grad()), (3, "grad bias", b.grad())] {
        let summed = t(&r0[k], &[4]) + t(&r1[k], &[4]);
        let d = max_diff(&summed, &whole);
        assert!(d < 1e-4, "{name} summed over ranks: max difference {d:e}");
    }
    for (k, name, whole) in [(4usize, "running_mean", &rm), (5, "running_var", &rv)] {
        for got in [&r0, &r1] {
            let d = max_diff(&t(&got[k], &[4]), whole);
            assert!(d < 1e-5, "{name}: max difference {d:e}");
        }
    }
}

/// The masked statistics' definition on one whole batch, through autograd: mean and biased
/// variance over the rows with `rows[b] = 1`, every row normalised with them.
///
/// # Shapes
/// - `x`: `[B, C, H, W]`; `rows`: `[B]`; `w`, `b`: `[C]` -> `[B, C, H, W]`.
fn masked_reference(x: &Tensor, rows: &Tensor, w: &Tensor, b: &Tensor) -> Tensor {
    let keep = rows.view([-1, 1, 1, 1]);
    let spatial = (x.size()[2] * x.size()[3]) as f64;
    let n = rows.sum(Kind::Float) * spatial;
    let dims = [0i64, 2, 3];
    let mean = (x * &keep).sum_dim_intlist(dims.as_slice(), true, Kind::Float) / &n;
    let centred = x - &mean;
    let var = (centred.square() * &keep).sum_dim_intlist(dims.as_slice(), true, Kind::Float) / &n;
    centred * (var + 1e-5).rsqrt() * w.view([1, -1, 1, 1]) + b.view([1, -1, 1, 1])
}

/// Two ranks with row weights (rank 0 drops three of its rows, rank 1 passes none: all its
/// rows count) equal the masked definition on the whole batch: outputs and input gradients of
/// every row (the dropped ones too), the summed weight and bias gradients, and the running
/// statistics, which move towards the kept rows' mean and unbiased variance.
#[test]
fn two_rank_sync_batch_norm_with_rows_equals_the_masked_statistics_of_the_whole_batch() {
    tch::manual_seed(8);
    let opts = (Kind::Float, tch::Device::Cpu);
    let x = Tensor::randn([8, 3, 2, 2], opts) * 1.5 + 0.3;
    let dy = Tensor::randn([8, 3, 2, 2], opts);
    let (w0, b0) = (Tensor::randn([3], opts), Tensor::randn([3], opts));
    // Rank 0 holds rows 0, 2, 4, 6 and keeps only row 2; rank 1 (rows 1, 3, 5, 7) keeps all.
    let keep = Tensor::from_slice(&[0f32, 1., 1., 1., 0., 1., 0., 1.]);
    let port = free_port();
    let rank = |r: usize, x: Tensor, dy: Tensor, w0: Tensor, b0: Tensor, keep: Tensor| {
        std::thread::spawn(move || {
            let pg = ProcessGroup::new(r, 2, "127.0.0.1", port, Duration::from_secs(20)).unwrap();
            let sync = pg.sync_batch_norm().unwrap();
            let idx = Tensor::arange_start_step(r as i64, 8, 2, (Kind::Int64, tch::Device::Cpu));
            let xr = x.index_select(0, &idx).set_requires_grad(true);
            let rows = (r == 0).then(|| keep.index_select(0, &idx));
            let (w, b) = (w0.set_requires_grad(true), b0.set_requires_grad(true));
            let rm = Tensor::zeros([3], opts);
            let rv = Tensor::ones([3], opts);
            let y = sync.forward(&xr, &w, &b, &rm, &rv, rows.as_ref(), 0.1, 1e-5).unwrap();
            (&y * dy.index_select(0, &idx)).sum(Kind::Float).backward();
            let out: Vec<Vec<f32>> = [y.detach(), xr.grad(), w.grad(), b.grad(), rm, rv]
                .iter()
                .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
                .collect();
            out
        })
    };
    let h0 = rank(0, x.copy(), dy.copy(), w0.copy(), b0.copy(), keep.copy());
    let h1 = rank(1, x.copy(), dy.copy(), w0.copy(), b0.copy(), keep.copy());
    let (r0, r1) = (h0.join().unwrap(), h1.join().unwrap());
    let xw = x.copy().set_requires_grad(true);
    let (w, b) = (w0.copy().set_requires_grad(true), b0.copy().set_requires_grad(true));
    let y = masked_reference(&xw, &keep, &w, &b);
    (&y * &dy).sum(Kind::Float).backward();
    let t = |v: &Vec<f32>, shape: &[i64]| Tensor::from_slice(v).view(shape);
    let idx = |r: i64| Tensor::arange_start_step(r, 8, 2, (Kind::Int64, tch::Device::Cpu));
    for (k, name, whole) in [(0usize, "output", y.detach()), (1, "grad x", xw.grad())] {
        for (r, got) in [(0i64, &r0), (1, &r1)] {
            let d = max_diff(&t(&got[k], &[4, 3, 2, 2]), &whole.index_select(0, &idx(r)));
            assert!(d < 1e-4, "{name} rank {r}: max difference {d:e}");
        }
    }
    for (k, name, whole) in [(2usize, "grad weight", w.grad()), (3, "grad bias", b.grad())] {
        let d = max_diff(&(t(&r0[k], &[3]) + t(&r1[k], &[3])), &whole);
        assert!(d < 1e-4, "{name} summed over ranks: max difference {d:e}");
    }
    // The kept rows alone (indices 1, 2, 3, 5, 7) give the running statistics, as a plain
    // training-mode batch norm of that sub-batch does.
    let kept = x.index_select(0, &Tensor::from_slice(&[1i64, 2, 3, 5, 7]));
    let (rm, rv) = (Tensor::zeros([3], opts), Tensor::ones([3], opts));
    let _ = Tensor::batch_norm(
        &kept,
        None::<&Tensor>,
        None::<&Tensor>,
        Some(&rm),
        Some(&rv),
        true,
        0.1,
        1e-5,
        false,
    );
    for (k, name, whole) in [(4usize, "running_mean", &rm), (5, "running_var", &rv)] {
        for got in [&r0, &r1] {
            let d = max_diff(&t(&got[k], &[3]), whole);
            assert!(d < 1e-5, "{name}: max difference {d:e}");
        }
    }
}

/// No kept row on any rank: the outputs stay finite and the running statistics unchanged
/// (as `BatchNorm::forward_rows`); a `rows` of the wrong length is an error naming it.
#[test]
fn sync_batch_norm_without_kept_rows_keeps_the_running_statistics_and_checks_the_rows_length() {
    let opts = (Kind::Float, tch::Device::Cpu);
    let pg = ProcessGroup::new(0, 1, "127.0.0.1", free_port(), Duration::from_secs(20)).unwrap();
    let sync = pg.sync_batch_norm().unwrap();
    let x = Tensor::randn([4, 2, 3], opts).set_requires_grad(true);
    let (w, b) = (Tensor::ones([2], opts), Tensor::zeros([2], opts));
    let (rm, rv) = (Tensor::zeros([2], opts) + 0.25, Tensor::ones([2], opts) * 3.0);
    let none = Tensor::zeros([4], opts);
    let y = sync.forward(&x, &w, &b, &rm, &rv, Some(&none), 0.1, 1e-5).unwrap();
    y.sum(Kind::Float).backward();
    assert!(bool::try_from(y.isfinite().all()).unwrap());
    assert!(bool::try_from(x.grad().isfinite().all()).unwrap());
    assert_eq!(Vec::<f32>::try_from(&rm).unwrap(), [0.25, 0.25]);
    assert_eq!(Vec::<f32>::try_from(&rv).unwrap(), [3.0, 3.0]);
    let short = Tensor::ones([3], opts);
    let err = sync.forward(&x, &w, &b, &rm, &rv, Some(&short), 0.1, 1e-5).unwrap_err();
    assert!(err.to_string().contains("rows must be [4]"), "{err}");
}
