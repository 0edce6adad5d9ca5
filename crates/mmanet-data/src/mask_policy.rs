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
    /// Evaluation "as observed": each sample with the modalities it really has
    /// ([`crate::Dataset::availability`]).
    Observed,
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
            MaskPolicy::Observed => Ok(()),
        }
    }

    /// One draw for a sample that has the modalities `available`: never a mask with a modality
    /// the sample lacks.
    ///
    /// - `Uniform`: uniform among the listed combinations that `available` holds (a complete
    ///   sample draws `list[rng.random_range(0..list.len())]`, as before availability existed,
    ///   so complete data is unaffected); when none is, `available` itself. Panics on an empty
    ///   list; [`MaskPolicy::validate`] rules that out.
    /// - `Fixed(m)`: `m` where the sample has it, else what it has of `m`, else `available`
    ///   (evaluation restricts a forced combination to the samples that have it).
    /// - `Observed`: `available`.
    pub fn draw_within(&self, rng: &mut ChaCha8Rng, available: ModalityMask) -> ModalityMask {
        match self {
            MaskPolicy::Uniform(list) => {
                if list.iter().all(|c| available.is_superset_of(*c)) {
                    return list[rng.random_range(0..list.len())];
                }
                let allowed: Vec<ModalityMask> =
                    list.iter().copied().filter(|c| available.is_superset_of(*c)).collect();
                if allowed.is_empty() {
                    available
                } else {
                    allowed[rng.random_range(0..allowed.len())]
                }
            }
            MaskPolicy::Fixed(m) => m.intersect(available).unwrap_or(available),
            MaskPolicy::Observed => available,
        }
    }
}

#[cfg(test)]
mod availability_tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn draws_never_use_a_modality_the_sample_lacks() {
        let set = ModalitySet::from_names(["rgb", "depth", "ir"]).unwrap();
        let all = MaskPolicy::uniform_all(&set);
        let ri = set.parse_mask("R+I").unwrap();
        let mut seen = Vec::new();
        for seed in 0..400 {
            let m = all.draw_within(&mut ChaCha8Rng::seed_from_u64(seed), ri);
            assert!(ri.is_superset_of(m), "{}", set.format(m));
            seen.push(m);
            // A complete sample draws exactly what the plain uniform draw gives.
            let a = all.draw_within(&mut ChaCha8Rng::seed_from_u64(seed), set.full());
            let MaskPolicy::Uniform(list) = &all else { panic!("uniform") };
            let plain = list[ChaCha8Rng::seed_from_u64(seed).random_range(0..list.len())];
            assert_eq!(a, plain);
        }
        seen.sort();
        seen.dedup();
        assert_eq!(set.format_all(&seen), ["R", "I", "R+I"], "uniform among what R+I allows");
        // No listed combination fits: the sample's own modalities.
        let full_only = MaskPolicy::full(&set);
        assert_eq!(full_only.draw_within(&mut ChaCha8Rng::seed_from_u64(0), ri), ri);
        let d = set.parse_mask("D").unwrap();
        let only_d = MaskPolicy::Uniform(vec![d]);
        assert_eq!(only_d.draw_within(&mut ChaCha8Rng::seed_from_u64(0), ri), ri);
        assert_eq!(MaskPolicy::Observed.draw_within(&mut ChaCha8Rng::seed_from_u64(0), ri), ri);
        let fixed = MaskPolicy::Fixed(set.parse_mask("R+D").unwrap());
        assert_eq!(set.format(fixed.draw_within(&mut ChaCha8Rng::seed_from_u64(0), ri)), "R");
    }
}
