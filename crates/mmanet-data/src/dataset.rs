//! The [`Dataset`] trait every reader implements.

use mmanet_core::ModalitySet;
use rand_chacha::ChaCha8Rng;

use crate::{Result, Sample, Task};

/// A random-access multimodal data set.
///
/// Implementations hold only plain data (paths, vectors) so that they are `Send + Sync` and
/// can be read from several worker threads; tensors are built by the consumer
/// ([`crate::Batch::collate`]). Whether a set augments (training) or not (evaluation) is fixed
/// when it is constructed; `rng` is the sample's own stream, derived by the loader from
/// `(seed, epoch, index)`, so results never depend on the thread count.
pub trait Dataset: Send + Sync {
    /// Number of samples.
    fn len(&self) -> usize;

    /// Whether the set is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The modalities, in the canonical order of [`crate::Sample::inputs`].
    fn modalities(&self) -> &ModalitySet;

    /// The task and its number of classes.
    fn task(&self) -> Task;

    /// Decodes (and, for a training set, augments) sample `index < len()`.
    ///
    /// Errors name the file at fault; an `index` out of range is an error too.
    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample>;
}

/// The error for an index past the end.
pub(crate) fn index_error(index: usize, len: usize) -> crate::DataError {
    crate::DataError::Config(format!("sample index {index} out of range for a set of {len}"))
}
