//! [`WeakSet`]: the modality combinations MAR regularises (docs/method.md §2).

use mmanet_core::{ModalityMask, ModalitySet};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::{LossError, Result};

/// The weak modality combinations of a task, chosen once by a miner
/// ([`crate::ClassificationMiner`], [`crate::SegmentationMiner`]) and fixed afterwards.
///
/// Holds the task's [`ModalitySet`] so that each combination has a presence row: position `m` of
/// a row is column `m` of the `[B, M]` mask tensors. The combinations are distinct, non-empty and
/// use only the set's modalities; their order is the miner's (weakest combination first).
///
/// ```
/// use mmanet_core::ModalitySet;
/// use mmanet_losses::WeakSet;
///
/// let w = WeakSet::from_presence_rows(
///     ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
///     &[vec![true, false, true], vec![true, false, false], vec![false, false, true]],
/// )
/// .unwrap();
/// assert_eq!(w.to_string(), "[R+I, R, I]");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "WeakSetRepr", into = "WeakSetRepr")]
pub struct WeakSet {
    set: ModalitySet,
    combos: Vec<ModalityMask>,
    /// [`WeakSet::presence_tensor`] per kind and device, built once: after the first call no
    /// step re-uploads the rows, so a captured CUDA graph (which cannot copy from pageable host
    /// memory) can use them.
    cache: PresenceCache,
}

/// The presence tensors already built (not part of the set's value: clones start empty,
/// comparisons ignore it).
#[derive(Default)]
struct PresenceCache(std::sync::Mutex<Vec<(Kind, Device, Tensor)>>);

impl Clone for PresenceCache {
    fn clone(&self) -> Self {
        PresenceCache::default()
    }
}

impl PartialEq for PresenceCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for PresenceCache {}

impl std::fmt::Debug for PresenceCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PresenceCache")
    }
}

/// `{"modalities": [...], "weak": ["R+I", "R", "I"]}`: the masks as strings of the set.
#[derive(Serialize, Deserialize)]
struct WeakSetRepr {
    modalities: ModalitySet,
    weak: Vec<String>,
}

impl TryFrom<WeakSetRepr> for WeakSet {
    type Error = LossError;
    fn try_from(r: WeakSetRepr) -> Result<Self> {
        let combos = r.modalities.parse_masks(&r.weak)?;
        WeakSet::new(r.modalities, combos)
    }
}

impl From<WeakSet> for WeakSetRepr {
    fn from(w: WeakSet) -> Self {
        WeakSetRepr { weak: w.names(), modalities: w.set }
    }
}

impl WeakSet {
    /// A weak set of `combos` within `set`; fails on an empty list, a duplicate, or a
    /// combination using a modality outside `set`.
    pub fn new(set: ModalitySet, combos: Vec<ModalityMask>) -> Result<Self> {
        if combos.is_empty() {
            return Err(LossError::Invalid("a weak set needs at least one combination".into()));
        }
        for (i, c) in combos.iter().enumerate() {
            set.check(*c)?;
            if combos[..i].contains(c) {
                let name = set.format(*c);
                return Err(LossError::Invalid(format!("combination {name} appears twice")));
            }
        }
        Ok(WeakSet { set, combos, cache: PresenceCache::default() })
    }

    /// A weak set from presence rows (`[true, false, true]` is `R+I` in SURF), as the reference
    /// code stores it (a `[W, M]` 0/1 tensor).
    pub fn from_presence_rows(set: ModalitySet, rows: &[Vec<bool>]) -> Result<Self> {
        let combos =
            rows.iter().map(|r| set.mask_from_presence(r)).collect::<Result<Vec<_>, _>>()?;
        Self::new(set, combos)
    }

    /// The task's modalities.
    pub fn set(&self) -> &ModalitySet {
        &self.set
    }

    /// The weak combinations, weakest first.
    pub fn combos(&self) -> &[ModalityMask] {
        &self.combos
    }

    /// The weak combinations as mask strings (`R+I`), weakest first.
    pub fn names(&self) -> Vec<String> {
        self.set.format_all(&self.combos)
    }

    /// Number of weak combinations `W`.
    pub fn len(&self) -> usize {
        self.combos.len()
    }

    /// Always false: a weak set holds at least one combination.
    pub fn is_empty(&self) -> bool {
        self.combos.is_empty()
    }

    /// Whether `combo` is one of the weak combinations.
    pub fn contains(&self, combo: ModalityMask) -> bool {
        self.combos.contains(&combo)
    }

    /// The presence rows, one per weak combination.
    pub fn presence_rows(&self) -> Vec<Vec<bool>> {
        self.combos.iter().map(|c| self.set.presence(*c).expect("checked in new")).collect()
    }

    /// The presence rows as a 0/1 tensor, built once per kind and device (later calls return
    /// the same tensor, which the caller must not modify).
    ///
    /// # Shapes
    /// - output: `[W, M]`.
    pub fn presence_tensor(&self, kind: Kind, device: Device) -> Tensor {
        let mut cache = self.cache.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, _, t)) = cache.iter().find(|(k, d, _)| *k == kind && *d == device) {
            return t.shallow_clone();
        }
        let t = presence_tensor(&self.set, &self.combos, kind, device).expect("checked in new");
        cache.push((kind, device, t.shallow_clone()));
        t
    }
}

impl std::fmt::Display for WeakSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}]", self.names().join(", "))
    }
}

/// The 0/1 presence rows of `combos` within `set` (one row per combination), e.g. the `[B, M]`
/// mask tensor of a batch from its per-sample combinations.
///
/// # Shapes
/// - output: `[combos.len(), M]`.
pub fn presence_tensor(
    set: &ModalitySet,
    combos: &[ModalityMask],
    kind: Kind,
    device: Device,
) -> Result<Tensor> {
    let m = set.len();
    let mut bits = Vec::with_capacity(combos.len() * m);
    for c in combos {
        bits.extend(set.presence(*c)?.into_iter().map(|b| if b { 1f32 } else { 0f32 }));
    }
    Ok(Tensor::from_slice(&bits)
        .f_view([combos.len() as i64, m as i64])?
        .f_to_kind(kind)?
        .f_to(device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The presence rows are uploaded once per kind and device (a captured CUDA graph cannot
    /// upload them), and the cache is not part of the set's value.
    #[test]
    fn presence_tensors_are_built_once_and_the_cache_is_not_the_value() {
        let set = ModalitySet::from_names(["rgb", "depth", "ir"]).unwrap();
        let w = WeakSet::new(set.clone(), set.parse_masks(&["R+I", "D"]).unwrap()).unwrap();
        let a = w.presence_tensor(Kind::Bool, Device::Cpu);
        let b = w.presence_tensor(Kind::Bool, Device::Cpu);
        assert_eq!(a.data_ptr(), b.data_ptr(), "built twice");
        let f = w.presence_tensor(Kind::Float, Device::Cpu);
        assert_eq!(Vec::<f32>::try_from(f.reshape([-1])).unwrap(), [1., 0., 1., 0., 1., 0.]);
        let c = w.clone();
        assert_eq!(c, w);
        assert!(c.presence_tensor(Kind::Bool, Device::Cpu).equal(&a));
    }
}
