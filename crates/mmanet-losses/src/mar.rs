//! MAR for classification (docs/method.md §2.1 "MAR loss", §11 "MAR code-faithful").
//!
//! With `ℓ_i = CE(R(x_i), y_i)` the regularization head's per-sample cross-entropy, `p_i` the
//! presence row of sample `i` and `W` the [`WeakSet`]:
//!
//! - [`Fidelity::Paper`]: `L_MAR = (1/B) Σ_i 1[p_i ∈ W] · ℓ_i` (the mean CE over the batch of the
//!   weak samples only, divided by the whole batch size B);
//! - [`Fidelity::ReferenceCode`]: `L_MAR = n_weak · mean_i ℓ_i`, `n_weak = Σ_i 1[p_i ∈ W]`: the
//!   released code's broadcasting turns the per-sample mask into a count (docs/method.md §2.1).
//!
//! A batch with no weak sample gives an exact 0 that is still attached to the graph (its
//! gradient is 0), never NaN. λ_MAR = 0.5 is applied by the caller.

use mmanet_core::{Fidelity, ModalityMask};
use tch::{Kind, Reduction, Tensor};

use crate::weak_set::presence_tensor;
use crate::{Result, WeakSet, check};

const OP: &str = "mar_classification";

/// Per-sample cross-entropy `ℓ_i = −log softmax(z_i)_{y_i}` (`reduction='none'`).
///
/// # Shapes
/// - `logits`: `[B, K]`, float.
/// - `targets`: `[B]`, integer class indices in `0..K`.
/// - output: `[B]`.
pub fn per_sample_cross_entropy(logits: &Tensor, targets: &Tensor) -> Tensor {
    f_per_sample_cross_entropy(logits, targets).expect("per_sample_cross_entropy")
}

/// Fallible [`per_sample_cross_entropy`].
///
/// # Shapes
/// See [`per_sample_cross_entropy`].
pub fn f_per_sample_cross_entropy(logits: &Tensor, targets: &Tensor) -> Result<Tensor> {
    check::rank(OP, "logits", logits, 2)?;
    check::rank(OP, "targets", targets, 1)?;
    check::float(OP, "logits", logits)?;
    check::integer(OP, "targets", targets)?;
    check::same_dim(OP, logits, 0, targets, 0)?;
    Ok(logits.f_cross_entropy_loss::<Tensor>(
        &targets.f_to_kind(Kind::Int64)?,
        None,
        Reduction::None,
        -100,
        0.0,
    )?)
}

/// Which samples of a batch use a weak combination: `1[p_i ∈ W]`. Mask entries above 0.5 count
/// as present.
///
/// # Shapes
/// - `masks`: `[B, M]` 0/1 presence (any kind), `M = weak.set().len()`.
/// - output: `[B]`, `Kind::Bool`.
pub fn weak_sample_mask(masks: &Tensor, weak: &WeakSet) -> Tensor {
    f_weak_sample_mask(masks, weak).expect("weak_sample_mask")
}

/// Fallible [`weak_sample_mask`]: fails unless `masks` is `[B, M]`.
///
/// # Shapes
/// See [`weak_sample_mask`].
pub fn f_weak_sample_mask(masks: &Tensor, weak: &WeakSet) -> Result<Tensor> {
    check::rank(OP, "masks", masks, 2)?;
    let rows = weak.presence_tensor(Kind::Bool, masks.device());
    check::same_dim(OP, masks, 1, &rows, 1)?;
    let present = masks.f_to_kind(Kind::Float)?.f_gt(0.5)?;
    Ok(present
        .f_unsqueeze(1)?
        .f_eq_tensor(&rows.f_unsqueeze(0)?)?
        .f_all_dim(2, false)?
        .f_any_dim(1, false)?)
}

/// Modality-aware regularization for classification (docs/method.md §2.1): the regularization head's CE
/// on the weak samples, `(1/B) Σ_i 1[p_i ∈ W] ℓ_i` (paper) or `n_weak · mean_i ℓ_i` (reference
/// code). Not scaled by λ_MAR.
///
/// The weak set is a [`WeakSet`] (its presence rows are compared with the rows of `masks`); use
/// [`mar_classification_combos`] when the batch's combinations are at hand as masks.
///
/// # Shapes
/// - `aux_logits`: `[B, K]`, the regularization head's logits.
/// - `targets`: `[B]`, integer labels.
/// - `masks`: `[B, M]`, 0/1 presence per sample (f32 or f64).
/// - output: scalar, in `aux_logits`' kind.
pub fn mar_classification(
    aux_logits: &Tensor,
    targets: &Tensor,
    masks: &Tensor,
    weak: &WeakSet,
    fidelity: Fidelity,
) -> Tensor {
    f_mar_classification(aux_logits, targets, masks, weak, fidelity).expect("mar_classification")
}

/// Fallible [`mar_classification`].
///
/// # Shapes
/// See [`mar_classification`].
pub fn f_mar_classification(
    aux_logits: &Tensor,
    targets: &Tensor,
    masks: &Tensor,
    weak: &WeakSet,
    fidelity: Fidelity,
) -> Result<Tensor> {
    let ce = f_per_sample_cross_entropy(aux_logits, targets)?;
    check::same_dim(OP, aux_logits, 0, masks, 0)?;
    let kind = ce.f_kind()?;
    let is_weak = f_weak_sample_mask(masks, weak)?.f_to_kind(kind)?;
    match fidelity {
        Fidelity::Paper => {
            let b = ce.size()[0].max(1) as f64;
            Ok(ce.f_mul(&is_weak)?.f_sum(None)?.f_div_scalar(b)?)
        }
        Fidelity::ReferenceCode => Ok(is_weak.f_sum(None)?.f_mul(&ce.f_mean(None)?)?),
    }
}

/// [`mar_classification`] with the batch's combinations given as [`ModalityMask`]s (one per
/// sample, each within `weak.set()`).
///
/// # Shapes
/// - `aux_logits`: `[B, K]`; `targets`: `[B]`; `combos.len() == B`.
/// - output: scalar.
pub fn mar_classification_combos(
    aux_logits: &Tensor,
    targets: &Tensor,
    combos: &[ModalityMask],
    weak: &WeakSet,
    fidelity: Fidelity,
) -> Result<Tensor> {
    let masks = presence_tensor(weak.set(), combos, Kind::Float, aux_logits.device())?;
    f_mar_classification(aux_logits, targets, &masks, weak, fidelity)
}
