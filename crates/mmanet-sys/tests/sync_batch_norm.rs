//! SyncBatchNorm's arithmetic on one rank equals libtorch's training-mode batch norm: output,
//! running statistics and the gradients of input, weight and bias (the two-rank equality with
//! one process on whole batches is `crates/mmanet/tests/distributed.rs`).

use std::time::Duration;

use mmanet_sys::ProcessGroup;
use tch::{Kind, Tensor};

#[path = "common/one_rank_sync_bn.rs"]
mod one_rank_sync_bn;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

#[test]
fn one_rank_sync_batch_norm_equals_batch_norm_forward_and_backward() {
    let pg = ProcessGroup::new(0, 1, "127.0.0.1", free_port(), Duration::from_secs(20)).unwrap();
    let sync = pg.sync_batch_norm().unwrap();
    one_rank_sync_bn::assert_one_rank_sync_batch_norm_equals_batch_norm(&sync, tch::Device::Cpu);
}

/// What one rank of [`two_ranks`] returns, flattened: output, input, weight and bias
/// gradients, running mean and variance.
type RankOut = Vec<Vec<f32>>;

/// Two ranks (two threads, each with its own group over 127.0.0.1), rank `r` taking rows `r,
/// r + 2, ...` of `x` (and of `dy`, the output gradient) and, when `keep` is given, passing
/// those rows' weights from it, except rank 1, which passes none (all its rows count): each
/// runs SyncBatchNorm (running statistics starting at 0 and 1) and its backward pass.
///
/// # Shapes
/// - `x`, `dy`: `[8, C, ...]`; `w0`, `b0`: `[C]`; `keep`: `[8]`.
fn two_ranks(
    x: &Tensor,
    dy: &Tensor,
    w0: &Tensor,
    b0: &Tensor,
    keep: Option<&Tensor>,
) -> [RankOut; 2] {
    let port = free_port();
    let c = w0.size()[0];
    let handles = [0usize, 1].map(|r| {
        let (x, dy, w0, b0) = (x.copy(), dy.copy(), w0.copy(), b0.copy());
        let keep = keep.filter(|_| r == 0).map(Tensor::copy);
        std::thread::spawn(move || {
            let pg = ProcessGroup::new(r, 2, "127.0.0.1", port, Duration::from_secs(20)).unwrap();
            let sync = pg.sync_batch_norm().unwrap();
            let opts = (Kind::Float, tch::Device::Cpu);
            let idx = Tensor::arange_start_step(r as i64, 8, 2, (Kind::Int64, tch::Device::Cpu));
            let xr = x.index_select(0, &idx).set_requires_grad(true);
            let rows = keep.map(|k| k.index_select(0, &idx));
            let (w, b) = (w0.set_requires_grad(true), b0.set_requires_grad(true));
            let (rm, rv) = (Tensor::zeros([c], opts), Tensor::ones([c], opts));
            let y = sync.forward(&xr, &w, &b, &rm, &rv, rows.as_ref(), 0.1, 1e-5).unwrap();
            (&y * dy.index_select(0, &idx)).sum(Kind::Float).backward();
            [y.detach(), xr.grad(), w.grad(), b.grad(), rm, rv]
                .iter()
                .map(|t| Vec::<f32>::try_from(t.flatten(0, -1)).unwrap())
                .collect::<RankOut>()
        })
    });
    handles.map(|h| h.join().unwrap())
}

/// The ranks of [`two_ranks`] against one whole batch: `whole` = output, input gradient,
/// weight gradient, bias gradient, running mean, running var. Outputs and input gradients
/// row for row, the weight's and bias's gradients summed over the ranks, the running
/// statistics on each rank.
fn assert_ranks_equal_whole(ranks: &[RankOut; 2], whole: [&Tensor; 6]) {
    let t = |v: &Vec<f32>, like: &Tensor, rows: i64| {
        let mut shape = like.size();
        shape[0] = rows;
        Tensor::from_slice(v).view(shape.as_slice())
    };
    let idx = |r: i64| Tensor::arange_start_step(r, 8, 2, (Kind::Int64, tch::Device::Cpu));
    for (k, name) in [(0usize, "output"), (1, "grad x")] {
        for (r, got) in ranks.iter().enumerate() {
            let mine = whole[k].index_select(0, &idx(r as i64));
            let d = max_diff(&t(&got[k], whole[k], 4), &mine);
            assert!(d < 1e-4, "{name} rank {r}: max difference {d:e}");
        }
    }
    for (k, name) in [(2usize, "grad weight"), (3, "grad bias")] {
        let c = whole[k].size()[0];
        let summed = t(&ranks[0][k], whole[k], c) + t(&ranks[1][k], whole[k], c);
        let d = max_diff(&summed, whole[k]);
        assert!(d < 1e-4, "{name} summed over ranks: max difference {d:e}");
    }
    for (k, name) in [(4usize, "running_mean"), (5, "running_var")] {
        for got in ranks {
            let d = max_diff(&t(&got[k], whole[k], whole[k].size()[0]), whole[k]);
            assert!(d < 1e-5, "{name}: max difference {d:e}");
        }
    }
}

/// Two ranks on halves of a batch equal batch norm on the whole batch.
#[test]
fn two_rank_sync_batch_norm_equals_batch_norm_on_the_whole_batch() {
    tch::manual_seed(5);
    let opts = (Kind::Float, tch::Device::Cpu);
    let x = Tensor::randn([8, 4, 3, 3], opts) * 2.0 - 0.5;
    let dy = Tensor::randn([8, 4, 3, 3], opts);
    let (w0, b0) = (Tensor::randn([4], opts), Tensor::randn([4], opts));
    let ranks = two_ranks(&x, &dy, &w0, &b0, None);
    let xw = x.copy().set_requires_grad(true);
    let (w, b) = (w0.copy().set_requires_grad(true), b0.copy().set_requires_grad(true));
    let (rm, rv) = (Tensor::zeros([4], opts), Tensor::ones([4], opts));
    let y =
        Tensor::batch_norm(&xw, Some(&w), Some(&b), Some(&rm), Some(&rv), true, 0.1, 1e-5, false);
    (&y * &dy).sum(Kind::Float).backward();
    assert_ranks_equal_whole(&ranks, [&y.detach(), &xw.grad(), &w.grad(), &b.grad(), &rm, &rv]);
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
/// every row (the dropped ones too), the summed weight and bias gradients; the running
/// statistics move towards the kept rows' mean and unbiased variance, as a plain batch norm
/// of the kept rows alone.
#[test]
fn two_rank_sync_batch_norm_with_rows_equals_the_masked_statistics_of_the_whole_batch() {
    tch::manual_seed(8);
    let opts = (Kind::Float, tch::Device::Cpu);
    let x = Tensor::randn([8, 3, 2, 2], opts) * 1.5 + 0.3;
    let dy = Tensor::randn([8, 3, 2, 2], opts);
    let (w0, b0) = (Tensor::randn([3], opts), Tensor::randn([3], opts));
    // Rank 0 holds rows 0, 2, 4, 6 and keeps only row 2; rank 1 (rows 1, 3, 5, 7) keeps all.
    let keep = Tensor::from_slice(&[0f32, 1., 1., 1., 0., 1., 0., 1.]);
    let ranks = two_ranks(&x, &dy, &w0, &b0, Some(&keep));
    let xw = x.copy().set_requires_grad(true);
    let (w, b) = (w0.copy().set_requires_grad(true), b0.copy().set_requires_grad(true));
    let y = masked_reference(&xw, &keep, &w, &b);
    (&y * &dy).sum(Kind::Float).backward();
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
    assert_ranks_equal_whole(&ranks, [&y.detach(), &xw.grad(), &w.grad(), &b.grad(), &rm, &rv]);
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

/// One value per channel in all: an error on one rank without rows, as in PyTorch; with two
/// ranks of which one passes rows (keeping none) and one passes none, both ranks take the same
/// decision (no error; running statistics unchanged), so neither is left waiting for the other.
#[test]
fn one_value_in_all_is_decided_alike_on_every_rank() {
    let opts = (Kind::Float, tch::Device::Cpu);
    let pg = ProcessGroup::new(0, 1, "127.0.0.1", free_port(), Duration::from_secs(20)).unwrap();
    let sync = pg.sync_batch_norm().unwrap();
    let x = Tensor::randn([1, 2], opts);
    let (w, b) = (Tensor::ones([2], opts), Tensor::zeros([2], opts));
    let (rm, rv) = (Tensor::zeros([2], opts), Tensor::ones([2], opts));
    let err = sync.forward(&x, &w, &b, &rm, &rv, None, 0.1, 1e-5).unwrap_err().to_string();
    assert!(err.contains("more than one value per channel"), "{err}");
    let port = free_port();
    let handles = [0usize, 1].map(|r| {
        std::thread::spawn(move || {
            let pg = ProcessGroup::new(r, 2, "127.0.0.1", port, Duration::from_secs(20)).unwrap();
            let sync = pg.sync_batch_norm().unwrap();
            let x = Tensor::randn([1, 2], opts);
            let (w, b) = (Tensor::ones([2], opts), Tensor::zeros([2], opts));
            let (rm, rv) = (Tensor::zeros([2], opts), Tensor::ones([2], opts));
            let none_kept = Tensor::zeros([1], opts);
            let rows = (r == 0).then_some(&none_kept);
            let y = sync.forward(&x, &w, &b, &rm, &rv, rows, 0.1, 1e-5).map_err(|e| e.to_string());
            (
                y.map(|y| bool::try_from(y.isfinite().all()).unwrap()),
                Vec::<f32>::try_from(&rm).unwrap(),
            )
        })
    });
    for (r, h) in handles.into_iter().enumerate() {
        let (finite, running_mean) = h.join().unwrap();
        assert_eq!(finite, Ok(true), "rank {r}");
        assert_eq!(running_mean, [0.0, 0.0], "rank {r}");
    }
}
