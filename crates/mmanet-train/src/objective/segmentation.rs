//! The segmentation objective (docs/method.md §2.2), [`SegmentationObjective`], and its
//! pieces: class weights, label pyramids, the teacher's prediction map for MAD's entropy
//! weights, and the three terms (multi-scale CE, MAD over the tapped fused maps, MAR of the
//! regularization decoder), public so that other drivers compute exactly the trainer's loss.

use mmanet_core::{Fidelity, ModalitySet};
use mmanet_data::{Batch, DataLoader, Target};
use mmanet_losses::{ClassPixelCounts, SegMadConfig, SegmentationMiner, WeakSet};
use mmanet_models::{MultiModalNet, NetOutput};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use super::{LossTerms, Objective, Step, complete_rows};
use crate::TrainError;
use crate::config::{Distillation, MethodConfig, ValidConfig};
use crate::data_spec::Split;
use crate::evaluate::{Ranks, Scoring, evaluate_on, net_inputs};
use crate::state::MiningEpoch;

/// Why `method.distillation = "sp"` is refused for segmentation networks: the segmentation
/// objective has MAD (docs/method.md §1.2) but no SP form (the released code's
/// `segmentation/train_missing_mmanet.py` leaves `kd_loss = SP()` commented out, and its `SP`
/// takes no teacher prediction, so it could not be called there either).
pub const SP_SEGMENTATION_UNSUPPORTED: &str =
    "`sp` is for classification only: a segmentation (ESANet) student distils with `mad` or `none`";

/// Multi-scale class-weighted CE + λ_MAD·MAD + λ_MAR·MAR for one-label-per-pixel tasks.
pub struct SegmentationObjective {
    set: ModalitySet,
    /// `[C]` f32 on the training device.
    class_weights: Tensor,
    distillation: Distillation,
    lambda_mad: f64,
    lambda_mar: f64,
    fidelity: Fidelity,
}

impl SegmentationObjective {
    /// The objective of `method` for a network over `set`, weighting class `c` by
    /// `class_weights[c]` (see [`class_weights`] for a run's).
    ///
    /// # Shapes
    /// - `class_weights`: `[C]` f32, on the device of the batches.
    pub fn new(method: &MethodConfig, set: ModalitySet, class_weights: Tensor) -> Self {
        SegmentationObjective {
            set,
            class_weights,
            distillation: method.distillation,
            lambda_mad: method.lambda_mad,
            lambda_mar: method.lambda_mar,
            fidelity: method.fidelity,
        }
    }

    /// Refuses SP distillation, which has no segmentation form.
    pub fn check_method(method: &MethodConfig) -> Result<(), TrainError> {
        match method.distillation {
            Distillation::None | Distillation::Mad => Ok(()),
            Distillation::Sp => {
                Err(TrainError::config("method.distillation", SP_SEGMENTATION_UNSUPPORTED))
            }
        }
    }

    /// The class weights, `[C]`.
    pub fn class_weights(&self) -> &Tensor {
        &self.class_weights
    }
}

impl Objective for SegmentationObjective {
    /// Multi-scale weighted CE; with a teacher plus λ·MAD over the three tapped fused maps;
    /// with a weak set plus λ·MAR of `auxi_decoder`'s four outputs (full resolution, /8, /16,
    /// /32) on the weak samples.
    ///
    /// # Shapes
    /// - `batch.targets`: `[B, H, W]` i64 (0 = void); `batch.mask`: `[B, M]`.
    fn loss(&self, step: &Step<'_>, batch: &Batch) -> Result<LossTerms, TrainError> {
        let inputs = net_inputs(batch);
        let out = step.forward(step.student, &inputs, &batch.mask, true);
        let (ce, labels) = multiscale_ce(&out, &batch.targets, &self.class_weights)?;
        let mut terms = LossTerms::new(ce);
        if let Some(teacher) = step.teacher {
            // reference-code: the teacher runs in train mode (batch statistics), as released.
            let teacher_train = self.fidelity == Fidelity::ReferenceCode;
            // The teacher sees each sample with the modalities it has (all of them for
            // complete data), and MAD runs on the samples it sees completely.
            let complete = complete_rows(step);
            let t_mask = match &complete {
                Some((available, _)) => available.shallow_clone(),
                None => batch.mask.ones_like(),
            };
            let t = tch::no_grad(|| step.forward(teacher, &inputs, &t_mask, teacher_train));
            let rows = complete.as_ref().map(|(_, rows)| rows);
            let d = match self.distillation {
                Distillation::None => out.logits.zeros_like().sum(Kind::Float),
                Distillation::Mad => segmentation_mad(&out, &t, self.fidelity, rows)?,
                // Refused by `check_method` at config check; never MAD in its place.
                Distillation::Sp => {
                    return Err(TrainError::config(
                        "method.distillation",
                        SP_SEGMENTATION_UNSUPPORTED,
                    ));
                }
            } * self.lambda_mad;
            terms.add_distill(d);
        }
        if let Some(weak) = step.weak {
            let w = &self.class_weights;
            let (mask, fidelity) = (&batch.mask, self.fidelity);
            let r = segmentation_mar(&out, &labels, mask, weak, w, fidelity, step.capturable)?
                * self.lambda_mar;
            terms.add_mar(r);
        }
        Ok(terms)
    }

    /// The mIoU of the full combination, then of each single-modality candidate.
    fn mine_epoch(
        &self,
        net: &dyn MultiModalNet,
        val: &DataLoader,
        epoch: usize,
        device: Device,
        ranks: Ranks<'_>,
    ) -> Result<MiningEpoch, TrainError> {
        let miner = SegmentationMiner::new(self.set.clone())?;
        let mut combos = vec![self.set.full()];
        combos.extend(miner.candidates().iter().copied());
        let num_classes = self.class_weights.size()[0] as usize;
        let scoring = Scoring::Segmentation { num_classes };
        let report = evaluate_on(net, val, &combos, scoring, device, ranks)?;
        // Rows come in the order of `combos`.
        let miou: Vec<f64> = combos
            .iter()
            .map(|c| report.value(&self.set.format(*c), "miou").unwrap_or(0.0))
            .collect();
        Ok(MiningEpoch { epoch, miou, ..Default::default() })
    }

    /// (mIoU_full - mIoU_m)^2 per single modality, summed over the mining epochs.
    fn select_weak_set(&self, history: &[MiningEpoch]) -> Result<WeakSet, TrainError> {
        let mut miner = SegmentationMiner::new(self.set.clone())?;
        for e in history {
            let (full, per) = e.miou.split_first().ok_or_else(|| {
                TrainError::config("method.mar", format!("mining epoch {} has no mIoU", e.epoch))
            })?;
            miner.add_epoch(*full, per)?;
        }
        let weak = miner.weak_set()?;
        tracing::info!(scores = ?miner.scores(), weak = %weak, "weak set selected");
        Ok(weak)
    }
}

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
pub fn class_weights(
    cfg: &ValidConfig,
    num_classes: usize,
    device: Device,
) -> Result<Tensor, TrainError> {
    let weights = match cfg.data.class_weighting {
        ClassWeighting::None => vec![1.0f64; num_classes],
        ClassWeighting::MedianFrequency => {
            let train = cfg.data.open(Split::Train, cfg.seed)?;
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
/// For the integer factors of the side outputs (8, 16, 32) this picks label pixel
/// `(y·f, x·f)` for output pixel `(y, x)`, the pixel the released code's target pyramid takes:
/// ESANet's `MultiScaleLabel` (`src/preprocessing.py`) resizes the cropped label with
/// `cv2.resize(label, (w // rate, h // rate), interpolation=cv2.INTER_NEAREST)`, whose source
/// index is `floor(x · rate)` as torch's `nearest` mode is (no half-pixel offset; that would
/// be OpenCV's `INTER_NEAREST_EXACT`).
///
/// # Shapes
/// - `labels`: `[B, H, W]` i64; `logits`: `[B, K, h, w]` -> `[B, h, w]` i64.
pub fn labels_like(labels: &Tensor, logits: &Tensor) -> Tensor {
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
pub fn teacher_prediction(t: &NetOutput, fidelity: Fidelity) -> Result<Tensor, TrainError> {
    match fidelity {
        Fidelity::Paper => Ok(t.logits.shallow_clone()),
        Fidelity::ReferenceCode => t.features.get(4).map(Tensor::shallow_clone).ok_or_else(|| {
            TrainError::config("method.fidelity", "the teacher exposes no decoder feature 4")
        }),
    }
}

/// The weighted cross-entropy summed over the output scales (main logits, then the side
/// outputs), with `labels` resized (nearest) to each scale; also returns those labels, main
/// scale first.
///
/// # Shapes
/// - `out.logits`: `[B, K, H, W]`; `out.side_logits[s]`: `[B, K, h_s, w_s]`.
/// - `labels`: `[B, H0, W0]` i64, 0 = void; `class_weights`: `[C]`.
/// - output: scalar, and one `[B, h, w]` label map per scale.
pub fn multiscale_ce(
    out: &NetOutput,
    labels: &Tensor,
    class_weights: &Tensor,
) -> Result<(Tensor, Vec<Tensor>), TrainError> {
    let logits: Vec<&Tensor> = std::iter::once(&out.logits).chain(&out.side_logits).collect();
    let per_scale: Vec<Tensor> = logits.iter().map(|l| labels_like(labels, l)).collect();
    let scales: Vec<(&Tensor, &Tensor)> = logits.into_iter().zip(per_scale.iter()).collect();
    let ce = mmanet_losses::f_multiscale_weighted_ce_2d(&scales, class_weights)?;
    Ok((ce, per_scale))
}

/// Segmentation MAD between the first three tapped fused maps of student and teacher, weighted
/// by the entropy of [`teacher_prediction`] (unscaled: multiply by λ_MAD), on the samples
/// `rows` marks (all when `None`; with static shapes, equal to MAD on the selected sub-batch).
///
/// # Shapes
/// - `student.features[j]`, `teacher.features[j]`: `[B, C_j, h_j, w_j]` for j < 3.
/// - `rows`: `[B]` of 0/1.
/// - output: scalar.
pub fn segmentation_mad(
    student: &NetOutput,
    teacher: &NetOutput,
    fidelity: Fidelity,
    rows: Option<&Tensor>,
) -> Result<Tensor, TrainError> {
    let pairs: Vec<(&Tensor, &Tensor)> =
        student.features.iter().zip(&teacher.features).take(3).collect();
    let pred = teacher_prediction(teacher, fidelity)?;
    let cfg = SegMadConfig::default();
    Ok(match rows {
        Some(rows) => mmanet_losses::f_mad_segmentation_rows(&pairs, &pred, &cfg, rows)?,
        None => mmanet_losses::f_mad_segmentation(&pairs, &pred, &cfg)?,
    })
}

/// Segmentation MAR (docs/method.md §2.2): the regularization decoder's class-weighted CE on
/// the samples whose combination is in the weak set, summed over its four outputs (full
/// resolution, then the side outputs at /8, /16, /32), as `train_missing_mmanet.py` sums
/// `loss_function_train(auxi_out_weak, target_scales_weak)`; the same in both fidelity modes
/// (they differ only in the value of a batch without weak samples). Unscaled: multiply by
/// λ_MAR.
///
/// Fails when `out` has no regularization head, or when its outputs do not pair one to one
/// with `scale_labels` (e.g. an eval-mode forward, which has no side outputs).
///
/// `capturable`: the weak samples are kept by a flag instead of boolean indexing
/// ([`mmanet_losses::f_mar_segmentation_static`]: static shapes, no host read, the same value to
/// rounding), as a captured CUDA graph needs.
///
/// # Shapes
/// - `out.aux_logits`: `[B, K, H, W]`; `out.aux_side_logits[s]`: `[B, K, h_s, w_s]`.
/// - `scale_labels`: the label maps of [`multiscale_ce`], main scale first (`[B, H, W]`,
///   then `[B, h_s, w_s]`), i64, 0 = void; `mask`: `[B, M]`; `class_weights`: `[C]`.
/// - output: scalar.
pub fn segmentation_mar(
    out: &NetOutput,
    scale_labels: &[Tensor],
    mask: &Tensor,
    weak: &WeakSet,
    class_weights: &Tensor,
    fidelity: Fidelity,
    capturable: bool,
) -> Result<Tensor, TrainError> {
    let Some(aux) = &out.aux_logits else {
        return Err(TrainError::config(
            "method.mar",
            "MAR needs a regularization decoder (auxi_decoder) and the network has none",
        ));
    };
    let outputs: Vec<&Tensor> = std::iter::once(aux).chain(&out.aux_side_logits).collect();
    if outputs.len() != scale_labels.len() {
        return Err(TrainError::config(
            "method.mar",
            format!(
                "the regularization decoder returned {} outputs for {} label scales (MAR \
                 needs its full-resolution and side outputs of a train-mode forward)",
                outputs.len(),
                scale_labels.len()
            ),
        ));
    }
    let scales: Vec<(&Tensor, &Tensor)> = outputs.into_iter().zip(scale_labels).collect();
    Ok(if capturable {
        mmanet_losses::f_mar_segmentation_static(&scales, mask, weak, class_weights, fidelity)?
    } else {
        mmanet_losses::f_mar_segmentation(&scales, mask, weak, class_weights, fidelity)?
    })
}
