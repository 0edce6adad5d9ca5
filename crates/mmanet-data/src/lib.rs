//! Multimodal data sets, modality masking and a parallel, deterministic loader for MMANet.
//!
//! - [`Dataset`]: random access to [`Sample`]s (plain `Vec<f32>` per modality, so decoding runs
//!   on worker threads; tch tensors are `Send` but not `Sync`).
//! - [`MaskPolicy`]: which modalities are present per sample (uniform over combinations for
//!   training, fixed for evaluation). Inputs are never zero-filled; the mask rides in the batch.
//! - [`DataLoader`]: shuffles, decodes on a rayon pool with bounded prefetch and collates
//!   [`Batch`]es; deterministic for a given `(seed, epoch)` whatever the thread count.
//! - Readers: [`surf`] (CASIA-SURF lists), [`cefa`] (CeFA race protocol), [`cityscapes`]
//!   (ESANet cityscapes-with-depth layout), [`nyuv2`] (ESANet
//!   NYUv2 layout), [`mfeat`], [`basicmotions`], [`avmnist`]; seeded synthetic generators for
//!   CASIA-SURF and NYUv2 ([`surf::write_synthetic_surf`], [`nyuv2::write_synthetic_nyuv2`]).
//!
//! ```
//! use std::sync::Arc;
//! use mmanet_core::ModalitySet;
//! use mmanet_data::{DataLoader, InMemoryDataset, LoaderConfig, MaskPolicy};
//!
//! let set = ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set");
//! let data = InMemoryDataset::synthetic_classification(
//!     set.clone(), &[vec![4], vec![4], vec![4]], &[0.1, 0.5, 1.0], 2, 10, 0)?;
//! let loader = DataLoader::new(Arc::new(data), MaskPolicy::uniform_all(&set),
//!     LoaderConfig::train(4, 0))?;
//! let batches: Vec<_> = loader.iter(0).collect::<Result<_, _>>()?;
//! assert_eq!(batches.len(), 2); // 10 samples, batch 4, drop_last
//! assert_eq!(batches[0].inputs[0].size(), [4, 4]);
//! assert_eq!(batches[0].mask.size(), [4, 3]);
//! # Ok::<(), mmanet_data::DataError>(())
//! ```

pub mod avmnist;
pub mod basicmotions;
mod batch;
mod batch_memory;
pub mod cefa;
pub mod cityscapes;
mod dataset;
pub mod decoded_cache;
mod error;
pub mod input_spec;
mod loader;
pub mod manifest;
mod mask_policy;
mod memory;
pub mod mfeat;
pub mod missing;
pub mod npy;
pub mod nyuv2;
mod sample;
pub mod seeding;
pub mod source;
pub mod split;
mod subset;
pub mod surf;
pub mod toy;
pub mod transform;

pub use batch::Batch;
pub use dataset::Dataset;
pub use error::DataError;
pub use input_spec::InputSpec;
pub use loader::{BatchIter, DataLoader, LoaderConfig, Shard};
pub use mask_policy::MaskPolicy;
pub use memory::InMemoryDataset;
pub use sample::{ModalityData, Sample, Target, Task};
pub use source::{DataSource, OpenOptions, Opened, Split};
pub use subset::Subset;

/// Result alias of this crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
