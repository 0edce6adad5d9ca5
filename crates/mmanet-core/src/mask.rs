//! [`ModalityMask`]: a non-empty subset of modalities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CoreError, Modality};

/// A non-empty set of modalities, stored as a bitset over the canonical [`Modality`] order.
///
/// Written with `+` between symbols in canonical order: `R+D+I`, `D`, `Img+A`. Parsing accepts
/// symbols or long names in any order and case (`ir+rgb` parses to `R+I`), and the compact
/// one-letter form of the paper's tables (`RDI`, `RI`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ModalityMask(u32);

impl ModalityMask {
    /// A mask holding exactly `modality`.
    pub fn single(modality: Modality) -> Self {
        ModalityMask(1 << modality.index())
    }

    /// A mask from modalities; fails when the iterator is empty.
    pub fn from_modalities<I: IntoIterator<Item = Modality>>(it: I) -> Result<Self, CoreError> {
        let bits = it.into_iter().fold(0u32, |acc, m| acc | (1 << m.index()));
        Self::from_bits(bits)
    }

    /// A mask from its raw bitset (bit `k` = [`Modality::from_index`]`(k)`); fails on 0 or on
    /// bits that name no modality.
    pub fn from_bits(bits: u32) -> Result<Self, CoreError> {
        if bits == 0 {
            return Err(CoreError::EmptyMask);
        }
        if let Some(k) =
            (0..32).find(|&k| bits & (1 << k) != 0 && Modality::from_index(k).is_none())
        {
            return Err(CoreError::UnknownModality(format!("bit {k}")));
        }
        Ok(ModalityMask(bits))
    }

    /// The raw bitset.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Whether `modality` is present.
    pub fn contains(self, modality: Modality) -> bool {
        self.0 & (1 << modality.index()) != 0
    }

    /// Whether every modality of `other` is present in `self`.
    pub fn is_superset_of(self, other: ModalityMask) -> bool {
        self.0 & other.0 == other.0
    }

    /// Number of modalities present.
    pub fn count(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The present modalities in canonical order.
    pub fn modalities(self) -> impl Iterator<Item = Modality> {
        (0..32u32).filter(move |k| self.0 & (1 << k) != 0).filter_map(Modality::from_index)
    }
}

impl fmt::Display for ModalityMask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.modalities().map(Modality::symbol).collect();
        f.write_str(&parts.join("+"))
    }
}

impl FromStr for ModalityMask {
    type Err = CoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.is_empty() {
            return Err(CoreError::EmptyMask);
        }
        // The tables' compact form: one-letter symbols run together ("RDI", "RI").
        // A whole token that names a modality wins ("ir", "IR" are infrared, not R+I).
        let compact = !t.contains('+')
            && t.len() > 1
            && t.parse::<Modality>().is_err()
            && t.chars().all(|c| matches!(c.to_ascii_uppercase(), 'R' | 'D' | 'I'));
        let tokens: Vec<String> = if compact {
            t.chars().map(String::from).collect()
        } else {
            t.split('+').map(str::to_string).collect()
        };
        let mut bits = 0u32;
        for tok in &tokens {
            let m: Modality = tok.parse()?;
            let bit = 1 << m.index();
            if bits & bit != 0 {
                return Err(CoreError::DuplicateModality(m.symbol()));
            }
            bits |= bit;
        }
        Self::from_bits(bits)
    }
}

impl Ord for ModalityMask {
    /// Order of the paper's tables: by number of modalities, then by canonical position
    /// (R < D < I < R+D < R+I < D+I < R+D+I).
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let key = |m: &ModalityMask| {
            let positions: Vec<u32> = m.modalities().map(Modality::index).collect();
            (m.count(), positions)
        };
        key(self).cmp(&key(other))
    }
}

impl PartialOrd for ModalityMask {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Serialize for ModalityMask {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ModalityMask {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_canonical_whatever_the_input_order() {
        let m: ModalityMask = "ir+rgb".parse().unwrap();
        assert_eq!(m.to_string(), "R+I");
        let m: ModalityMask = "I+D+R".parse().unwrap();
        assert_eq!(m.to_string(), "R+D+I");
    }

    #[test]
    fn compact_table_form_parses() {
        assert_eq!("RDI".parse::<ModalityMask>().unwrap().to_string(), "R+D+I");
        assert_eq!("DI".parse::<ModalityMask>().unwrap().to_string(), "D+I");
        assert_eq!("D".parse::<ModalityMask>().unwrap().to_string(), "D");
        assert_eq!("IR".parse::<ModalityMask>().unwrap().to_string(), "I");
        assert_eq!("ir".parse::<ModalityMask>().unwrap().to_string(), "I");
    }

    #[test]
    fn empty_duplicate_and_unknown_are_errors() {
        assert_eq!("".parse::<ModalityMask>(), Err(CoreError::EmptyMask));
        assert_eq!(ModalityMask::from_bits(0), Err(CoreError::EmptyMask));
        assert_eq!("R+R".parse::<ModalityMask>(), Err(CoreError::DuplicateModality("R".into())));
        assert!(matches!("R+Q".parse::<ModalityMask>(), Err(CoreError::UnknownModality(_))));
        assert!(ModalityMask::from_bits(1 << 31).is_err());
    }

    #[test]
    fn round_trip_through_display_and_serde() {
        for text in ["R", "D+I", "Img+A", "Acc+Gyr", "Pix+Fou+Fac+Kar+Zer+Mor", "R+X3"] {
            let m: ModalityMask = text.parse().unwrap();
            assert_eq!(m.to_string(), text);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<ModalityMask>(&json).unwrap(), m);
        }
    }

    #[test]
    fn set_operations() {
        let rdi: ModalityMask = "RDI".parse().unwrap();
        let ri: ModalityMask = "RI".parse().unwrap();
        assert!(rdi.is_superset_of(ri));
        assert!(!ri.is_superset_of(rdi));
        assert!(ri.contains(Modality::Ir) && !ri.contains(Modality::Depth));
        assert_eq!(rdi.count(), 3);
        assert_eq!(ri.modalities().collect::<Vec<_>>(), [Modality::Rgb, Modality::Ir]);
    }

    #[test]
    fn ordering_follows_the_paper_tables() {
        let mut v: Vec<ModalityMask> =
            ["RDI", "DI", "R", "RI", "I", "RD", "D"].iter().map(|s| s.parse().unwrap()).collect();
        v.sort();
        let names: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(names, ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"]);
    }
}
