//! MAD and SP for classification (docs/method.md §1.1, §11 "MAD classification").
//!
//! With `F_S`, `F_T` the student's and teacher's features flattened to `[B, D]`:
//!
//! - `G = F · Fᵀ` (`[B, B]`), `Ĝ_ij = G_ij / max(‖G_i,:‖₂, 1e-12)` (`F.normalize(p=2, dim=1)`);
//! - `E_ij = (Ĝ^S_ij − Ĝ^T_ij)²`;
//! - `H_i` = entropy of `softmax(z_T,i)` (no temperature), `w_i = H_i / Σ_k H_k`
//!   ([`crate::softmax_entropy`], [`crate::entropy_weights`]);
//! - SP (Tung & Mori) `= mean_ij E_ij`;
//! - MAD, [`Fidelity::Paper`]: `Σ_ij E_ij · w_i` (each sample's row of the relation weighted by
//!   its own margin);
//! - MAD, [`Fidelity::ReferenceCode`]: `Σ_ij E_ij · w_j`, what `(E * w).sum()` computes in the
//!   released code, where `w` of shape `[B]` broadcasts over the columns.
//!
//! Neither sum is divided by `B`, so MAD is about `B ×` a weighted SP; λ_MAD = 30 is applied by
//! the caller. The teacher's features and logits are detached inside: no gradient reaches them.

use mmanet_core::Fidelity;
use tch::Tensor;

use crate::gram::f_normalized_gram;
use crate::{Result, check, f_entropy_weights, f_softmax_entropy};

const OP: &str = "mad_classification";

/// The relation error `E_ij = (Ĝ^S_ij − Ĝ^T_ij)²` between row-normalised Gram matrices, with the
/// teacher detached.
///
/// # Shapes
/// - `student`, `teacher`: `[B, ...]` (flattened to `[B, D]`), same shape.
/// - output: `[B, B]`, in the student's kind.
pub fn relation_error(student: &Tensor, teacher: &Tensor) -> Tensor {
    f_relation_error(student, teacher).expect("relation_error")
}

/// Fallible [`relation_error`]: fails on mismatched shapes, rank < 2 or non-float inputs.
///
/// # Shapes
/// See [`relation_error`].
pub fn f_relation_error(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    check::min_rank(OP, "student", student, 2)?;
    check::same_shape(OP, student, teacher)?;
    let kind = check::float(OP, "student", student)?;
    check::float(OP, "teacher", teacher)?;
    let b = student.size()[0];
    let fs = student.f_reshape([b, -1])?;
    let ft = teacher.f_detach()?.f_to_kind(kind)?.f_reshape([b, -1])?;
    let gs = f_normalized_gram(&fs, &fs)?;
    let gt = f_normalized_gram(&ft, &ft)?;
    Ok(gs.f_sub(&gt)?.f_square()?)
}

/// Similarity-preserving distillation (SP): `mean_ij E_ij` (docs/method.md §1.1 step 7, "plain SP").
///
/// # Shapes
/// - `student`, `teacher`: `[B, ...]`, same shape.
/// - output: scalar.
pub fn sp_loss(student: &Tensor, teacher: &Tensor) -> Tensor {
    f_sp_loss(student, teacher).expect("sp_loss")
}

/// Fallible [`sp_loss`].
///
/// # Shapes
/// See [`sp_loss`].
pub fn f_sp_loss(student: &Tensor, teacher: &Tensor) -> Result<Tensor> {
    Ok(f_relation_error(student, teacher)?.f_mean(None)?)
}

/// Margin-aware distillation for classification (docs/method.md §1.1): `Σ_ij E_ij · w_i` (paper) or
/// `Σ_ij E_ij · w_j` (reference code), with `w` the normalised entropy of the teacher's softmax.
///
/// Not scaled by λ_MAD. A fully saturated teacher batch (`Σ H = 0`) gives weights 0 and a loss
/// of exactly 0 (the reference gives NaN).
///
/// # Shapes
/// - `student`, `teacher`: `[B, ...]` (the layer4 maps `[B, 512, 4, 4]` in MMANet), same shape.
/// - `teacher_logits`: `[B, K]`.
/// - output: scalar, in the student's kind.
pub fn mad_classification(
    student: &Tensor,
    teacher: &Tensor,
    teacher_logits: &Tensor,
    fidelity: Fidelity,
) -> Tensor {
    f_mad_classification(student, teacher, teacher_logits, fidelity).expect("mad_classification")
}

/// Fallible [`mad_classification`]: fails on mismatched shapes or non-float inputs.
///
/// # Shapes
/// See [`mad_classification`].
pub fn f_mad_classification(
    student: &Tensor,
    teacher: &Tensor,
    teacher_logits: &Tensor,
    fidelity: Fidelity,
) -> Result<Tensor> {
    check::rank(OP, "teacher_logits", teacher_logits, 2)?;
    check::same_dim(OP, student, 0, teacher_logits, 0)?;
    let e = f_relation_error(student, teacher)?;
    let kind = student.f_kind()?;
    let b = e.size()[0];
    let z = teacher_logits.f_detach()?.f_to_kind(kind)?;
    let w = f_entropy_weights(&f_softmax_entropy(&z, 1)?)?;
    let w = match fidelity {
        Fidelity::Paper => w.f_view([b, 1])?,
        Fidelity::ReferenceCode => w.f_view([1, b])?,
    };
    Ok(e.f_mul(&w)?.f_sum(None)?)
}

/// [`f_mad_classification`] on the rows whose `rows` entry is 1 (e.g. the samples the teacher
/// sees completely), computed with static shapes: the other rows are zeroed in both feature
/// matrices (so their Gram rows and columns vanish and every kept row is normalised over the
/// kept columns only) and left out of the entropy normaliser. Equal to MAD on the sub-batch
/// selected by index; fewer than 2 kept rows give exactly 0, with a graph.
///
/// # Shapes
/// - `student`, `teacher`: `[B, ...]`, same shape; `teacher_logits`: `[B, K]`.
/// - `rows`: `[B]` in {0, 1} (any kind).
/// - output: scalar, in the student's kind.
pub fn f_mad_classification_rows(
    student: &Tensor,
    teacher: &Tensor,
    teacher_logits: &Tensor,
    fidelity: Fidelity,
    rows: &Tensor,
) -> Result<Tensor> {
    check::rank(OP, "teacher_logits", teacher_logits, 2)?;
    check::same_dim(OP, student, 0, teacher_logits, 0)?;
    let (s, t, r) = keep_rows(student, teacher, rows)?;
    let e = f_relation_error(&s, &t)?;
    let b = e.size()[0];
    let z = teacher_logits.f_detach()?.f_to_kind(s.f_kind()?)?;
    let w = f_entropy_weights(&f_softmax_entropy(&z, 1)?.f_mul(&r)?)?;
    let w = match fidelity {
        Fidelity::Paper => w.f_view([b, 1])?,
        Fidelity::ReferenceCode => w.f_view([1, b])?,
    };
    Ok(e.f_mul(&w)?.f_sum(None)?)
}

/// [`f_sp_loss`] on the rows whose `rows` entry is 1, with static shapes: the mean of the
/// relation error over the kept `n x n` pairs (0 when `n = 0`).
///
/// # Shapes
/// - `student`, `teacher`: `[B, ...]`, same shape; `rows`: `[B]`.
/// - output: scalar.
pub fn f_sp_loss_rows(student: &Tensor, teacher: &Tensor, rows: &Tensor) -> Result<Tensor> {
    let (s, t, r) = keep_rows(student, teacher, rows)?;
    let n = r.f_sum(None)?;
    let pairs = n.f_mul(&n)?.f_clamp_min(1.0)?;
    Ok(f_relation_error(&s, &t)?.f_sum(None)?.f_div(&pairs)?)
}

/// The features with the rows outside `rows` zeroed, and `rows` as `[B]` in the student's kind.
fn keep_rows(
    student: &Tensor,
    teacher: &Tensor,
    rows: &Tensor,
) -> Result<(Tensor, Tensor, Tensor)> {
    check::min_rank(OP, "student", student, 2)?;
    check::same_shape(OP, student, teacher)?;
    check::rank(OP, "rows", rows, 1)?;
    check::same_dim(OP, student, 0, rows, 0)?;
    let kind = check::float(OP, "student", student)?;
    let r = rows.f_detach()?.f_to_kind(kind)?;
    let mut shape = vec![student.size()[0]];
    shape.extend(std::iter::repeat_n(1, student.dim() - 1));
    let rv = r.f_view(shape.as_slice())?;
    let s = student.f_mul(&rv)?;
    let t = teacher.f_detach()?.f_to_kind(kind)?.f_mul(&rv)?;
    Ok((s, t, r))
}
