//! MMANet's losses on tensors: margin-aware distillation (MAD), similarity-preserving
//! distillation (SP), modality-aware regularization (MAR), weak-set mining, and the class-weighted
//! 2-D cross-entropy of the segmentation networks.
//!
//! Tensors in, tensors out: nothing here sees a network. Where the paper and the released code
//! disagree (MAD's weighting, MAR's reduction) a [`Fidelity`] selects the behaviour; the default
//! [`Fidelity::Paper`] is the per-sample semantics of the paper. Sections (§) refer to
//! `docs/method.md`.
//!
//! | loss | docs/method.md | functions |
//! | --- | --- | --- |
//! | teacher entropy weights | §1.1 steps 4–6 | [`softmax_entropy`], [`entropy_weights`] |
//! | MAD / SP, classification | §1.1 | [`mad_classification`], [`sp_loss`], [`relation_error`] |
//! | MAD, segmentation | §1.2 | [`mad_segmentation`], [`f_mad_segmentation_rows`], [`blocked_relation_error`] |
//! | MAR, classification | §2.1 | [`mar_classification`], [`mar_classification_combos`] |
//! | MAR, segmentation | §2.2 | [`mar_segmentation`] |
//! | weak-set mining | §2.1, §2.2 | [`ClassificationMiner`], [`SegmentationMiner`], [`WeakSet`] |
//! | weighted 2-D CE | §6.3 | [`weighted_ce_2d`], [`multiscale_weighted_ce_2d`], [`ClassPixelCounts`] |
//!
//! None of the functions applies the λ weights (λ_MAD = 30, λ_MAR = 0.5, kd_scale, auxi_scale):
//! the trainer does.
//!
//! ```
//! use mmanet_core::Fidelity;
//! use mmanet_losses::{mad_classification, sp_loss};
//! use tch::{Device, Kind, Tensor};
//!
//! tch::manual_seed(0);
//! let opts = (Kind::Float, Device::Cpu);
//! let student = Tensor::randn([4, 8, 2, 2], opts).set_requires_grad(true);
//! let teacher = Tensor::randn([4, 8, 2, 2], opts);
//! let teacher_logits = Tensor::randn([4, 2], opts);
//! let mad = mad_classification(&student, &teacher, &teacher_logits, Fidelity::Paper);
//! mad.backward();
//! assert!(mad.double_value(&[]) >= 0.0);
//! assert!(sp_loss(&student, &student).double_value(&[]).abs() < 1e-6);
//! assert_eq!(student.grad().size(), [4, 8, 2, 2]);
//! ```

mod ce2d;
mod check;
mod entropy;
mod error;
mod gram;
mod mad;
mod mad_seg;
mod mar;
mod mar_seg;
mod mining;
mod weak_set;

pub use ce2d::{
    ClassPixelCounts, f_multiscale_weighted_ce_2d, f_multiscale_weighted_ce_2d_rows,
    f_weighted_ce_2d, f_weighted_ce_2d_rows, multiscale_weighted_ce_2d, weighted_ce_2d,
};
pub use entropy::{entropy_weights, f_entropy_weights, f_softmax_entropy, softmax_entropy};
pub use error::{LossError, Result};
pub use gram::NORMALIZE_EPS;
pub use mad::{
    f_mad_classification, f_mad_classification_rows, f_relation_error, f_sp_loss, f_sp_loss_rows,
    mad_classification, relation_error, sp_loss,
};
pub use mad_seg::{
    GramBlocks, SegMadConfig, blocked_relation_error, f_blocked_relation_error, f_mad_segmentation,
    f_mad_segmentation_rows, mad_segmentation, pixel_rows,
};
pub use mar::{
    f_mar_classification, f_per_sample_cross_entropy, f_weak_sample_mask, mar_classification,
    mar_classification_combos, per_sample_cross_entropy, weak_sample_mask,
};
pub use mar_seg::{
    MAR_SEGMENTATION_EMPTY, f_mar_segmentation, f_mar_segmentation_static, mar_segmentation,
};
pub use mining::{ClassificationMiner, SegmentationMiner, label_histogram, softmax_kl};
pub use mmanet_core::Fidelity;
pub use weak_set::{WeakSet, presence_tensor};
