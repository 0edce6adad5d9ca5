//! [`ModalitySet`]: the modalities of one task, in canonical order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CoreError, Modality, ModalityMask};

/// The ordered modalities of a task. Position `m` in the set is column `m` of every `[B, M]`
/// mask tensor and the `m`-th input of every network.
///
/// The order is always canonical (the [`Modality`] declaration order), so CASIA-SURF is
/// `R+D+I` (the fusion order of the official code) however it was written.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModalitySet {
    order: Vec<Modality>,
}

impl ModalitySet {
    /// The largest number of modalities a task may have.
    pub const MAX: usize = 8;

    /// A set from modalities in any order; fails on duplicates, on an empty list and on more than
    /// [`ModalitySet::MAX`] modalities.
    pub fn new<I: IntoIterator<Item = Modality>>(modalities: I) -> Result<Self, CoreError> {
        let mut order: Vec<Modality> = modalities.into_iter().collect();
        order.sort();
        if let Some(w) = order.windows(2).find(|w| w[0] == w[1]) {
            return Err(CoreError::DuplicateModality(w[0].symbol()));
        }
        if order.is_empty() || order.len() > Self::MAX {
            return Err(CoreError::SetSize { got: order.len(), max: Self::MAX });
        }
        Ok(ModalitySet { order })
    }

    /// CASIA-SURF and CeFA: RGB, depth, IR.
    pub fn surf() -> Self {
        Self::new([Modality::Rgb, Modality::Depth, Modality::Ir]).expect("valid set")
    }

    /// NYUv2 and Cityscapes: RGB, depth.
    pub fn rgbd() -> Self {
        Self::new([Modality::Rgb, Modality::Depth]).expect("valid set")
    }

    /// Number of modalities `M`.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Always false: a set holds at least one modality.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The modalities in canonical order.
    pub fn modalities(&self) -> &[Modality] {
        &self.order
    }

    /// Position of `modality` in the set.
    pub fn position(&self, modality: Modality) -> Option<usize> {
        self.order.iter().position(|m| *m == modality)
    }

    /// The mask holding every modality of the task.
    pub fn full(&self) -> ModalityMask {
        ModalityMask::from_modalities(self.order.iter().copied()).expect("non-empty set")
    }

    /// Whether `mask` only uses modalities of this set.
    pub fn admits(&self, mask: ModalityMask) -> bool {
        self.full().is_superset_of(mask)
    }

    /// Checks that `mask` only uses modalities of this set.
    pub fn check(&self, mask: ModalityMask) -> Result<ModalityMask, CoreError> {
        match mask.modalities().find(|m| self.position(*m).is_none()) {
            None => Ok(mask),
            Some(m) => Err(CoreError::NotInSet {
                mask: mask.to_string(),
                modality: m.symbol(),
                set: self.to_string(),
            }),
        }
    }

    /// Per-position presence bits of `mask` (`[true, false, true]` for `R+I` in SURF).
    pub fn presence(&self, mask: ModalityMask) -> Result<Vec<bool>, CoreError> {
        self.check(mask)?;
        Ok(self.order.iter().map(|m| mask.contains(*m)).collect())
    }

    /// The mask whose present positions are `bits[m]`; fails on a wrong length or no bit set.
    pub fn mask_from_presence(&self, bits: &[bool]) -> Result<ModalityMask, CoreError> {
        if bits.len() != self.len() {
            return Err(CoreError::WrongLength { got: bits.len(), expected: self.len() });
        }
        ModalityMask::from_modalities(
            self.order.iter().zip(bits).filter(|(_, b)| **b).map(|(m, _)| *m),
        )
    }

    /// All `2^M - 1` non-empty combinations in the paper's evaluation order: by size, then by
    /// position (R, D, I, R+D, R+I, D+I, R+D+I for M = 3).
    pub fn combinations(&self) -> Vec<ModalityMask> {
        let m = self.len();
        let mut out: Vec<ModalityMask> = (1u32..(1 << m))
            .map(|sub| {
                let bits: Vec<bool> = (0..m).map(|k| sub & (1 << k) != 0).collect();
                self.mask_from_presence(&bits).expect("non-empty subset")
            })
            .collect();
        out.sort();
        out
    }

    /// The combinations with exactly `k` modalities, in evaluation order.
    pub fn combinations_of_size(&self, k: usize) -> Vec<ModalityMask> {
        self.combinations().into_iter().filter(|c| c.count() == k).collect()
    }

    /// The single-modality masks, in canonical order.
    pub fn singles(&self) -> Vec<ModalityMask> {
        self.order.iter().map(|m| ModalityMask::single(*m)).collect()
    }
}

impl fmt::Display for ModalitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.full(), f)
    }
}

impl FromStr for ModalitySet {
    type Err = CoreError;

    /// Parses `R+D+I` (or any [`ModalityMask`] spelling) into the set of those modalities.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mask: ModalityMask = s.parse()?;
        ModalitySet::new(mask.modalities())
    }
}

impl Serialize for ModalitySet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(&self.order)
    }
}

impl<'de> Deserialize<'de> for ModalitySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<Modality>::deserialize(d)?;
        ModalitySet::new(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[ModalityMask]) -> Vec<String> {
        v.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn surf_combinations_follow_the_paper_order() {
        let c = ModalitySet::surf().combinations();
        assert_eq!(names(&c), ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"]);
    }

    #[test]
    fn rgbd_combinations() {
        assert_eq!(names(&ModalitySet::rgbd().combinations()), ["R", "D", "R+D"]);
    }

    #[test]
    fn count_is_two_to_the_m_minus_one_for_m_up_to_six() {
        let all: Vec<Modality> = Modality::all().collect();
        for m in 1..=6 {
            let set = ModalitySet::new(all[7..7 + m].iter().copied()).unwrap();
            let c = set.combinations();
            assert_eq!(c.len(), (1 << m) - 1);
            let mut dedup = c.clone();
            dedup.dedup();
            assert_eq!(dedup.len(), c.len());
            assert!(c.windows(2).all(|w| w[0].count() <= w[1].count()));
            assert!(c.iter().all(|x| set.admits(*x)));
            assert_eq!(*c.last().unwrap(), set.full());
        }
    }

    #[test]
    fn order_is_canonical_and_duplicates_rejected() {
        let s = ModalitySet::new([Modality::Ir, Modality::Rgb, Modality::Depth]).unwrap();
        assert_eq!(s, ModalitySet::surf());
        assert_eq!(s.to_string(), "R+D+I");
        assert_eq!(s.position(Modality::Ir), Some(2));
        assert!(matches!(
            ModalitySet::new([Modality::Rgb, Modality::Rgb]),
            Err(CoreError::DuplicateModality(_))
        ));
        assert!(matches!(ModalitySet::new([]), Err(CoreError::SetSize { got: 0, .. })));
    }

    #[test]
    fn presence_round_trip_and_foreign_masks() {
        let s = ModalitySet::surf();
        for c in s.combinations() {
            let bits = s.presence(c).unwrap();
            assert_eq!(s.mask_from_presence(&bits).unwrap(), c);
        }
        assert_eq!(s.presence("R+I".parse().unwrap()).unwrap(), [true, false, true]);
        let foreign: ModalityMask = "R+A".parse().unwrap();
        assert!(matches!(s.presence(foreign), Err(CoreError::NotInSet { .. })));
        assert_eq!(s.mask_from_presence(&[false; 3]), Err(CoreError::EmptyMask));
        assert!(matches!(s.mask_from_presence(&[true; 2]), Err(CoreError::WrongLength { .. })));
    }

    #[test]
    fn singles_and_sizes() {
        let s = ModalitySet::surf();
        assert_eq!(names(&s.singles()), ["R", "D", "I"]);
        assert_eq!(names(&s.combinations_of_size(2)), ["R+D", "R+I", "D+I"]);
    }

    #[test]
    fn parses_and_serialises() {
        let s: ModalitySet = "I+R".parse().unwrap();
        assert_eq!(s.to_string(), "R+I");
        let json = serde_json::to_string(&ModalitySet::surf()).unwrap();
        assert_eq!(json, r#"["rgb","depth","ir"]"#);
        assert_eq!(serde_json::from_str::<ModalitySet>(&json).unwrap(), ModalitySet::surf());
    }
}
