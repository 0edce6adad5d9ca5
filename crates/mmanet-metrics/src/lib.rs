//! Metrics of MMANet's evaluation, without libtorch: presentation-attack detection (APCER,
//! BPCER, ACER), accuracy, segmentation mIoU, and the per-modality-combination reports the
//! paper's tables are made of.
//!
//! - [`BinaryCounts`] with a [`LabelConvention`]: ISO/IEC 30107-3 APCER, BPCER, ACER and
//!   accuracy for CASIA-SURF (1 = real) and CeFA (0 = real).
//! - [`AccuracyCounter`]: multi-class top-1 accuracy from predicted labels.
//! - [`ConfusionMatrix`]: per-class IoU, mIoU (absent classes count as 0) and pixel accuracy,
//!   with void label 0 ignored.
//! - [`CombinationReport`]: one row per modality combination (its mask string) plus the average row, as
//!   Markdown, CSV or JSON; [`AggregateReport`]: mean ± sample std over several runs.
//!
//! Every metric is a **fraction** in `[0, 1]`; only the Markdown renderings show percent.
//! Rates over empty sets are 0, never NaN. The JSON schema of both reports is in
//! `docs/report_schema.md`.
//!
//! ```
//! use mmanet_metrics::{BinaryCounts, CombinationReport, LabelConvention};
//!
//! let mut report = CombinationReport::classification();
//! for (k, combination) in ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"].into_iter().enumerate() {
//!     let mut counts = BinaryCounts::new(LabelConvention::CASIA_SURF);
//!     // labels: 1 = real; predictions are the argmax of the two logits.
//!     let preds = if k == 0 { [1, 1, 0, 0, 1] } else { [1, 1, 0, 0, 0] };
//!     counts.update(&[1, 1, 0, 0, 0], &preds)?;
//!     report.insert(combination, &counts.metric_values())?;
//! }
//! let r = report.value("R", "apcer").unwrap();
//! assert!((r - 1.0 / 3.0).abs() < 1e-12); // one of three attacks accepted as real
//! assert!(report.to_markdown().contains("| R | 16.67 | 33.33 | 0.00 | 80.00 |"));
//!
//! let again = CombinationReport::from_json(&report.to_json())?;
//! let summary = CombinationReport::aggregate(&[report, again])?;
//! assert_eq!(summary.runs(), 2);
//! # Ok::<(), mmanet_metrics::MetricsError>(())
//! ```

mod accuracy;
mod aggregate;
mod binary;
mod confusion;
mod error;
mod report;

pub use accuracy::AccuracyCounter;
pub use aggregate::{AggregateReport, AggregateRow};
pub use binary::{BinaryCounts, LabelConvention};
pub use confusion::ConfusionMatrix;
pub use error::{MetricsError, Result};
pub use report::{CombinationReport, CombinationRow};
