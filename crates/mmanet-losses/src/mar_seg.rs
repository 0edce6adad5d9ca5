//! MAR for segmentation (docs/method.md §2.2 "MAR loss"): the regularization decoder's multi-scale
//! class-weighted cross-entropy ([`crate::multiscale_weighted_ce_2d`], docs/method.md §6.3) on the weak
//! samples of the batch only, selected by boolean indexing as the released code does.
//!
//! `L_MAR = Σ_scales CE2d(R(x)[weak], y[weak])`. With no weak sample in the batch the released
//! code returns the constant 1e-16; here the result is an exact 0 still attached to the graph
//! ([`Fidelity::Paper`]) or that 0 plus 1e-16 ([`Fidelity::ReferenceCode`]); neither has a
//! gradient. auxi_scale is applied by the caller.

use mmanet_core::Fidelity;
use tch::Tensor;

use crate::{
    LossError, Result, WeakSet, check, f_multiscale_weighted_ce_2d,
    f_multiscale_weighted_ce_2d_rows, f_weak_sample_mask,
};

const OP: &str = "mar_segmentation";

/// The released code's value for a batch without weak samples.
pub const MAR_SEGMENTATION_EMPTY: f64 = 1e-16;

/// Modality-aware regularization for segmentation (docs/method.md §2.2): [`crate::multiscale_weighted_ce_2d`]
/// over the samples whose modality combination is in `weak`.
///
/// Selecting the samples reads the weak mask back to the host (boolean indexing).
///
/// # Shapes
/// - `aux_scales[j]`: `([B, C, H_j, W_j] logits of the regularization decoder, [B, H_j, W_j] labels)`,
///   labels 0 = void, `1..=C` classes.
/// - `masks`: `[B, M]` 0/1 presence per sample.
/// - `class_weights`: `[C]`.
/// - output: scalar.
pub fn mar_segmentation(
    aux_scales: &[(&Tensor, &Tensor)],
    masks: &Tensor,
    weak: &WeakSet,
    class_weights: &Tensor,
    fidelity: Fidelity,
) -> Tensor {
    f_mar_segmentation(aux_scales, masks, weak, class_weights, fidelity).expect("mar_segmentation")
}

/// Fallible [`mar_segmentation`]: fails on an empty scale list or shape mismatches.
///
/// # Shapes
/// See [`mar_segmentation`].
pub fn f_mar_segmentation(
    aux_scales: &[(&Tensor, &Tensor)],
    masks: &Tensor,
    weak: &WeakSet,
    class_weights: &Tensor,
    fidelity: Fidelity,
) -> Result<Tensor> {
    let Some((first, _)) = aux_scales.first() else {
        return Err(LossError::Invalid("mar_segmentation needs at least one scale".into()));
    };
    check_scales(aux_scales, masks)?;
    let index = f_weak_sample_mask(masks, weak)?.f_nonzero()?.f_reshape([-1])?;
    if index.size()[0] == 0 {
        let mut zero = first.f_sum(None)?.f_mul_scalar(0.0)?;
        for (logits, _) in &aux_scales[1..] {
            zero = zero.f_add(&logits.f_sum(None)?.f_mul_scalar(0.0)?)?;
        }
        // NaN logits must not turn the empty loss into NaN.
        let zero = zero.f_nan_to_num(0.0, 0.0, 0.0)?;
        return Ok(match fidelity {
            Fidelity::Paper => zero,
            Fidelity::ReferenceCode => zero.f_add_scalar(MAR_SEGMENTATION_EMPTY)?,
        });
    }
    let selected = aux_scales
        .iter()
        .map(|(l, y)| {
            Ok((l.f_index_select(0, &index)?, y.f_index_select(0, &index.f_to(y.device())?)?))
        })
        .collect::<Result<Vec<_>>>()?;
    let pairs: Vec<(&Tensor, &Tensor)> = selected.iter().map(|(l, y)| (l, y)).collect();
    f_multiscale_weighted_ce_2d(&pairs, class_weights)
}

/// [`f_mar_segmentation`] with static shapes, for a captured CUDA graph: the weak samples are
/// kept by a `[B]` flag instead of boolean indexing, so nothing is read back to the host.
/// Equals [`f_mar_segmentation`] to rounding on finite logits, the empty batch included (0,
/// or 1e-16 under [`Fidelity::ReferenceCode`], by a flag on the device).
///
/// # Shapes
/// See [`mar_segmentation`].
pub fn f_mar_segmentation_static(
    aux_scales: &[(&Tensor, &Tensor)],
    masks: &Tensor,
    weak: &WeakSet,
    class_weights: &Tensor,
    fidelity: Fidelity,
) -> Result<Tensor> {
    check_scales(aux_scales, masks)?;
    let rows = f_weak_sample_mask(masks, weak)?;
    let loss = f_multiscale_weighted_ce_2d_rows(aux_scales, class_weights, &rows)?;
    Ok(match fidelity {
        Fidelity::Paper => loss,
        Fidelity::ReferenceCode => {
            let none = rows.f_any()?.f_logical_not()?.f_to_kind(loss.kind())?;
            loss.f_add(&none.f_mul_scalar(MAR_SEGMENTATION_EMPTY)?)?
        }
    })
}

/// Every scale's logits and labels have one row per sample of `masks`.
fn check_scales(aux_scales: &[(&Tensor, &Tensor)], masks: &Tensor) -> Result<()> {
    for (logits, labels) in aux_scales {
        check::same_dim(OP, logits, 0, masks, 0)?;
        check::same_dim(OP, labels, 0, masks, 0)?;
    }
    Ok(())
}
