//! [`Sample`]: one decoded example as plain vectors (no tensors, so workers can build it).

use crate::{DataError, Result};

/// What a data set is for, with its number of classes. Serialised as
/// `{"kind": "classification", "num_classes": 10}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Task {
    /// One label per sample in `0..num_classes`.
    Classification {
        /// Number of classes `K`.
        num_classes: usize,
    },
    /// One label per pixel; 0 = void, `1..=num_classes` are the classes (ESANet convention,
    /// docs/method.md §6.2).
    Segmentation {
        /// Number of classes `C`, void excluded.
        num_classes: usize,
    },
}

impl Task {
    /// Number of classes (void excluded for segmentation).
    pub fn num_classes(self) -> usize {
        match self {
            Task::Classification { num_classes } | Task::Segmentation { num_classes } => {
                num_classes
            }
        }
    }
}

/// The supervision of one sample.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// A class index.
    Class(i64),
    /// A label map, row-major `height * width` (0 = void).
    Segmentation {
        /// Labels, row-major.
        labels: Vec<i64>,
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
    },
}

/// One modality of one sample: a dense row-major f32 array.
#[derive(Clone, Debug, PartialEq)]
pub struct ModalityData {
    /// Values, row-major, `shape.iter().product()` of them.
    pub data: Vec<f32>,
    /// The shape, e.g. `[3, H, W]` for an image, `[T, F]` for a sequence, `[D]` for a vector.
    pub shape: Vec<i64>,
    /// For a padded sequence, its true length (`<= shape[0]`); `None` otherwise.
    pub length: Option<i64>,
}

impl ModalityData {
    /// A modality array; fails when `data.len()` is not the product of `shape`.
    pub fn new(data: Vec<f32>, shape: Vec<i64>) -> Result<Self> {
        let n: i64 = shape.iter().product();
        if shape.iter().any(|d| *d < 0) || n as usize != data.len() {
            return Err(DataError::shape("modality data", format!("{shape:?}"), data.len()));
        }
        Ok(ModalityData { data, shape, length: None })
    }

    /// A padded sequence `[T, F]` with its true length.
    pub fn sequence(data: Vec<f32>, shape: Vec<i64>, length: i64) -> Result<Self> {
        let mut m = Self::new(data, shape)?;
        if m.shape.is_empty() || length < 0 || length > m.shape[0] {
            return Err(DataError::shape("sequence length", format!("<= {:?}", m.shape), length));
        }
        m.length = Some(length);
        Ok(m)
    }
}

/// One example: its modalities in the canonical order of the data set's
/// [`mmanet_core::ModalitySet`], and its target.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// One entry per modality of the set, in canonical order.
    pub inputs: Vec<ModalityData>,
    /// The label(s).
    pub target: Target,
}
