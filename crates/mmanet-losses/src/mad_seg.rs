//! MAD for segmentation (docs/method.md §1.2): every pixel of a tapped feature map is a sample.
//!
//! Per scale `j`, with student and teacher maps `[B, C, H, W]` and the teacher "prediction"
//! map `[B, K, h, w]`:
//!
//! 1. if `H > 30`, both feature maps are adaptive-average-pooled to `(30, 40)`;
//! 2. the prediction map is adaptive-average-pooled to the (pooled) feature map's `(H, W)`;
//! 3. features are permuted to `F ∈ R^{N×C}`, `N = B·H·W`, pixels in `(b, h, w)` order;
//! 4. the rows of `F` are split into column blocks (the reference: two halves
//!    `[0, ⌊N/2⌋)`, `[⌊N/2⌋, N)`, [`GramBlocks::Halves`]); for each block `h`,
//!    `G^h = F · F_hᵀ` (`[N, |h|]`) is L2-normalised **row by row within the block**;
//! 5. `e_n = Σ_h Σ_{m∈h} (Ĝ^{S,h}_{nm} − Ĝ^{T,h}_{nm})²`;
//! 6. `w_n = H_n / Σ H` with `H_n` the entropy of the softmax of the prediction over its `K`
//!    channels at pixel `n` ([`crate::softmax_entropy`], [`crate::entropy_weights`]);
//! 7. `MAD_j = Σ_n w_n e_n`; `L_MAD = Σ_j MAD_j`, replaced by 0 if NaN (as the reference).
//!
//! What the prediction map is, is the caller's choice: the released code passes the teacher
//! decoder's 512-channel feature `pred_scales_t[6]` (a quirk, docs/method.md §1.2 step 3); the paper's
//! intent is the teacher's class logits.
//!
//! **Memory.** The `N × N` relation is never materialised: it is computed in tiles of
//! `row_chunk` rows by one column block. When the student requires a gradient, each tile's
//! gradient with respect to `F_S` is computed and released at once (a local backward on detached
//! leaves), and the returned loss is the surrogate `value + Σ_j (⟨F_S,j, g_j⟩ − ⟨F_S,j, g_j⟩.detach())`,
//! which has the loss's value and its exact first-order gradient with respect to the student
//! (and everything upstream of it). Peak memory is `O(N·C + row_chunk·block)`, not `O(N²)`.
//! Second-order gradients through this loss are not supported.

use serde::{Deserialize, Serialize};
use tch::Tensor;

use crate::gram::f_normalized_gram;
use crate::{LossError, Result, check, f_entropy_weights, f_softmax_entropy};

const OP: &str = "mad_segmentation";

/// How the columns of the `N × N` pixel relation are split into blocks; each row is normalised
/// within its block (docs/method.md §1.2 step 4). Serialised as `"halves"` or `{"size": n}`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GramBlocks {
    /// The reference: two blocks `[0, ⌊N/2⌋)` and `[⌊N/2⌋, N)`.
    #[default]
    Halves,
    /// Consecutive blocks of this many columns, the last one possibly shorter. `Size(n)` with
    /// `n ≥ N` is one block (the full-row normalisation of plain SP).
    Size(usize),
}

impl GramBlocks {
    /// The `(start, len)` column ranges for `n` pixels (empty ranges left out).
    pub fn ranges(self, n: i64) -> Result<Vec<(i64, i64)>> {
        let bounds: Vec<i64> = match self {
            GramBlocks::Halves => vec![0, n / 2, n],
            GramBlocks::Size(0) => return Err(LossError::Invalid("block size 0".into())),
            GramBlocks::Size(s) => {
                let s = i64::try_from(s).unwrap_or(i64::MAX);
                let mut b: Vec<i64> = (0..n).step_by(s.min(n.max(1)) as usize).collect();
                b.push(n);
                b
            }
        };
        Ok(bounds.windows(2).filter(|w| w[1] > w[0]).map(|w| (w[0], w[1] - w[0])).collect())
    }
}

/// Settings of [`mad_segmentation`]; missing fields take the reference's values when
/// deserialised.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SegMadConfig {
    /// Column blocks of the relation (default: the reference's halves).
    pub blocks: GramBlocks,
    /// Rows per tile; changes memory and speed, not the result (up to rounding). Default 2048.
    pub row_chunk: usize,
    /// Maps taller than this are pooled first (reference: 30).
    pub pool_above: i64,
    /// The `(H, W)` they are pooled to (reference: `(30, 40)`).
    pub pool_to: [i64; 2],
}

impl Default for SegMadConfig {
    fn default() -> Self {
        SegMadConfig {
            blocks: GramBlocks::Halves,
            row_chunk: 2048,
            pool_above: 30,
            pool_to: [30, 40],
        }
    }
}

fn row_ranges(n: i64, chunk: usize) -> Result<Vec<(i64, i64)>> {
    GramBlocks::Size(chunk).ranges(n).map_err(|_| LossError::Invalid("row_chunk 0".into()))
}

/// The per-pixel relation error `e_n` of docs/method.md §1.2 step 4, for pixel rows already laid out as
/// `[N, C]`, computed tile by tile (never `N × N` at once). Differentiable in `student` through
/// ordinary autograd (which keeps every tile for the backward pass: use [`mad_segmentation`]
/// for bounded memory in training). The teacher is detached.
///
/// # Shapes
/// - `student`, `teacher`: `[N, C]`, same shape.
/// - output: `[N]`.
pub fn blocked_relation_error(student: &Tensor, teacher: &Tensor, blocks: GramBlocks) -> Tensor {
    f_blocked_relation_error(student, teacher, blocks, usize::MAX).expect("blocked_relation_error")
}

/// Fallible [`blocked_relation_error`] with an explicit tile height `row_chunk`.
///
/// # Shapes
/// See [`blocked_relation_error`].
pub fn f_blocked_relation_error(
    student: &Tensor,
    teacher: &Tensor,
    blocks: GramBlocks,
    row_chunk: usize,
) -> Result<Tensor> {
    check::rank(OP, "student", student, 2)?;
    check::same_shape(OP, student, teacher)?;
    let kind = check::float(OP, "student", student)?;
    let n = student.size()[0];
    let teacher = teacher.f_detach()?.f_to_kind(kind)?;
    let mut rows_out = Vec::new();
    for (r0, rl) in row_ranges(n, row_chunk)? {
        let (sr, tr) = (student.f_narrow(0, r0, rl)?, teacher.f_narrow(0, r0, rl)?);
        let mut e = Tensor::f_zeros([rl], (kind, student.device()))?;
        for (c0, cl) in blocks.ranges(n)? {
            let gs = f_normalized_gram(&sr, &student.f_narrow(0, c0, cl)?)?;
            let gt = tch::no_grad(|| f_normalized_gram(&tr, &teacher.f_narrow(0, c0, cl)?))?;
            e = e.f_add(&gs.f_sub(&gt)?.f_square()?.f_sum_dim_intlist(1, false, None)?)?;
        }
        rows_out.push(e);
    }
    if rows_out.is_empty() {
        return Ok(Tensor::f_zeros([0], (kind, student.device()))?);
    }
    Ok(Tensor::f_cat(&rows_out, 0)?)
}

/// One scale's pixel rows and weights: `(F_S [N, C], F_T [N, C] detached, w [N] detached)`.
///
/// # Shapes
/// - `student`, `teacher`: `[B, C, H, W]`; `teacher_pred`: `[B, K, h, w]`.
/// - output: `([N, C], [N, C], [N])` with `N = B·H'·W'` after the optional pooling.
pub fn pixel_rows(
    student: &Tensor,
    teacher: &Tensor,
    teacher_pred: &Tensor,
    cfg: &SegMadConfig,
) -> Result<(Tensor, Tensor, Tensor)> {
    check::rank(OP, "student", student, 4)?;
    check::rank(OP, "teacher_pred", teacher_pred, 4)?;
    check::same_shape(OP, student, teacher)?;
    check::same_dim(OP, student, 0, teacher_pred, 0)?;
    let kind = check::float(OP, "student", student)?;
    check::float(OP, "teacher", teacher)?;
    check::float(OP, "teacher_pred", teacher_pred)?;
    let (mut s, mut t) = (student.shallow_clone(), teacher.f_detach()?.f_to_kind(kind)?);
    if s.size()[2] > cfg.pool_above {
        s = s.f_adaptive_avg_pool2d(cfg.pool_to)?;
        t = t.f_adaptive_avg_pool2d(cfg.pool_to)?;
    }
    let size = s.size();
    let (c, hw) = (size[1], [size[2], size[3]]);
    let mut p = teacher_pred.f_detach()?.f_to_kind(kind)?;
    if p.size()[2..] != hw {
        p = p.f_adaptive_avg_pool2d(hw)?;
    }
    let xs = s.f_permute([0, 2, 3, 1])?.f_reshape([-1, c])?;
    let xt = t.f_permute([0, 2, 3, 1])?.f_reshape([-1, c])?;
    let w = f_entropy_weights(&f_softmax_entropy(&p, 1)?.f_reshape([-1])?)?;
    Ok((xs, xt, w))
}

/// One scale's value and, when the student requires a gradient, `∂MAD_j/∂F_S` (`[N, C]`).
struct ScaleTerm {
    rows: Tensor,
    value: Tensor,
    grad: Option<Tensor>,
}

fn scale_term(
    student: &Tensor,
    teacher: &Tensor,
    pred: &Tensor,
    cfg: &SegMadConfig,
    rows: Option<&Tensor>,
) -> Result<ScaleTerm> {
    let (xs, xt, w) = pixel_rows(student, teacher, pred, cfg)?;
    if let Some(rows) = rows {
        return masked_scale_term(xs, xt, w, rows, cfg);
    }
    let n = xs.size()[0];
    let (kind, device) = (xs.f_kind()?, xs.device());
    let want_grad = xs.requires_grad();
    let xd = xs.f_detach()?;
    let grad = if want_grad { Some(Tensor::f_zeros_like(&xd)?) } else { None };
    let mut value = Tensor::f_zeros([], (kind, device))?;
    let blocks = cfg.blocks.ranges(n)?;
    for (r0, rl) in row_ranges(n, cfg.row_chunk)? {
        let wr = w.f_narrow(0, r0, rl)?;
        let tr = xt.f_narrow(0, r0, rl)?;
        for &(c0, cl) in &blocks {
            let gt = tch::no_grad(|| f_normalized_gram(&tr, &xt.f_narrow(0, c0, cl)?))?;
            let tile = |xr: &Tensor, xc: &Tensor| -> Result<Tensor> {
                let gs = f_normalized_gram(xr, xc)?;
                let e = gs.f_sub(&gt)?.f_square()?.f_sum_dim_intlist(1, false, None)?;
                Ok(e.f_mul(&wr)?.f_sum(None)?)
            };
            match &grad {
                Some(g) => {
                    let xr = xd.f_narrow(0, r0, rl)?.f_detach()?.f_set_requires_grad(true)?;
                    let xc = xd.f_narrow(0, c0, cl)?.f_detach()?.f_set_requires_grad(true)?;
                    let l = tch::with_grad(|| tile(&xr, &xc))?;
                    let grads = Tensor::f_run_backward(&[&l], &[&xr, &xc], false, false)?;
                    tch::no_grad(|| -> Result<()> {
                        let _ = g.f_narrow(0, r0, rl)?.f_add_(&grads[0])?;
                        let _ = g.f_narrow(0, c0, cl)?.f_add_(&grads[1])?;
                        value = value.f_add(&l.f_detach()?)?;
                        Ok(())
                    })?;
                }
                None => {
                    let l =
                        tch::no_grad(|| tile(&xd.f_narrow(0, r0, rl)?, &xd.f_narrow(0, c0, cl)?))?;
                    value = value.f_add(&l)?;
                }
            }
        }
    }
    Ok(ScaleTerm { rows: xs, value, grad })
}

/// [`scale_term`] on the pixels of the samples `rows` keeps, with static shapes: the other
/// samples' pixel rows are zeroed in both feature matrices and their entropy left out of the
/// normaliser, and each column block is a 0/1 column mask over the kept pixels' ranks (block
/// `h` of the sub-batch's `N'` pixels, e.g. ranks `[0, ⌊N'/2⌋)` for halves), so the result
/// equals [`scale_term`] on the index-selected sub-batch. Tiles span all `N` columns (the
/// mask zeroes the others), twice the work of the unmasked halves.
///
/// # Shapes
/// - `xs`, `xt`: `[N, C]` pixel rows in `(b, h, w)` order; `w`: `[N]`; `rows`: `[B]` in {0, 1}
///   with `N = B · P`.
fn masked_scale_term(
    xs: Tensor,
    xt: Tensor,
    w: Tensor,
    rows: &Tensor,
    cfg: &SegMadConfig,
) -> Result<ScaleTerm> {
    check::rank(OP, "rows", rows, 1)?;
    let (n, b) = (xs.size()[0], rows.size()[0]);
    if b == 0 || n % b != 0 {
        return Err(LossError::Invalid(format!(
            "{OP}: {n} pixel rows do not split into the {b} samples of `rows`"
        )));
    }
    let (kind, device) = (xs.f_kind()?, xs.device());
    let keep = rows
        .f_detach()?
        .f_to_kind(kind)?
        .f_to_device(device)?
        .f_view([b, 1])?
        .f_expand([b, n / b], false)?
        .f_reshape([n])?;
    let col = keep.f_unsqueeze(1)?;
    let xs = xs.f_mul(&col)?;
    let xt = xt.f_mul(&col)?;
    // w was normalised over every pixel: renormalise over the kept ones.
    let w = f_entropy_weights(&w.f_mul(&keep)?)?;
    let rank = keep.f_cumsum(0, kind)?.f_sub_scalar(1.0)?;
    let kept = keep.f_sum(kind)?;
    let masks: Vec<Tensor> = match cfg.blocks {
        GramBlocks::Halves => {
            let half = kept.f_div_scalar(2.0)?.f_floor()?;
            let first = rank.f_lt_tensor(&half)?.f_to_kind(kind)?;
            vec![keep.f_mul(&first)?, keep.f_mul(&first.f_neg()?.f_add_scalar(1.0)?)?]
        }
        GramBlocks::Size(0) => return Err(LossError::Invalid("block size 0".into())),
        GramBlocks::Size(size) => {
            let size = i64::try_from(size).unwrap_or(i64::MAX).min(n.max(1));
            let block = rank.f_div_scalar(size as f64)?.f_floor()?;
            (0..(n + size - 1) / size)
                .map(|h| Ok(keep.f_mul(&block.f_eq(h as f64)?.f_to_kind(kind)?)?))
                .collect::<Result<_>>()?
        }
    };
    let want_grad = xs.requires_grad();
    let xd = xs.f_detach()?;
    let grad = if want_grad { Some(Tensor::f_zeros_like(&xd)?) } else { None };
    let mut value = Tensor::f_zeros([], (kind, device))?;
    for (r0, rl) in row_ranges(n, cfg.row_chunk)? {
        let wr = w.f_narrow(0, r0, rl)?;
        let tr = xt.f_narrow(0, r0, rl)?;
        for m in &masks {
            let m = m.f_unsqueeze(1)?;
            let gt = tch::no_grad(|| f_normalized_gram(&tr, &xt.f_mul(&m)?))?;
            let tile = |xr: &Tensor, xc: &Tensor| -> Result<Tensor> {
                let gs = f_normalized_gram(xr, xc)?;
                let e = gs.f_sub(&gt)?.f_square()?.f_sum_dim_intlist(1, false, None)?;
                Ok(e.f_mul(&wr)?.f_sum(None)?)
            };
            let xc = xd.f_mul(&m)?;
            match &grad {
                Some(g) => {
                    let xr = xd.f_narrow(0, r0, rl)?.f_detach()?.f_set_requires_grad(true)?;
                    let xc = xc.f_set_requires_grad(true)?;
                    let l = tch::with_grad(|| tile(&xr, &xc))?;
                    let grads = Tensor::f_run_backward(&[&l], &[&xr, &xc], false, false)?;
                    tch::no_grad(|| -> Result<()> {
                        let _ = g.f_narrow(0, r0, rl)?.f_add_(&grads[0])?;
                        // xc = xd ⊙ m: its gradient reaches xd through the mask.
                        let _ = g.shallow_clone().f_add_(&grads[1].f_mul(&m)?)?;
                        value = value.f_add(&l.f_detach()?)?;
                        Ok(())
                    })?;
                }
                None => {
                    let l = tch::no_grad(|| tile(&xd.f_narrow(0, r0, rl)?, &xc))?;
                    value = value.f_add(&l)?;
                }
            }
        }
    }
    Ok(ScaleTerm { rows: xs, value, grad })
}

/// Margin-aware distillation for segmentation (docs/method.md §1.2), summed over the tapped scales
/// (`(student_map, teacher_map)` pairs, the reference's fuse_cache[0..3]) and set to 0 when the
/// sum is NaN. Not scaled by kd_scale. The teacher maps and `teacher_pred` get no gradient.
///
/// # Shapes
/// - `scales[j]`: `([B, C_j, H_j, W_j], [B, C_j, H_j, W_j])`.
/// - `teacher_pred`: `[B, K, h, w]`, pooled to each scale's `(H_j, W_j)` (after the `(30, 40)`
///   pooling of maps taller than 30).
/// - output: scalar, in the first student map's kind.
pub fn mad_segmentation(
    scales: &[(&Tensor, &Tensor)],
    teacher_pred: &Tensor,
    cfg: &SegMadConfig,
) -> Tensor {
    f_mad_segmentation(scales, teacher_pred, cfg).expect("mad_segmentation")
}

/// Fallible [`mad_segmentation`]: fails on an empty scale list, mismatched shapes, a zero
/// block size or row chunk.
///
/// # Shapes
/// See [`mad_segmentation`].
pub fn f_mad_segmentation(
    scales: &[(&Tensor, &Tensor)],
    teacher_pred: &Tensor,
    cfg: &SegMadConfig,
) -> Result<Tensor> {
    mad_segmentation_on(scales, teacher_pred, cfg, None)
}

/// [`f_mad_segmentation`] on the samples whose `rows` entry is 1 (e.g. those the teacher sees
/// completely), computed with static shapes: it equals [`f_mad_segmentation`] on the sub-batch
/// selected by index (same pixel relation blocks over the kept pixels, entropy weights
/// normalised over them), and the other samples get no gradient. No kept sample gives exactly 0,
/// with a graph.
///
/// # Shapes
/// - `scales`, `teacher_pred`: as [`mad_segmentation`] (batch `B`); `rows`: `[B]` in {0, 1}.
/// - output: scalar.
pub fn f_mad_segmentation_rows(
    scales: &[(&Tensor, &Tensor)],
    teacher_pred: &Tensor,
    cfg: &SegMadConfig,
    rows: &Tensor,
) -> Result<Tensor> {
    if let Some((first, _)) = scales.first() {
        check::same_dim(OP, first, 0, rows, 0)?;
    }
    mad_segmentation_on(scales, teacher_pred, cfg, Some(rows))
}

fn mad_segmentation_on(
    scales: &[(&Tensor, &Tensor)],
    teacher_pred: &Tensor,
    cfg: &SegMadConfig,
    rows: Option<&Tensor>,
) -> Result<Tensor> {
    let Some((first, _)) = scales.first() else {
        return Err(LossError::Invalid("mad_segmentation needs at least one scale".into()));
    };
    let kind = check::float(OP, "student", first)?;
    let terms = scales
        .iter()
        .map(|(s, t)| scale_term(s, t, teacher_pred, cfg, rows))
        .collect::<Result<Vec<_>>>()?;
    let mut total = Tensor::f_zeros([], (kind, first.device()))?;
    for t in &terms {
        total = total.f_add(&t.value.f_to_kind(kind)?)?;
    }
    let finite = total.f_isnan()?.f_logical_not()?;
    let mut out = total.f_where_scalarother(&finite, 0.0)?;
    for t in &terms {
        if let Some(g) = &t.grad {
            let g = g.f_where_scalarother(&finite, 0.0)?;
            let inner = t.rows.f_mul(&g)?.f_sum(None)?.f_to_kind(kind)?;
            // 0 in value; gradient g. Masked again so that NaN rows (whose product with the
            // zeroed g is NaN) cannot leak into the value.
            let surrogate = inner.f_sub(&inner.f_detach()?)?.f_where_scalarother(&finite, 0.0)?;
            out = out.f_add(&surrogate)?;
        }
    }
    Ok(out)
}
