//! [`Batch`]: samples collated into tensors on the consumer thread.

use mmanet_core::{ModalityMask, ModalitySet};
use tch::{Device, Tensor};

use crate::{DataError, Result, Sample, Target};

/// A mini-batch.
///
/// # Shapes
/// - `inputs[m]`: `[B, ...]` for modality `m` of the set, e.g. `[B, 3, H, W]` for an image,
///   `[B, T, F]` for a padded sequence, `[B, D]` for a feature vector; f32. Never zero-filled
///   for missing modalities: the mask says what is missing and models mask their features.
/// - `lengths[m]`: `Some([B] i64)` true lengths for a sequence modality, else `None`.
/// - `mask`: `[B, M]` f32 in {0, 1}; `mask[b, m] = 1` when modality `m` is present for sample `b`.
/// - `combos`: `B` masks, the same information as `mask`.
/// - `targets`: `[B]` i64 class indices, or `[B, H, W]` i64 label maps (0 = void).
/// - `indices`: the `B` data-set indices of the samples.
#[derive(Debug)]
pub struct Batch {
    /// One `[B, ...]` f32 tensor per modality, canonical order.
    pub inputs: Vec<Tensor>,
    /// Per modality, `[B]` i64 true lengths for sequences.
    pub lengths: Vec<Option<Tensor>>,
    /// `[B, M]` f32 presence mask.
    pub mask: Tensor,
    /// The drawn combination of each sample.
    pub combos: Vec<ModalityMask>,
    /// `[B]` or `[B, H, W]` i64.
    pub targets: Tensor,
    /// Data-set index of each sample.
    pub indices: Vec<usize>,
}

impl Batch {
    /// Collates samples (all with the same shapes) with their drawn combinations.
    ///
    /// # Shapes
    /// See [`Batch`]; every sample's modality `m` must have the same shape, and segmentation
    /// targets the same `H, W`.
    pub fn collate(
        samples: &[Sample],
        combos: &[ModalityMask],
        indices: &[usize],
        set: &ModalitySet,
    ) -> Result<Batch> {
        let b = samples.len();
        check_batch_len(b, combos, indices)?;
        let m = set.len();
        let mut inputs = Vec::with_capacity(m);
        let mut lengths = Vec::with_capacity(m);
        for k in 0..m {
            let first = samples[0].inputs.get(k).ok_or_else(|| {
                DataError::shape(format!("sample {}: modalities", indices[0]), m, 0)
            })?;
            let shape = first.shape.clone();
            let per: usize = shape.iter().product::<i64>() as usize;
            let mut flat = Vec::with_capacity(per * b);
            let mut lens = Vec::with_capacity(b);
            for (s, idx) in samples.iter().zip(indices) {
                if s.inputs.len() != m {
                    return Err(DataError::shape(
                        format!("sample {idx}: number of modalities"),
                        m,
                        s.inputs.len(),
                    ));
                }
                let d = &s.inputs[k];
                if d.shape != shape || d.data.len() != per {
                    return Err(DataError::shape(
                        format!("sample {idx}: modality {} shape", set.modalities()[k]),
                        format!("{shape:?}"),
                        format!("{:?}", d.shape),
                    ));
                }
                flat.extend_from_slice(&d.data);
                lens.push(d.length);
            }
            let mut full_shape = vec![b as i64];
            full_shape.extend_from_slice(&shape);
            inputs.push(Tensor::f_from_slice(&flat)?.f_reshape(&full_shape)?);
            lengths.push(if lens.iter().all(Option::is_some) {
                let l: Vec<i64> = lens.into_iter().flatten().collect();
                Some(Tensor::f_from_slice(&l)?)
            } else {
                None
            });
        }
        let targets: Vec<&Target> = samples.iter().map(|s| &s.target).collect();
        Self::assemble(inputs, lengths, &targets, combos, indices, set)
    }

    /// A batch from inputs already collated (e.g. decoded straight into batch buffers), with
    /// the samples' targets and drawn combinations; no sequence lengths.
    ///
    /// # Shapes
    /// `inputs[m]`: `[B, ...]` for modality `m` of `set`; `targets`, `combos`, `indices`:
    /// `B` entries each.
    pub fn from_inputs(
        inputs: Vec<Tensor>,
        targets: &[Target],
        combos: &[ModalityMask],
        indices: &[usize],
        set: &ModalitySet,
    ) -> Result<Batch> {
        let b = targets.len();
        check_batch_len(b, combos, indices)?;
        if inputs.len() != set.len() {
            return Err(DataError::shape("batch inputs", set.len(), inputs.len()));
        }
        if let Some(t) = inputs.iter().find(|t| t.size().first() != Some(&(b as i64))) {
            return Err(DataError::shape(
                "batch input",
                format!("[{b}, ...]"),
                format!("{:?}", t.size()),
            ));
        }
        let lengths = inputs.iter().map(|_| None).collect();
        let targets: Vec<&Target> = targets.iter().collect();
        Self::assemble(inputs, lengths, &targets, combos, indices, set)
    }

    fn assemble(
        inputs: Vec<Tensor>,
        lengths: Vec<Option<Tensor>>,
        targets: &[&Target],
        combos: &[ModalityMask],
        indices: &[usize],
        set: &ModalitySet,
    ) -> Result<Batch> {
        let (b, m) = (targets.len(), set.len());
        let mut mask = Vec::with_capacity(b * m);
        for c in combos {
            mask.extend(set.presence(*c)?.into_iter().map(|p| if p { 1f32 } else { 0f32 }));
        }
        let mask = Tensor::f_from_slice(&mask)?.f_reshape([b as i64, m as i64])?;
        let targets = collate_targets(targets, indices)?;
        Ok(Batch {
            inputs,
            lengths,
            mask,
            combos: combos.to_vec(),
            targets,
            indices: indices.to_vec(),
        })
    }

    /// Number of samples `B`.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch holds no sample (never true for a collated batch).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The samples at `positions` (in that order) as a batch of their own, e.g. micro-batch
    /// `j` of `K` for gradient accumulation (positions `j, j + K, ...`).
    ///
    /// # Shapes
    /// Every tensor keeps its shape except the first dimension, which becomes
    /// `positions.len()`; an error if a position is not below `B` or none is given.
    pub fn select(&self, positions: &[usize]) -> Result<Batch> {
        let b = self.len();
        if positions.is_empty() {
            return Err(DataError::Config("cannot select an empty batch".into()));
        }
        if let Some(&p) = positions.iter().find(|&&p| p >= b) {
            return Err(DataError::shape("batch position", format!("< {b}"), p));
        }
        let device = self.mask.device();
        let pos: Vec<i64> = positions.iter().map(|&p| p as i64).collect();
        let idx = Tensor::f_from_slice(&pos)?.f_to_device(device)?;
        let pick = |t: &Tensor| t.f_index_select(0, &idx.to_device(t.device()));
        Ok(Batch {
            inputs: self.inputs.iter().map(pick).collect::<std::result::Result<_, _>>()?,
            lengths: self
                .lengths
                .iter()
                .map(|l| l.as_ref().map(pick).transpose())
                .collect::<std::result::Result<_, _>>()?,
            mask: pick(&self.mask)?,
            combos: positions.iter().map(|&p| self.combos[p]).collect(),
            targets: pick(&self.targets)?,
            indices: positions.iter().map(|&p| self.indices[p]).collect(),
        })
    }

    /// A copy with every tensor on `device`.
    pub fn to_device(&self, device: Device) -> Batch {
        Batch {
            inputs: self.inputs.iter().map(|t| t.to_device(device)).collect(),
            lengths: self.lengths.iter().map(|l| l.as_ref().map(|t| t.to_device(device))).collect(),
            mask: self.mask.to_device(device),
            combos: self.combos.clone(),
            targets: self.targets.to_device(device),
            indices: self.indices.clone(),
        }
    }
}

/// A batch of `b > 0` samples with one combination and one index each.
fn check_batch_len(b: usize, combos: &[ModalityMask], indices: &[usize]) -> Result<()> {
    if b == 0 {
        return Err(DataError::Config("cannot collate an empty batch".into()));
    }
    if combos.len() != b || indices.len() != b {
        return Err(DataError::shape("batch combos/indices", b, combos.len().min(indices.len())));
    }
    Ok(())
}

fn collate_targets(targets: &[&Target], indices: &[usize]) -> Result<Tensor> {
    match targets[0] {
        Target::Class(_) => {
            let mut v = Vec::with_capacity(targets.len());
            for (t, idx) in targets.iter().zip(indices) {
                match t {
                    Target::Class(c) => v.push(*c),
                    _ => {
                        return Err(DataError::shape(
                            format!("sample {idx}: target"),
                            "class",
                            "map",
                        ));
                    }
                }
            }
            Ok(Tensor::f_from_slice(&v)?)
        }
        Target::Segmentation { height, width, .. } => {
            let (h, w) = (*height, *width);
            let mut v = Vec::with_capacity(targets.len() * h * w);
            for (t, idx) in targets.iter().zip(indices) {
                match t {
                    Target::Segmentation { labels, height, width }
                        if *height == h && *width == w && labels.len() == h * w =>
                    {
                        v.extend_from_slice(labels)
                    }
                    _ => {
                        return Err(DataError::shape(
                            format!("sample {idx}: label map"),
                            format!("{h}x{w}"),
                            "another size or a class target",
                        ));
                    }
                }
            }
            Ok(Tensor::f_from_slice(&v)?.f_reshape([targets.len() as i64, h as i64, w as i64])?)
        }
    }
}
