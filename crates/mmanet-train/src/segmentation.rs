//! Segmentation helpers of the trainer: class weights, label pyramids, the teacher's
//! prediction map for MAD's entropy weights.

use mmanet_core::Fidelity;
use mmanet_data::Target;
use mmanet_losses::ClassPixelCounts;
use mmanet_models::NetOutput;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::TrainError;
use crate::config::ValidConfig;
use crate::data_spec::Split;

/// How segmentation classes are weighted in the cross-entropy.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// All ones (Cityscapes in the reference).
    #[default]
    None,
    /// Median frequency over the training split (NYUv2 in the reference).
    MedianFrequency,
}

/// The class weights `[C]` of a segmentation run (median frequency is counted over the
/// training split's samples as the loader produces them).
pub(crate) fn class_weights(
    cfg: &ValidConfig,
    num_classes: usize,
    device: Device,
) -> Result<Tensor, TrainError> {
    let weights = match cfg.data.class_weighting {
        ClassWeighting::None => vec![1.0f64; num_classes],
        ClassWeighting::MedianFrequency => {
            let train = cfg.data.dataset.open(Split::Train, cfg.seed)?;
            let mut counts = ClassPixelCounts::new(num_classes);
            let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
            for i in 0..train.len() {
                if let Target::Segmentation { labels, .. } = train.get(i, &mut rng)?.target {
                    let l: Vec<u32> = labels.iter().map(|&v| v.max(0) as u32).collect();
                    counts.add_image(&l)?;
                }
            }
            counts.median_frequency_weights()?
        }
    };
    Ok(Tensor::from_slice(&weights).to_kind(Kind::Float).to_device(device))
}

/// Labels resized (nearest) to the spatial size of `logits`.
///
/// # Shapes
/// - `labels`: `[B, H, W]` i64; `logits`: `[B, K, h, w]` -> `[B, h, w]` i64.
pub(crate) fn labels_like(labels: &Tensor, logits: &Tensor) -> Tensor {
    let (h, w) = (logits.size()[2], logits.size()[3]);
    if labels.size()[1..] == [h, w] {
        return labels.shallow_clone();
    }
    labels
        .unsqueeze(1)
        .to_kind(Kind::Float)
        .upsample_nearest2d([h, w], None, None)
        .squeeze_dim(1)
        .to_kind(Kind::Int64)
}

/// The teacher map whose per-pixel softmax entropy weights segmentation MAD: its class logits
/// (paper) or its decoder feature after the first decoder module (`out_down_32_feature`,
/// `features[4]`, reference-code).
///
/// # Shapes
/// - output: `[B, K, h, w]` (pooled to each tapped map inside the loss).
pub(crate) fn teacher_prediction(t: &NetOutput, fidelity: Fidelity) -> Result<Tensor, TrainError> {
    match fidelity {
        Fidelity::Paper => Ok(t.logits.shallow_clone()),
        Fidelity::ReferenceCode => t.features.get(4).map(Tensor::shallow_clone).ok_or_else(|| {
            TrainError::config("method.fidelity", "the teacher exposes no decoder feature 4")
        }),
    }
}
