//! HeMIS-style mean/variance fusion (official `SURF_MV`): the per-sample mean and variance of the
//! present modalities' branch features, concatenated along channels.

use mmanet_core::Fidelity;
use tch::{Kind, Tensor};

use crate::net::mask_column;

/// Mean and variance over the masked-in modalities, `cat([mean, var], 1)`.
///
/// With `n_b` = number of present modalities of sample `b` (at least 1 is assumed; a sample with
/// none gets zeros):
/// - mean = Σ_m p_bm x_bm / n_b;
/// - [`Fidelity::Paper`]: var = Σ_m p_bm (x_bm − mean)² / n_b (HeMIS: present modalities only);
/// - [`Fidelity::ReferenceCode`]: var = Σ_m (p_bm x_bm − mean)² / n_b, i.e. absent modalities
///   count as zero features (what `SURF_MV.forward` computes).
///
/// Both set var = 0 for samples with a single modality. Neither depends on the inputs of masked-out
/// modalities.
///
/// # Shapes
/// - `feats[m]`: `[B, C, ...]` (unmasked branch outputs); `mask`: `[B, M]`.
/// - returns `[B, 2C, ...]`.
pub fn mean_var_fusion(feats: &[Tensor], mask: &Tensor, fidelity: Fidelity) -> Tensor {
    let rank = feats[0].dim();
    let like = &feats[0];
    let n = mask.sum_dim_intlist(1, false, Kind::Float); // [B]
    let mut shape = vec![1i64; rank];
    shape[0] = n.size()[0];
    let n_b = n.to_kind(like.kind()).view(shape.as_slice()); // [B, 1, .., 1]
    let cols: Vec<Tensor> = (0..feats.len()).map(|m| mask_column(mask, m, rank, like)).collect();
    let masked: Vec<Tensor> = feats.iter().zip(&cols).map(|(x, p)| x * p).collect();
    let denom = n_b.clamp_min(1.0);
    let mean = Tensor::stack(&masked, 0).sum_dim_intlist(0, false, None) / &denom; // [B, C, ..]
    let sq: Vec<Tensor> = match fidelity {
        Fidelity::Paper => {
            masked.iter().zip(&cols).map(|(x, p)| (x - &mean).square() * p).collect()
        }
        Fidelity::ReferenceCode => masked.iter().map(|x| (x - &mean).square()).collect(),
    };
    let var = Tensor::stack(&sq, 0).sum_dim_intlist(0, false, None) / &denom;
    let several = n_b.gt(1.0).to_kind(like.kind()); // [B, 1, .., 1]
    Tensor::cat(&[mean, var * several], 1)
}
