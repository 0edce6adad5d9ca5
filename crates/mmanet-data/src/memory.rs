//! [`InMemoryDataset`]: samples held in memory (tests, small real sets, the trainer's smoke runs).

use mmanet_core::ModalitySet;
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::dataset::{copy_into, index_error};
use crate::seeding::{Stream, derive_rng};
use crate::{DataError, Dataset, ModalityData, Result, Sample, Target, Task};

/// A data set of ready samples; `get` clones (no augmentation).
#[derive(Clone, Debug)]
pub struct InMemoryDataset {
    modalities: ModalitySet,
    task: Task,
    samples: Vec<Sample>,
}

impl InMemoryDataset {
    /// A set from samples; fails when a sample has the wrong number of modalities, a class
    /// outside `0..num_classes` or a label above `num_classes` (segmentation), or a target of
    /// the other kind.
    pub fn new(modalities: ModalitySet, task: Task, samples: Vec<Sample>) -> Result<Self> {
        let k = task.num_classes() as i64;
        for (i, s) in samples.iter().enumerate() {
            if s.inputs.len() != modalities.len() {
                return Err(DataError::shape(
                    format!("sample {i}: modalities"),
                    modalities.len(),
                    s.inputs.len(),
                ));
            }
            let ok = match (&s.target, task) {
                (Target::Class(c), Task::Classification { .. }) => (0..k).contains(c),
                (Target::Segmentation { labels, .. }, Task::Segmentation { .. }) => {
                    labels.iter().all(|l| (0..=k).contains(l))
                }
                _ => false,
            };
            if !ok {
                return Err(DataError::Config(format!(
                    "sample {i}: target does not fit the task {task:?}"
                )));
            }
        }
        Ok(InMemoryDataset { modalities, task, samples })
    }

    /// A seeded Gaussian-prototype classification set.
    ///
    /// Modality `m` of a class-`y` sample is `prototype[m][y] + noise[m] * N(0, 1)`, each
    /// prototype entry `N(0, 1)`: the label is recoverable from every modality, more easily
    /// for a smaller `noise[m]`. Labels cycle `0, 1, .., K-1, 0, ..`.
    ///
    /// # Shapes
    /// Sample modality `m` has shape `shapes[m]`.
    pub fn synthetic_classification(
        modalities: ModalitySet,
        shapes: &[Vec<i64>],
        noise: &[f32],
        num_classes: usize,
        n: usize,
        seed: u64,
    ) -> Result<Self> {
        let m = modalities.len();
        if shapes.len() != m || noise.len() != m || num_classes == 0 {
            return Err(DataError::Config(format!(
                "synthetic set: need {m} shapes and noise levels and >= 1 class"
            )));
        }
        let mut rng = derive_rng(seed, 0, 0, Stream::Generate);
        let protos: Vec<Vec<Vec<f32>>> = shapes
            .iter()
            .map(|s| {
                let d = s.iter().product::<i64>() as usize;
                (0..num_classes).map(|_| (0..d).map(|_| normal(&mut rng)).collect()).collect()
            })
            .collect();
        let mut samples = Vec::with_capacity(n);
        for i in 0..n {
            let y = i % num_classes;
            let inputs = (0..m)
                .map(|k| {
                    let data =
                        protos[k][y].iter().map(|p| p + noise[k] * normal(&mut rng)).collect();
                    ModalityData::new(data, shapes[k].clone())
                })
                .collect::<Result<Vec<_>>>()?;
            samples.push(Sample { inputs, target: Target::Class(y as i64) });
        }
        Self::new(modalities, Task::Classification { num_classes }, samples)
    }

    /// The samples.
    pub fn samples(&self) -> &[Sample] {
        &self.samples
    }
}

/// A standard normal draw (Box-Muller).
pub(crate) fn normal(rng: &mut ChaCha8Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}

impl Dataset for InMemoryDataset {
    fn len(&self) -> usize {
        self.samples.len()
    }

    fn modalities(&self) -> &ModalitySet {
        &self.modalities
    }

    fn task(&self) -> Task {
        self.task
    }

    fn get(&self, index: usize, _rng: &mut ChaCha8Rng) -> Result<Sample> {
        self.samples.get(index).cloned().ok_or_else(|| index_error(index, self.samples.len()))
    }

    fn fixed_shapes(&self) -> Option<Vec<Vec<i64>>> {
        let first = self.samples.first()?;
        let shapes: Vec<Vec<i64>> = first.inputs.iter().map(|m| m.shape.clone()).collect();
        let same = self.samples.iter().all(|s| {
            s.inputs.iter().zip(&shapes).all(|(m, shape)| m.length.is_none() && &m.shape == shape)
        });
        same.then_some(shapes)
    }

    fn get_into(
        &self,
        index: usize,
        _rng: &mut ChaCha8Rng,
        outs: &mut [&mut [f32]],
    ) -> Result<Target> {
        let s = self.samples.get(index).ok_or_else(|| index_error(index, self.samples.len()))?;
        copy_into(s, index, outs)?;
        Ok(s.target.clone())
    }
}
