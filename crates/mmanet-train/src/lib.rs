//! The MMANet training driver.
//!
//! - [`schedule`]: the reference's per-epoch learning-rate and momentum schedules.
//! - [`optim`]: SGD (Nesterov) and Adam with PyTorch's update rules and savable state.
//! - [`run_dir`]: the files of a run, written atomically.
//! - [`objective`]: each task's loss and weak-set mining behind one trait, chosen once.
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
pub mod captured;
pub mod config;
pub mod cpu_memory;
pub mod data_check;
pub mod data_spec;
mod error;
pub mod evaluate;
pub mod export;
pub mod fit;
pub mod launch;
pub mod model_spec;
pub mod objective;
pub mod optim;
pub mod parallel;
pub mod predict;
pub mod presets;
pub mod readers;
pub mod run_dir;
pub mod run_report;
pub mod schedule;
pub mod state;
pub mod trainer;
pub mod transfer;

pub use config::{Distillation, MethodConfig, Selection, Stage, TrainConfig, ValidConfig};
pub use error::TrainError;
pub use trainer::{Observer, Silent, TrainSummary, Trainer};

/// libtorch's random generator is global to the process and unit tests run on parallel
/// threads: a test that seeds it and compares two identically seeded initialisations (or draws
/// from it while another does) holds this lock.
#[cfg(test)]
pub(crate) fn test_rng_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Result alias of this crate.
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
