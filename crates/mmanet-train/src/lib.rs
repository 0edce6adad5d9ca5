//! The MMANet training driver.
//!
//! - [`schedule`]: the reference's per-epoch learning-rate and momentum schedules.
//! - [`optim`]: SGD (Nesterov) and Adam with PyTorch's update rules and savable state.
//! - [`run_dir`]: the files of a run, written atomically.
//! - [`amp`]: dynamic loss scaling for fp16 autocast; [`transfer`]: pinned, asynchronous
//!   host-to-device copies.
//!
//! ```
//! use mmanet_train::schedule::LrSchedule;
//!
//! let s = LrSchedule::reference_classification();
//! assert_eq!(s.lr(1e-3, 10, 100), 1e-3);
//! ```

pub mod amp;
pub mod config;
pub mod cpu_memory;
pub mod data_check;
pub mod data_spec;
mod error;
pub mod evaluate;
pub mod model_spec;
pub mod optim;
pub mod predict;
pub mod presets;
pub mod readers;
pub mod run_dir;
pub mod run_report;
pub mod schedule;
pub mod segmentation;
pub mod state;
pub mod trainer;
pub mod transfer;

pub use config::{Distillation, MethodConfig, Selection, Stage, TrainConfig, ValidConfig};
pub use error::TrainError;
pub use trainer::{Observer, Silent, TrainSummary, Trainer};

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
