//! SyncBatchNorm on one rank against libtorch's training-mode batch norm, on any device:
//! shared by `sync_batch_norm.rs` (CPU, Gloo) and `process_group.rs` (CUDA, NCCL, the GPU
//! machine's smoke test).

use mmanet_sys::SyncBatchNorm;
use tch::{Device, Kind, Tensor};

/// For a 4-D and a 2-D input on `device`, without rows and with every row kept: SyncBatchNorm
/// equals `Tensor::batch_norm` in training mode (output, running statistics, and the input,
/// weight and bias gradients) within 1e-4.
pub(crate) fn assert_one_rank_sync_batch_norm_equals_batch_norm(
    sync: &SyncBatchNorm,
    device: Device,
) {
    tch::manual_seed(3);
    let opts = (Kind::Float, device);
    for shape in [vec![6i64, 4, 3, 5], vec![7, 4]] {
        let x0 = Tensor::randn(shape.as_slice(), opts) * 3.0 + 1.0;
        let (w0, b0) = (Tensor::randn([4], opts), Tensor::randn([4], opts));
        let dy = Tensor::randn(shape.as_slice(), opts);
        let all = Tensor::ones([shape[0]], opts);
        for rows in [None, Some(&all)] {
            let run = |use_sync: bool| {
                let x = x0.copy().set_requires_grad(true);
                let w = w0.copy().set_requires_grad(true);
                let b = b0.copy().set_requires_grad(true);
                let (rm, rv) = (Tensor::zeros([4], opts) + 0.5, Tensor::ones([4], opts) * 2.0);
                let y = if use_sync {
                    sync.forward(&x, &w, &b, &rm, &rv, rows, 0.1, 1e-5).unwrap()
                } else {
                    let (w, b, rm, rv) = (Some(&w), Some(&b), Some(&rm), Some(&rv));
                    Tensor::batch_norm(&x, w, b, rm, rv, true, 0.1, 1e-5, false)
                };
                (&y * &dy).sum(Kind::Float).backward();
                [y.detach(), rm, rv, x.grad(), w.grad(), b.grad()]
            };
            let (a, b) = (run(true), run(false));
            let names = ["output", "running_mean", "running_var", "grad x", "grad w", "grad b"];
            for ((name, p), q) in names.iter().zip(&a).zip(&b) {
                let d = (p - q).abs().max().double_value(&[]);
                assert!(d < 1e-4, "{shape:?} rows {}: {name} differs by {d:e}", rows.is_some());
            }
        }
    }
}
