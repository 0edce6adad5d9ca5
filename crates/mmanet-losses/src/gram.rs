//! Row-normalised Gram matrices, the relation SP and MAD compare (docs/method.md §1.1 steps 1–3).

use tch::Tensor;

use crate::Result;

/// `F.normalize(p=2, dim=1)`'s eps: a row's norm is clamped below at this value.
pub const NORMALIZE_EPS: f64 = 1e-12;

/// `g / max(‖g_i,:‖₂, 1e-12)` row by row, as `torch.nn.functional.normalize(g, p=2, dim=1)`.
pub(crate) fn f_row_normalize(g: &Tensor) -> Result<Tensor> {
    let norm = g.f_norm_scalaropt_dim(2, [1i64], true)?.f_clamp_min(NORMALIZE_EPS)?;
    Ok(g.f_div(&norm)?)
}

/// Row-normalised Gram matrix of the rows of `a` against the rows of `b`: `normalize(a · bᵀ)`.
pub(crate) fn f_normalized_gram(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    f_row_normalize(&a.f_matmul(&b.f_tr()?)?)
}
