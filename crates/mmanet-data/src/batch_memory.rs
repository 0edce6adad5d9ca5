//! [`BatchMemory`]: batch tensors the loader's threads decode into directly.
//!
//! The loader's fixed-shape path allocates one uninitialised `[B, ...]` f32 tensor per
//! modality, lends their memory to the decoding threads as plain slices, and hands the
//! tensors out when the batch is full: no intermediate buffer and no copy. Making a tensor
//! from a slice instead (`Tensor::from_slice`) zero-fills the new tensor and then copies into
//! it, two passes over ~29 MB per CASIA-SURF batch, and libtorch ran that fill on an OpenMP
//! team whose idle thread then spun on the caller's behalf.

// Lending a tensor's memory as a slice needs its raw pointer; the invariants are in
// `BatchMemory::slices_mut`.
#![allow(unsafe_code)]

use tch::{Device, Kind, Tensor};

use crate::{DataError, Result};

/// One `[len, shape...]` f32 CPU tensor per modality, being filled.
///
/// The tensors are never shared before [`BatchMemory::into_tensors`] consumes the value, so
/// the slices of [`BatchMemory::slices_mut`] are the only access to their memory.
pub(crate) struct BatchMemory {
    tensors: Vec<Tensor>,
    per_sample: Vec<usize>,
    len: usize,
}

impl BatchMemory {
    /// Uninitialised tensors for `len` samples of the given per-sample shapes, in page-locked
    /// memory for `pin` (a CUDA device) when given.
    ///
    /// # Shapes
    /// Tensor `m` is `[len, shapes[m]...]`.
    pub(crate) fn new(len: usize, shapes: &[Vec<i64>], pin: Option<Device>) -> Result<Self> {
        let mut tensors = Vec::with_capacity(shapes.len());
        let mut per_sample = Vec::with_capacity(shapes.len());
        for shape in shapes {
            if shape.iter().any(|&d| d < 0) {
                return Err(DataError::Config(format!("negative batch shape {shape:?}")));
            }
            let mut size = vec![len as i64];
            size.extend_from_slice(shape);
            let t = Tensor::f_empty(size.as_slice(), (Kind::Float, Device::Cpu))?;
            let t = match pin {
                Some(device) => t.f_pin_memory(device)?,
                None => t,
            };
            if !t.is_contiguous() || t.device() != Device::Cpu || t.kind() != Kind::Float {
                return Err(DataError::Worker(
                    "libtorch returned a batch tensor that is not contiguous f32 on the CPU".into(),
                ));
            }
            per_sample.push(shape.iter().product::<i64>() as usize);
            tensors.push(t);
        }
        Ok(BatchMemory { tensors, per_sample, len })
    }

    /// Values per sample of each modality.
    pub(crate) fn per_sample(&self) -> &[usize] {
        &self.per_sample
    }

    /// Each modality's memory, `len * per_sample[m]` values. Their content is unspecified
    /// until written: every value of the samples handed out must be written first.
    pub(crate) fn slices_mut(&mut self) -> Vec<&mut [f32]> {
        self.tensors
            .iter()
            .zip(&self.per_sample)
            .map(|(t, &per)| {
                let n = self.len * per;
                if n == 0 {
                    return &mut [][..];
                }
                // SAFETY: `t` is a contiguous f32 CPU tensor of `n` elements (checked in
                // `new`), created here and never shared: no view or clone of it exists until
                // `into_tensors` consumes `self`, so this slice, which borrows `self`
                // mutably, is the only access to that memory while it lives; the storage is
                // not reallocated (nothing resizes the tensor), and libtorch's allocator
                // aligns it for f32. Its values come from the allocator through FFI.
                unsafe { std::slice::from_raw_parts_mut(t.data_ptr().cast::<f32>(), n) }
            })
            .collect()
    }

    /// The first `n <= len` samples of every modality.
    ///
    /// # Shapes
    /// Tensor `m` is `[n, shapes[m]...]` (a view of the first `n` rows).
    pub(crate) fn into_tensors(self, n: usize) -> Result<Vec<Tensor>> {
        if n > self.len {
            return Err(DataError::shape("batch samples", self.len, n));
        }
        self.tensors
            .into_iter()
            .map(|t| Ok(if n == self.len { t } else { t.f_narrow(0, 0, n as i64)? }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_slices_become_the_tensor_values() {
        let shapes = vec![vec![2, 3], vec![5]];
        let mut mem = BatchMemory::new(4, &shapes, None).unwrap();
        assert_eq!(mem.per_sample(), [6, 5]);
        for (m, s) in mem.slices_mut().into_iter().enumerate() {
            for (i, v) in s.iter_mut().enumerate() {
                *v = (m * 100 + i) as f32;
            }
        }
        let t = mem.into_tensors(3).unwrap();
        assert_eq!(t[0].size(), [3, 2, 3]);
        assert_eq!(t[1].size(), [3, 5]);
        let want0: Vec<f32> = (0..18).map(|i| i as f32).collect();
        let want1: Vec<f32> = (0..15).map(|i| (100 + i) as f32).collect();
        assert!(t[0].equal(&Tensor::from_slice(&want0).reshape([3, 2, 3])));
        assert!(t[1].equal(&Tensor::from_slice(&want1).reshape([3, 5])));
    }

    #[test]
    fn empty_batches_and_bad_counts() {
        let mut mem = BatchMemory::new(0, &[vec![3, 2]], None).unwrap();
        assert!(mem.slices_mut()[0].is_empty());
        assert_eq!(mem.into_tensors(0).unwrap()[0].size(), [0, 3, 2]);
        let mem = BatchMemory::new(2, &[vec![1]], None).unwrap();
        assert!(mem.into_tensors(3).is_err(), "more samples than allocated");
        assert!(BatchMemory::new(2, &[vec![-1]], None).is_err(), "negative dimension");
    }
}
