//! [`DecodedCache`]: the deterministic part of an image pipeline kept in memory per sample
//! within a byte budget, so that later epochs run only the random part on it, with the same
//! values as without the cache: 8-bit planes after decode and first resize for the CASIA-SURF
//! chain (then rotation, crop, flip, normalisation), or a manifest image's decoded network
//! input (then its flip).
//!
//! An entry remembers each file's size and modification time and is dropped when one changes;
//! a dataset whose transform changes starts a new cache. Samples that do not fit the budget
//! are decoded every epoch.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use crate::transform::Planar8;

/// Per-sample 8-bit planes within a budget, shared by the loader's threads.
#[derive(Debug)]
pub struct DecodedCache {
    budget: usize,
    used: AtomicUsize,
    hits: AtomicUsize,
    misses: AtomicUsize,
    slots: Vec<Mutex<Option<Arc<Entry>>>>,
}

/// What an entry holds.
#[derive(Debug)]
pub(crate) enum Payload {
    /// 8-bit planes, one per file (the CASIA-SURF chain's first resize).
    Planes(Vec<Planar8>),
    /// A decoded network input (`f32`, one file).
    Values(Vec<f32>),
}

impl Payload {
    fn bytes(&self) -> usize {
        match self {
            Payload::Planes(p) => p.iter().map(|p| p.data.len()).sum(),
            Payload::Values(v) => v.len() * std::mem::size_of::<f32>(),
        }
    }
}

/// One sample's payload and the files it came from.
#[derive(Debug)]
pub(crate) struct Entry {
    pub payload: Payload,
    stamps: Vec<Stamp>,
}

/// What identifies a file's content cheaply: its size and modification time.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
}

fn stamp(path: &PathBuf) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp { len: m.len(), modified: m.modified().ok() })
}

/// Counts of a [`DecodedCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Samples held.
    pub entries: usize,
    /// Bytes held (at most the budget).
    pub bytes: usize,
    /// Reads served from the cache.
    pub hits: usize,
    /// Reads that decoded the files.
    pub misses: usize,
}

impl DecodedCache {
    /// An empty cache for `samples` samples holding at most `budget` bytes.
    pub fn new(samples: usize, budget: usize) -> Self {
        DecodedCache {
            budget,
            used: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
            misses: AtomicUsize::new(0),
            slots: (0..samples).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// The byte budget.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// Entries, bytes, hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        let entries =
            self.slots.iter().filter(|s| s.lock().map(|e| e.is_some()).unwrap_or(false)).count();
        CacheStats {
            entries,
            bytes: self.used.load(Ordering::Relaxed),
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }

    /// Sample `index`'s entry when cached from `paths` as they are now; an entry whose files
    /// changed is dropped.
    pub(crate) fn get(&self, index: usize, paths: &[PathBuf]) -> Option<Arc<Entry>> {
        let slot = self.slots.get(index)?;
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = guard.as_ref().is_some_and(|e| {
            e.stamps.len() == paths.len()
                && paths.iter().zip(&e.stamps).all(|(p, s)| stamp(p) == Some(*s))
        });
        if fresh {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return guard.clone();
        }
        if let Some(old) = guard.take() {
            self.used.fetch_sub(old.payload.bytes(), Ordering::Relaxed);
            tracing::debug!(index, "decoded cache: files changed, entry dropped");
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Keeps `payload` (decoded from `paths`) for sample `index` if it fits the budget.
    pub(crate) fn insert(&self, index: usize, paths: &[PathBuf], payload: Payload) {
        let Some(slot) = self.slots.get(index) else { return };
        let n = payload.bytes();
        let fits = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + n <= self.budget).then_some(u + n)
            })
            .is_ok();
        if !fits {
            return;
        }
        let Some(stamps) = paths.iter().map(stamp).collect::<Option<Vec<_>>>() else {
            self.used.fetch_sub(n, Ordering::Relaxed);
            return;
        };
        let entry = Arc::new(Entry { payload, stamps });
        let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = guard.replace(entry) {
            self.used.fetch_sub(old.payload.bytes(), Ordering::Relaxed);
        }
    }
}

impl CacheStats {
    /// The counts of `caches` together (`None` when there is none).
    pub fn sum<'a>(caches: impl IntoIterator<Item = &'a DecodedCache>) -> Option<CacheStats> {
        caches.into_iter().map(DecodedCache::stats).reduce(|a, b| CacheStats {
            entries: a.entries + b.entries,
            bytes: a.bytes + b.bytes,
            hits: a.hits + b.hits,
            misses: a.misses + b.misses,
        })
    }
}
