//! The deployment network as one self-describing file, and prediction with it.
//!
//! - [`format`](mod@format): the model file (safetensors weights + `__metadata__`: architecture, input
//!   spec, identity; docs/model_format.md), written atomically and byte-identically.
//! - [`input`]: raw inputs of any non-empty subset of the modalities to a [`Prepared`] sample,
//!   as the file's input spec says (decoders and test transforms are data).
//! - [`predictor`]: the network on a device, predicting batches that mix modality subsets
//!   through the per-sample mask; [`graphs`]: the same, replayed from one CUDA graph per
//!   batch-size bucket.
//!
//! Nothing here knows a training run or a data set: a model file alone is enough.

mod error;
pub mod example;
pub mod format;
pub mod graphs;
pub mod input;
pub mod manifest;
pub mod predictor;

pub use error::{DeployError, Result, inside_guarded_call};
pub use format::{
    Identity, ModelFile, ModelMetadata, Network, read_metadata, read_model_file, write_model_file,
};
pub use input::{Prepared, RawInput, prepare, present_modalities, warmup_sample};
pub use predictor::{Output, Predictor};
