//! [`MaskPolicy`]: which modalities are present for each sample.

use mmanet_core::{ModalityMask, ModalitySet};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::{DataError, Result};

/// How missing modalities are simulated (docs/method.md §4).
///
/// Inputs are never zero-filled: the mask travels with the batch and models mask features.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MaskPolicy {
    /// Training: each sample draws one combination uniformly from the list (the reference uses
    /// all `2^M - 1` non-empty combinations, 1/7 each for R, D, I).
    Uniform(Vec<ModalityMask>),
    /// Evaluation: one combination for the whole split.
    Fixed(ModalityMask),
}

impl MaskPolicy {
    /// Uniform over the default training combinations of `set`: all non-empty ones (the
    /// reference's training policy) up to 8 modalities
    /// ([`ModalitySet::default_training_combinations`]).
    pub fn uniform_all(set: &ModalitySet) -> Self {
        MaskPolicy::Uniform(set.default_training_combinations())
    }

    /// Always the full set (teacher training, or complete-modality evaluation).
    pub fn full(set: &ModalitySet) -> Self {
        MaskPolicy::Fixed(set.full())
    }

    /// Checks that the policy is non-empty and only uses modalities of `set`.
    pub fn validate(&self, set: &ModalitySet) -> Result<()> {
        match self {
            MaskPolicy::Uniform(list) if list.is_empty() => {
                Err(DataError::Config("MaskPolicy::Uniform needs at least one combination".into()))
            }
            MaskPolicy::Uniform(list) => {
                list.iter().try_for_each(|m| set.check(*m).map(|_| ()))?;
                Ok(())
            }
            MaskPolicy::Fixed(m) => {
                set.check(*m)?;
                Ok(())
            }
        }
    }

    /// One draw (uses `rng` only for [`MaskPolicy::Uniform`]). Panics on an empty uniform list;
    /// [`MaskPolicy::validate`] rules that out.
    pub fn draw(&self, rng: &mut ChaCha8Rng) -> ModalityMask {
        match self {
            MaskPolicy::Uniform(list) => list[rng.random_range(0..list.len())],
            MaskPolicy::Fixed(m) => *m,
        }
    }
}
