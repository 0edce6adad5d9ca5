//! Teacher-entropy weights of MAD (docs/method.md §1.1 steps 4–6, §1.2 step 5).
//!
//! `H = −Σ_k q_k log q_k` with `q = softmax(z)`, computed from `ls = log_softmax(z)` as
//! `H = −Σ_k exp(ls_k) · ls_k`. Where the reference's `q · log q` is finite the two agree; where
//! the teacher is saturated (`q_k` underflows to 0) the reference gives `0 · (−inf) = NaN` and this
//! gives a finite value that is 0 or denormally small.

use tch::Tensor;

use crate::{Result, check};

/// Entropy of `softmax(logits)` along `dim`, computed through `log_softmax` (never NaN for
/// finite logits).
///
/// # Shapes
/// - `logits`: any shape with a class dimension `dim` (`[B, K]` with `dim = 1` for
///   classification, `[B, K, H, W]` with `dim = 1` for segmentation maps).
/// - output: `logits`' shape without `dim`.
pub fn softmax_entropy(logits: &Tensor, dim: i64) -> Tensor {
    f_softmax_entropy(logits, dim).expect("softmax_entropy")
}

/// Fallible [`softmax_entropy`]: fails on a non-float tensor or an out-of-range `dim`.
///
/// # Shapes
/// See [`softmax_entropy`].
pub fn f_softmax_entropy(logits: &Tensor, dim: i64) -> Result<Tensor> {
    check::float("softmax_entropy", "logits", logits)?;
    let ls = logits.f_log_softmax(dim, None)?;
    Ok(ls.f_exp()?.f_mul(&ls)?.f_sum_dim_intlist(dim, false, None)?.f_neg()?)
}

/// Normalised weights `w = H / Σ H` over all entries of `entropy` (they sum to 1).
///
/// When `Σ H = 0` (every teacher prediction saturated, or an empty batch) the weights are all 0,
/// so the weighted loss is 0 rather than the reference's `0 / 0 = NaN`. No host synchronisation
/// is needed: the divisor is `Σ H` where it is positive and 1 otherwise.
///
/// # Shapes
/// - `entropy`: any shape (`[B]` or `[N]`), non-negative.
/// - output: same shape.
pub fn entropy_weights(entropy: &Tensor) -> Tensor {
    f_entropy_weights(entropy).expect("entropy_weights")
}

/// Fallible [`entropy_weights`].
///
/// # Shapes
/// See [`entropy_weights`].
pub fn f_entropy_weights(entropy: &Tensor) -> Result<Tensor> {
    check::float("entropy_weights", "entropy", entropy)?;
    let total = entropy.f_sum(None)?;
    let positive = total.f_gt(0.0)?;
    let divisor = total.f_where_scalarother(&positive, 1.0)?;
    Ok(entropy.f_div(&divisor)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    #[test]
    fn uniform_logits_give_log_k() {
        let z = Tensor::zeros([3, 4], (Kind::Double, tch::Device::Cpu));
        let h = softmax_entropy(&z, 1);
        let expected = Tensor::full([3], 4f64.ln(), (Kind::Double, tch::Device::Cpu));
        assert!(h.allclose(&expected, 1e-12, 0.0, false));
    }

    #[test]
    fn all_zero_entropy_gives_zero_weights() {
        let z = Tensor::from_slice2(&[[1000f32, -1000.], [-1000., 1000.]]);
        let h = softmax_entropy(&z, 1);
        assert_eq!(h.isnan().any().int64_value(&[]), 0);
        let w = entropy_weights(&h);
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), vec![0.0, 0.0]);
    }

    #[test]
    fn integer_logits_are_rejected() {
        let z = Tensor::from_slice(&[1i64, 2]);
        assert!(f_softmax_entropy(&z, 0).is_err());
    }
}
