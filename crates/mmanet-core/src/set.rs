//! [`ModalitySet`]: the modalities of one task, in the task's order.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::modality::derive_symbols;
use crate::{CoreError, Modality, ModalityMask};

/// One entry of a config's modality list: a bare name (`"rgb"`, symbol derived) or a table
/// with an explicit symbol (`{ name = "rgb", symbol = "R" }`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModalityDecl {
    /// A name; the symbol is derived ([`crate::modality::derive_symbols`]).
    Name(String),
    /// A name and its symbol.
    Named {
        /// The name.
        name: String,
        /// The symbol; absent: derived.
        #[serde(default)]
        symbol: Option<String>,
    },
}

impl ModalityDecl {
    fn name(&self) -> &str {
        match self {
            ModalityDecl::Name(n) | ModalityDecl::Named { name: n, .. } => n,
        }
    }

    fn symbol(&self) -> Option<&str> {
        match self {
            ModalityDecl::Name(_) => None,
            ModalityDecl::Named { symbol, .. } => symbol.as_deref(),
        }
    }
}

/// The ordered modalities of a task. Position `m` in the set is column `m` of every `[B, M]`
/// mask tensor, bit `m` of every [`ModalityMask`] and the `m`-th input of every network.
///
/// The order is the task's own (the order its reader or config declares); names and symbols
/// are unique (symbols ignoring case, and no symbol spells another modality's name), so every
/// mask string parses one way.
///
/// ```
/// use mmanet_core::ModalitySet;
///
/// let set = ModalitySet::from_names(["rgb", "lidar", "radar"])?;
/// assert_eq!(set.to_string(), "R+L+Ra");
/// let m = set.parse_mask("lidar+Ra")?;
/// assert_eq!(set.format(m), "L+Ra");
/// assert_eq!(set.presence(m)?, [false, true, true]);
/// # Ok::<(), mmanet_core::CoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModalitySet {
    order: Vec<Modality>,
}

impl ModalitySet {
    /// The largest number of modalities a task may have: a mask is a 32-bit set over the
    /// task's positions.
    pub const MAX: usize = 32;

    /// Above this many modalities, [`ModalitySet::default_combinations`] no longer lists all
    /// `2^M - 1` combinations.
    pub const ALL_COMBINATIONS_UP_TO: usize = 4;

    /// A set from modalities in the task's order; fails on an empty list, more than
    /// [`ModalitySet::MAX`] modalities, a repeated name or an ambiguous symbol.
    pub fn new<I: IntoIterator<Item = Modality>>(modalities: I) -> Result<Self, CoreError> {
        let order: Vec<Modality> = modalities.into_iter().collect();
        if order.is_empty() || order.len() > Self::MAX {
            return Err(CoreError::SetSize { got: order.len(), max: Self::MAX });
        }
        for (i, a) in order.iter().enumerate() {
            for b in &order[..i] {
                if a.name() == b.name() {
                    return Err(CoreError::DuplicateModality(a.name().to_string()));
                }
                let clash = a.symbol().eq_ignore_ascii_case(b.symbol())
                    || a.symbol().eq_ignore_ascii_case(b.name())
                    || b.symbol().eq_ignore_ascii_case(a.name());
                if clash {
                    return Err(CoreError::SymbolCollision {
                        first: format!("{} ({})", b.name(), b.symbol()),
                        second: format!("{} ({})", a.name(), a.symbol()),
                    });
                }
            }
        }
        Ok(ModalitySet { order })
    }

    /// A set from names, each symbol derived ([`crate::modality::derive_symbols`]).
    pub fn from_names<I, S>(names: I) -> Result<Self, CoreError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::from_decls(names.into_iter().map(|n| ModalityDecl::Name(n.into())).collect())
    }

    /// A set from `(name, symbol)` pairs.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<Self, CoreError> {
        Self::new(pairs.iter().map(|(n, s)| Modality::new(n, s)).collect::<Result<Vec<_>, _>>()?)
    }

    /// A set from config declarations; missing symbols are derived from all the names.
    pub fn from_decls(decls: Vec<ModalityDecl>) -> Result<Self, CoreError> {
        let names: Vec<&str> = decls.iter().map(ModalityDecl::name).collect();
        let derived = derive_symbols(&names);
        let mods = decls
            .iter()
            .zip(&derived)
            .map(|(d, auto)| Modality::new(d.name(), d.symbol().unwrap_or(auto)))
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(mods)
    }

    /// The declarations that rebuild this set: bare names where the symbol is the derived one.
    pub fn decls(&self) -> Vec<ModalityDecl> {
        let names: Vec<&str> = self.order.iter().map(Modality::name).collect();
        let derived = derive_symbols(&names);
        if self.order.iter().zip(&derived).all(|(m, d)| m.symbol() == d) {
            return names.into_iter().map(|n| ModalityDecl::Name(n.to_string())).collect();
        }
        self.order
            .iter()
            .map(|m| ModalityDecl::Named {
                name: m.name().to_string(),
                symbol: Some(m.symbol().to_string()),
            })
            .collect()
    }

    /// Number of modalities `M`.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Always false: a set holds at least one modality.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The modalities in the task's order.
    pub fn modalities(&self) -> &[Modality] {
        &self.order
    }

    /// The names in the task's order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.order.iter().map(Modality::name)
    }

    /// The modality at position `m`.
    pub fn get(&self, m: usize) -> Option<&Modality> {
        self.order.get(m)
    }

    /// Position of the modality named `token` (its name or symbol, ignoring case).
    pub fn position(&self, token: &str) -> Option<usize> {
        self.order.iter().position(|m| m.is_named(token.trim()))
    }

    /// Position of `token`, or an error listing the task's modalities.
    pub fn require(&self, token: &str) -> Result<usize, CoreError> {
        self.position(token).ok_or_else(|| CoreError::UnknownModality {
            token: token.trim().to_string(),
            set: self.describe(),
        })
    }

    /// The mask holding every modality of the task.
    pub fn full(&self) -> ModalityMask {
        ModalityMask::from_bits(full_bits(self.len())).expect("non-empty set")
    }

    /// Whether `mask` only uses positions of this set.
    pub fn admits(&self, mask: ModalityMask) -> bool {
        mask.bits() & !full_bits(self.len()) == 0
    }

    /// Checks that `mask` only uses positions of this set.
    pub fn check(&self, mask: ModalityMask) -> Result<ModalityMask, CoreError> {
        if self.admits(mask) {
            Ok(mask)
        } else {
            Err(CoreError::NotInSet { bits: mask.bits(), set: self.to_string() })
        }
    }

    /// Per-position presence bits of `mask` (`[true, false, true]` for `R+I` in SURF).
    pub fn presence(&self, mask: ModalityMask) -> Result<Vec<bool>, CoreError> {
        self.check(mask)?;
        Ok((0..self.len()).map(|m| mask.contains(m)).collect())
    }

    /// The mask whose present positions are `bits[m]`; fails on a wrong length or no bit set.
    pub fn mask_from_presence(&self, bits: &[bool]) -> Result<ModalityMask, CoreError> {
        if bits.len() != self.len() {
            return Err(CoreError::WrongLength { got: bits.len(), expected: self.len() });
        }
        ModalityMask::from_positions(bits.iter().enumerate().filter(|(_, b)| **b).map(|(m, _)| m))
    }

    /// All `2^M - 1` non-empty combinations in the paper's evaluation order: by size, then by
    /// position (R, D, I, R+D, R+I, D+I, R+D+I for M = 3). Their number doubles with each
    /// modality: for large `M` use [`ModalitySet::default_combinations`].
    pub fn combinations(&self) -> Vec<ModalityMask> {
        let mut out: Vec<ModalityMask> = (1u64..(1u64 << self.len()))
            .map(|bits| ModalityMask::from_bits(bits as u32).expect("non-zero"))
            .collect();
        out.sort();
        out
    }

    /// The combinations evaluated (and trained) when a config names none: all of them for
    /// `M <= 4` ([`ModalitySet::ALL_COMBINATIONS_UP_TO`]); above, the singles, the
    /// leave-one-outs and the full set (`2M + 1` masks), in evaluation order.
    pub fn default_combinations(&self) -> Vec<ModalityMask> {
        if self.len() <= Self::ALL_COMBINATIONS_UP_TO {
            return self.combinations();
        }
        let full = self.full().bits();
        let mut out = self.singles();
        out.extend(
            (0..self.len()).map(|m| ModalityMask::from_bits(full & !(1 << m)).expect("M > 1")),
        );
        out.push(self.full());
        out.sort();
        out.dedup();
        out
    }

    /// The combinations a student trains on when a config names none: all `2^M - 1` for
    /// `M <= 8` (at most 255; the reference draws each sample's combination uniformly from all
    /// of them), above that [`ModalitySet::default_combinations`].
    pub fn default_training_combinations(&self) -> Vec<ModalityMask> {
        if self.len() <= 8 { self.combinations() } else { self.default_combinations() }
    }

    /// The combinations with exactly `k` modalities, in evaluation order.
    pub fn combinations_of_size(&self, k: usize) -> Vec<ModalityMask> {
        self.combinations().into_iter().filter(|c| c.count() == k).collect()
    }

    /// The single-modality masks, in the task's order.
    pub fn singles(&self) -> Vec<ModalityMask> {
        (0..self.len()).map(ModalityMask::single).collect()
    }

    /// The mask string of `mask`: its symbols in the task's order, joined by `+` (`R+I`).
    /// Positions outside the set print as `#k`.
    pub fn format(&self, mask: ModalityMask) -> String {
        let parts: Vec<String> = mask
            .positions()
            .map(|k| self.order.get(k).map_or_else(|| format!("#{k}"), |m| m.symbol().to_string()))
            .collect();
        parts.join("+")
    }

    /// The modalities of `mask`, in order.
    pub fn members(&self, mask: ModalityMask) -> Vec<&Modality> {
        mask.positions().filter_map(|k| self.order.get(k)).collect()
    }

    /// Parses a mask string: symbols or names joined by `+`, in any order and case (`ir+rgb`
    /// is `R+I`), or, when every symbol of the set is one letter, those letters run together
    /// as in the paper's tables (`RDI`, `RI`); a whole token that names a modality wins
    /// (`ir` is infrared, not R+I).
    pub fn parse_mask(&self, text: &str) -> Result<ModalityMask, CoreError> {
        let t = text.trim();
        if t.is_empty() {
            return Err(CoreError::EmptyMask);
        }
        let compact = !t.contains('+')
            && t.chars().count() > 1
            && self.position(t).is_none()
            && self.order.iter().all(|m| m.symbol().chars().count() == 1);
        let tokens: Vec<String> = if compact {
            t.chars().map(String::from).collect()
        } else {
            t.split('+').map(str::to_string).collect()
        };
        let mut bits = 0u32;
        for tok in &tokens {
            let pos = self.require(tok).map_err(|e| match e {
                CoreError::UnknownModality { token, set } => {
                    CoreError::UnknownModality { token: format!("{token}` in `{t}"), set }
                }
                other => other,
            })?;
            if bits & (1 << pos) != 0 {
                return Err(CoreError::DuplicateModality(self.order[pos].symbol().to_string()));
            }
            bits |= 1 << pos;
        }
        ModalityMask::from_bits(bits)
    }

    /// Parses several mask strings.
    pub fn parse_masks<S: AsRef<str>>(&self, texts: &[S]) -> Result<Vec<ModalityMask>, CoreError> {
        texts.iter().map(|t| self.parse_mask(t.as_ref())).collect()
    }

    /// The mask strings of `masks`.
    pub fn format_all(&self, masks: &[ModalityMask]) -> Vec<String> {
        masks.iter().map(|m| self.format(*m)).collect()
    }

    /// `rgb (R), depth (D), ir (I)`, for error messages.
    pub fn describe(&self) -> String {
        let parts: Vec<String> =
            self.order.iter().map(|m| format!("{} ({})", m.name(), m.symbol())).collect();
        parts.join(", ")
    }
}

fn full_bits(len: usize) -> u32 {
    if len >= 32 { u32::MAX } else { (1u32 << len) - 1 }
}

impl fmt::Display for ModalitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(self.full()))
    }
}

impl Serialize for ModalitySet {
    /// A list of names (`["rgb", "depth", "ir"]`) when every symbol is the derived one, else a
    /// list of `{name, symbol}` tables.
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.decls())
    }
}

impl<'de> Deserialize<'de> for ModalitySet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = Vec::<ModalityDecl>::deserialize(d)?;
        ModalitySet::from_decls(v).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn surf() -> ModalitySet {
        ModalitySet::from_pairs(&[("rgb", "R"), ("depth", "D"), ("ir", "I")]).unwrap()
    }

    fn names(set: &ModalitySet, v: &[ModalityMask]) -> Vec<String> {
        set.format_all(v)
    }

    #[test]
    fn combinations_follow_the_paper_order() {
        let s = surf();
        assert_eq!(names(&s, &s.combinations()), ["R", "D", "I", "R+D", "R+I", "D+I", "R+D+I"]);
        let rgbd = ModalitySet::from_names(["rgb", "depth"]).unwrap();
        assert_eq!(names(&rgbd, &rgbd.combinations()), ["R", "D", "R+D"]);
    }

    #[test]
    fn count_is_two_to_the_m_minus_one_for_m_up_to_six() {
        for m in 1..=6 {
            let set = ModalitySet::from_names((0..m).map(|k| format!("v{k}"))).unwrap();
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
    fn default_combinations_above_four_are_singles_leave_one_outs_and_full() {
        let four = ModalitySet::from_names(["a", "b", "c", "d"]).unwrap();
        assert_eq!(four.default_combinations().len(), 15);
        let six = ModalitySet::from_names(["a", "b", "c", "d", "e", "f"]).unwrap();
        let d = six.default_combinations();
        assert_eq!(d.len(), 13);
        assert_eq!(d.iter().filter(|c| c.count() == 1).count(), 6);
        assert_eq!(d.iter().filter(|c| c.count() == 5).count(), 6);
        assert_eq!(*d.last().unwrap(), six.full());
        let max = ModalitySet::from_names((0..32).map(|k| format!("v{k}"))).unwrap();
        assert_eq!(max.default_combinations().len(), 65);
        assert_eq!(max.full().count(), 32);
        assert!(ModalitySet::from_names((0..33).map(|k| format!("v{k}"))).is_err());
    }

    #[test]
    fn order_is_the_task_order_and_duplicates_or_clashes_are_rejected() {
        let s = ModalitySet::from_names(["ir", "rgb"]).unwrap();
        assert_eq!(s.to_string(), "I+R");
        assert_eq!(s.position("rgb"), Some(1));
        assert!(matches!(
            ModalitySet::from_names(["rgb", "rgb"]),
            Err(CoreError::DuplicateModality(_))
        ));
        assert!(matches!(
            ModalitySet::from_pairs(&[("rgb", "R"), ("radar", "r")]),
            Err(CoreError::SymbolCollision { .. })
        ));
        // A symbol spelling another modality's name would make `d` ambiguous.
        assert!(ModalitySet::from_pairs(&[("d", "X"), ("depth", "D")]).is_err());
        assert!(matches!(
            ModalitySet::from_names(Vec::<String>::new()),
            Err(CoreError::SetSize { got: 0, .. })
        ));
    }

    #[test]
    fn masks_parse_and_print_against_the_set() {
        let s = surf();
        assert_eq!(s.format(s.parse_mask("ir+rgb").unwrap()), "R+I");
        assert_eq!(s.format(s.parse_mask("I+D+R").unwrap()), "R+D+I");
        assert_eq!(s.format(s.parse_mask("RDI").unwrap()), "R+D+I");
        assert_eq!(s.format(s.parse_mask("IR").unwrap()), "I");
        assert_eq!(s.format(s.parse_mask("DI").unwrap()), "D+I");
        assert_eq!(s.parse_mask(""), Err(CoreError::EmptyMask));
        assert_eq!(s.parse_mask("R+R"), Err(CoreError::DuplicateModality("R".into())));
        let err = s.parse_mask("R+Q").unwrap_err().to_string();
        assert!(err.contains("`Q` in `R+Q`") && err.contains("rgb (R)"), "{err}");
        let mfeat =
            ModalitySet::from_pairs(&[("pixel", "Pix"), ("fourier", "Fou"), ("zernike", "Zer")])
                .unwrap();
        let m = mfeat.parse_mask("Pix+zernike").unwrap();
        assert_eq!(mfeat.format(m), "Pix+Zer");
        assert!(mfeat.parse_mask("PF").is_err(), "no compact form with long symbols");
    }

    #[test]
    fn presence_round_trip_and_foreign_masks() {
        let s = surf();
        for c in s.combinations() {
            let bits = s.presence(c).unwrap();
            assert_eq!(s.mask_from_presence(&bits).unwrap(), c);
        }
        assert_eq!(s.presence(s.parse_mask("R+I").unwrap()).unwrap(), [true, false, true]);
        let foreign = ModalityMask::single(3);
        assert!(matches!(s.presence(foreign), Err(CoreError::NotInSet { .. })));
        assert_eq!(s.mask_from_presence(&[false; 3]), Err(CoreError::EmptyMask));
        assert!(matches!(s.mask_from_presence(&[true; 2]), Err(CoreError::WrongLength { .. })));
    }

    #[test]
    fn serde_writes_names_when_symbols_are_derived_and_tables_otherwise() {
        let json = serde_json::to_string(&surf()).unwrap();
        assert_eq!(json, r#"["rgb","depth","ir"]"#);
        assert_eq!(serde_json::from_str::<ModalitySet>(&json).unwrap(), surf());
        let mfeat = ModalitySet::from_pairs(&[("pixel", "Pix"), ("fourier", "Fou")]).unwrap();
        let json = serde_json::to_string(&mfeat).unwrap();
        assert_eq!(json, r#"["pixel","fourier"]"#, "conventional symbols stay implicit");
        assert_eq!(serde_json::from_str::<ModalitySet>(&json).unwrap(), mfeat);
        let own = ModalitySet::from_pairs(&[("pixel", "P"), ("sonar", "S")]).unwrap();
        let json = serde_json::to_string(&own).unwrap();
        assert_eq!(json, r#"[{"name":"pixel","symbol":"P"},{"name":"sonar","symbol":"S"}]"#);
        assert_eq!(serde_json::from_str::<ModalitySet>(&json).unwrap(), own);
        let mixed: ModalitySet =
            serde_json::from_str(r#"["lidar", {"name": "rgb", "symbol": "C"}]"#).unwrap();
        assert_eq!(mixed.to_string(), "L+C");
        assert!(serde_json::from_str::<ModalitySet>(r#"["Bad"]"#).is_err());
    }
}
