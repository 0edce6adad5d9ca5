//! [`ManifestCache`]: a manifest read and checked once per run, however often its splits and
//! input spec are asked for.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::{Loaded, ManifestSource};
use crate::{DataError, Result};

/// The last read of a [`ManifestSource`]'s file, shared by the source's clones. An entry is
/// reused while the config (every field but the cache) and the file's size and modification
/// time are unchanged; a failed read is not kept.
#[derive(Clone, Default)]
pub struct ManifestCache(Arc<Mutex<State>>);

#[derive(Default)]
struct State {
    entry: Option<(Key, Arc<Loaded>)>,
    reads: usize,
}

/// What an entry was read from.
#[derive(PartialEq)]
struct Key {
    /// The config, with an empty cache of its own (no cycle through the `Arc`).
    config: ManifestSource,
    len: u64,
    modified: Option<SystemTime>,
}

impl ManifestCache {
    /// How often the file was read and parsed through this cache (tests and diagnostics).
    pub fn reads(&self) -> usize {
        self.0.lock().map_or(0, |s| s.reads)
    }

    /// The entry for `source`'s config and file, else `read()`'s result (kept on success).
    pub(super) fn get_or_read(
        &self,
        source: &ManifestSource,
        read: impl FnOnce() -> Result<Loaded>,
    ) -> Result<Arc<Loaded>> {
        let meta = std::fs::metadata(&source.path).map_err(|e| DataError::io(&source.path, e))?;
        let key = Key {
            config: ManifestSource { cache: ManifestCache::default(), ..source.clone() },
            len: meta.len(),
            modified: meta.modified().ok(),
        };
        // A panic while reading poisons nothing of value: the entry is only ever replaced whole.
        let mut state = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((k, loaded)) = &state.entry {
            if *k == key {
                return Ok(Arc::clone(loaded));
            }
        }
        state.reads += 1;
        let loaded = Arc::new(read()?);
        state.entry = Some((key, Arc::clone(&loaded)));
        Ok(loaded)
    }
}

/// Every cache compares equal: it is not part of the config.
impl PartialEq for ManifestCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for ManifestCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ManifestCache {{ reads: {} }}", self.reads())
    }
}
