//! [`ModalityMask`]: a non-empty subset of a task's modalities.

use crate::CoreError;

/// A non-empty set of modality positions of one task: bit `m` is position `m` of the task's
/// [`crate::ModalitySet`] (column `m` of a `[B, M]` mask tensor).
///
/// A mask alone has no names: it is parsed and printed against its set
/// ([`crate::ModalitySet::parse_mask`], [`crate::ModalitySet::format`]); serialised masks are
/// those strings (`R+D+I`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModalityMask(u32);

impl ModalityMask {
    /// A mask holding exactly position `m` (`m < 32`).
    pub fn single(m: usize) -> Self {
        assert!(m < 32, "modality position {m} does not fit a 32-bit mask");
        ModalityMask(1 << m)
    }

    /// A mask from positions; fails when the iterator is empty or a position is >= 32.
    pub fn from_positions<I: IntoIterator<Item = usize>>(it: I) -> Result<Self, CoreError> {
        let mut bits = 0u32;
        for m in it {
            if m >= 32 {
                return Err(CoreError::SetSize { got: m + 1, max: 32 });
            }
            bits |= 1 << m;
        }
        Self::from_bits(bits)
    }

    /// A mask from its raw bitset; fails on 0.
    pub fn from_bits(bits: u32) -> Result<Self, CoreError> {
        if bits == 0 {
            return Err(CoreError::EmptyMask);
        }
        Ok(ModalityMask(bits))
    }

    /// The raw bitset.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether position `m` is present.
    pub fn contains(self, m: usize) -> bool {
        m < 32 && self.0 & (1 << m) != 0
    }

    /// Whether every position of `other` is present in `self`.
    pub fn is_superset_of(self, other: ModalityMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// The positions present in both, if any.
    pub fn intersect(self, other: ModalityMask) -> Option<ModalityMask> {
        Self::from_bits(self.0 & other.0).ok()
    }

    /// Number of modalities present.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The present positions in increasing order.
    pub fn positions(self) -> impl Iterator<Item = usize> {
        (0..32usize).filter(move |k| self.0 & (1 << k) != 0)
    }
}

impl Ord for ModalityMask {
    /// Order of the paper's tables: by number of modalities, then by position
    /// (R < D < I < R+D < R+I < D+I < R+D+I).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |m: &ModalityMask| (m.count(), m.positions().collect::<Vec<_>>());
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for ModalityMask {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_out_of_range_are_errors() {
        assert_eq!(ModalityMask::from_bits(0), Err(CoreError::EmptyMask));
        assert_eq!(ModalityMask::from_positions([]), Err(CoreError::EmptyMask));
        assert!(ModalityMask::from_positions([32]).is_err());
        assert_eq!(ModalityMask::from_positions([31]).unwrap().bits(), 1 << 31);
    }

    #[test]
    fn set_operations() {
        let rdi = ModalityMask::from_positions([0, 1, 2]).unwrap();
        let ri = ModalityMask::from_positions([0, 2]).unwrap();
        assert!(rdi.is_superset_of(ri));
        assert!(!ri.is_superset_of(rdi));
        assert!(ri.contains(2) && !ri.contains(1) && !ri.contains(40));
        assert_eq!(rdi.count(), 3);
        assert_eq!(ri.positions().collect::<Vec<_>>(), [0, 2]);
        assert_eq!(ri.intersect(ModalityMask::single(1)), None);
        assert_eq!(ri.intersect(rdi), Some(ri));
    }

    #[test]
    fn ordering_follows_the_paper_tables() {
        let p = |v: &[usize]| ModalityMask::from_positions(v.iter().copied()).unwrap();
        let mut v =
            vec![p(&[0, 1, 2]), p(&[1, 2]), p(&[0]), p(&[0, 2]), p(&[2]), p(&[0, 1]), p(&[1])];
        v.sort();
        assert_eq!(
            v,
            [p(&[0]), p(&[1]), p(&[2]), p(&[0, 1]), p(&[0, 2]), p(&[1, 2]), p(&[0, 1, 2])]
        );
    }
}
