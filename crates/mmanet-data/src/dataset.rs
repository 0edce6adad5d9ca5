//! The [`Dataset`] trait every reader implements.

use mmanet_core::{ModalityMask, ModalitySet};
use rand_chacha::ChaCha8Rng;

use crate::{Result, Sample, Target, Task};

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

    /// The modalities sample `index` really has, as a mask over [`Dataset::modalities`]; the
    /// default is all of them. Sets with incomplete samples override it: the loader then
    /// draws each sample's mask among the combinations it allows, and a missing modality's
    /// input is a zero placeholder that its mask bit (0) keeps out of the output.
    fn availability(&self, index: usize) -> ModalityMask {
        let _ = index;
        self.modalities().full()
    }

    /// Decodes (and, for a training set, augments) sample `index < len()`.
    ///
    /// Errors name the file at fault; an `index` out of range is an error too.
    fn get(&self, index: usize, rng: &mut ChaCha8Rng) -> Result<Sample>;

    /// The counts of the data set's decoded-image cache ([`crate::decoded_cache`]), summed
    /// over its parts; `None` (the default) without one. Wrappers forward their inner set's.
    fn decoded_cache_stats(&self) -> Option<crate::decoded_cache::CacheStats> {
        None
    }

    /// The per-modality shapes of every sample, when all samples share them and carry no
    /// sequence lengths; `None` (the default) otherwise. When `Some`, the loader decodes
    /// samples with [`Dataset::get_into`] straight into the batch buffers.
    fn fixed_shapes(&self) -> Option<Vec<Vec<i64>>> {
        None
    }

    /// [`Dataset::get`] writing modality `m` into `outs[m]` (as many values as
    /// `fixed_shapes()[m]` holds), returning the target; must give the same values and draw
    /// the same random numbers as `get`, and must write every value of `outs` on success:
    /// the loader hands it the uninitialised memory of its batch tensors. The default calls
    /// `get` and copies.
    ///
    /// # Shapes
    /// `outs[m]` holds the product of modality `m`'s shape values.
    fn get_into(
        &self,
        index: usize,
        rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Target> {
        let s = self.get(index, rng)?;
        copy_into(&s, index, outs)?;
        Ok(s.target)
    }
}

/// Copies the modalities of `sample` into `outs`, checking the lengths.
pub(crate) fn copy_into(sample: &Sample, index: usize, outs: &mut [&mut [f32]]) -> Result<()> {
    if sample.inputs.len() != outs.len() {
        return Err(crate::DataError::shape(
            format!("sample {index}: modalities"),
            outs.len(),
            sample.inputs.len(),
        ));
    }
    for (d, o) in sample.inputs.iter().zip(outs.iter_mut()) {
        if d.data.len() != o.len() || d.length.is_some() {
            return Err(crate::DataError::shape(
                format!("sample {index}: fixed-shape modality"),
                o.len(),
                format!("{:?} (length {:?})", d.shape, d.length),
            ));
        }
        o.copy_from_slice(&d.data);
    }
    Ok(())
}

/// [`Dataset::get`] for data sets with [`Dataset::fixed_shapes`] whose real work is in
/// [`Dataset::get_into`]: allocates one buffer per modality and fills it.
pub(crate) fn get_via_into<D: Dataset + ?Sized>(
    ds: &D,
    index: usize,
    rng: &mut ChaCha8Rng,
) -> Result<Sample> {
    let shapes = ds.fixed_shapes().ok_or_else(|| {
        crate::DataError::Config("get_via_into needs a data set with fixed shapes".into())
    })?;
    let mut data: Vec<Vec<f32>> =
        shapes.iter().map(|s| vec![0f32; s.iter().product::<i64>() as usize]).collect();
    let mut outs: Vec<&mut [f32]> = data.iter_mut().map(Vec::as_mut_slice).collect();
    let target = ds.get_into(index, rng, &mut outs)?;
    let inputs = data
        .into_iter()
        .zip(shapes)
        .map(|(d, shape)| crate::ModalityData::new(d, shape))
        .collect::<Result<Vec<_>>>()?;
    Ok(Sample { inputs, target })
}

/// The error for an index past the end.
pub(crate) fn index_error(index: usize, len: usize) -> crate::DataError {
    crate::DataError::Config(format!("sample index {index} out of range for a set of {len}"))
}
