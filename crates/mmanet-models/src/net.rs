//! [`NetOutput`] and the [`MultiModalNet`] trait shared by every network, plus mask helpers.

use mmanet_core::ModalitySet;
use tch::Tensor;

use crate::{ModelError, Result};

/// What every multimodal network returns: enough for CE, MAD and MAR without re-running anything.
#[derive(Debug)]
pub struct NetOutput {
    /// Class scores: `[B, K]` (classification) or `[B, K, H, W]` (segmentation).
    pub logits: Tensor,
    /// Feature maps tapped for MAD, shallow to deep. Classification: `[layer3, layer4]`;
    /// generic nets: the trunk's hidden activations; ESANet: the fused encoder maps
    /// (context output /32, skip3 /16, skip2 /8, skip1 /4).
    pub features: Vec<Tensor>,
    /// Logits of the regularization head R (students only), same shape as `logits`.
    pub aux_logits: Option<Tensor>,
    /// Segmentation side outputs at /8, /16, /32 (train mode only); empty otherwise.
    pub side_logits: Vec<Tensor>,
    /// The regularization head's segmentation side outputs at /8, /16, /32 (students in train
    /// mode, the counterpart of `side_logits` for `aux_logits`); empty otherwise. Segmentation
    /// MAR sums its CE over `aux_logits` and these (docs/method.md §2.2).
    pub aux_side_logits: Vec<Tensor>,
}

impl NetOutput {
    /// Every tensor converted to `kind` (e.g. f32 losses on the outputs of an fp16 autocast
    /// forward; a no-op view where a tensor already has that kind). Shapes are unchanged.
    pub fn to_kind(&self, kind: tch::Kind) -> NetOutput {
        let cast = |t: &Tensor| t.to_kind(kind);
        NetOutput {
            logits: cast(&self.logits),
            features: self.features.iter().map(cast).collect(),
            aux_logits: self.aux_logits.as_ref().map(cast),
            side_logits: self.side_logits.iter().map(cast).collect(),
            aux_side_logits: self.aux_side_logits.iter().map(cast).collect(),
        }
    }
}

/// A network over the modalities of a [`ModalitySet`], robust to missing modalities.
pub trait MultiModalNet: Send {
    /// Runs the network.
    ///
    /// The mask multiplies each branch's output features per sample; inputs are never zeroed.
    /// Teachers ignore the mask.
    ///
    /// # Shapes
    /// - `inputs[m]`: one tensor per modality in the set's canonical order (`[B, C, H, W]` for
    ///   images, `[B, D]` vectors, `[B, T, F]` sequences; some nets accept extra inputs, see
    ///   their docs).
    /// - `mask`: `[B, M]` f32 of 0/1.
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> NetOutput;

    /// The modalities, in input order.
    fn modalities(&self) -> &ModalitySet;
}

/// Column `m` of a `[B, M]` mask, viewed so it broadcasts over a feature of rank `rank`
/// (`[B, 1, ..., 1]`) and moved to the feature's device and kind.
///
/// # Shapes
/// - `mask`: `[B, M]` -> `[B, 1, ..., 1]` with `rank` dims.
pub fn mask_column(mask: &Tensor, m: usize, rank: usize, like: &Tensor) -> Tensor {
    let b = mask.size()[0];
    let mut shape = vec![1i64; rank];
    shape[0] = b;
    mask.select(1, m as i64).to_device(like.device()).to_kind(like.kind()).view(shape.as_slice()) // [B, 1, .., 1]
}

/// Checks that `inputs` has at least `m` tensors with one batch size, and that `mask` is `[B, m]`.
///
/// # Shapes
/// - `inputs[i]`: `[B, ...]`; `mask`: `[B, m]`.
pub fn check_inputs(inputs: &[Tensor], mask: &Tensor, m: usize) -> Result<i64> {
    if inputs.len() < m {
        return Err(ModelError::Inputs(format!("expected {m} inputs, got {}", inputs.len())));
    }
    let b = inputs[0].size().first().copied().unwrap_or(0);
    for (i, x) in inputs.iter().take(m).enumerate() {
        if x.size().first().copied() != Some(b) {
            return Err(ModelError::Inputs(format!(
                "input {i} has shape {:?}, batch {b} expected",
                x.size()
            )));
        }
    }
    if mask.size() != [b, m as i64] {
        return Err(ModelError::Inputs(format!(
            "mask has shape {:?}, expected [{b}, {m}]",
            mask.size()
        )));
    }
    Ok(b)
}
