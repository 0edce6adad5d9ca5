//! [`DataLoader`]: parallel, prefetching, deterministic mini-batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, sync_channel};
use std::thread::JoinHandle;

use mmanet_core::ModalityMask;
use rand::seq::SliceRandom;
use rayon::prelude::*;

use crate::seeding::{Stream, derive_rng};
use crate::{Batch, DataError, Dataset, MaskPolicy, Result, Sample};

/// Loader settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoaderConfig {
    /// Samples per batch (> 0).
    pub batch_size: usize,
    /// Shuffle the order every epoch (seeded by `(seed, epoch)`).
    pub shuffle: bool,
    /// Drop the last incomplete batch (the reference trains with `drop_last=True`).
    pub drop_last: bool,
    /// Seed of the shuffle, the mask draws and the augmentation.
    pub seed: u64,
    /// Decoding threads (>= 1). Results do not depend on this.
    pub threads: usize,
    /// Batches decoded ahead of the consumer (>= 1).
    pub prefetch: usize,
    /// Skip samples that fail to load (counted, logged) instead of stopping with the error.
    /// A batch then holds fewer samples.
    pub skip_bad_samples: bool,
}

impl Default for LoaderConfig {
    fn default() -> Self {
        LoaderConfig {
            batch_size: 64,
            shuffle: false,
            drop_last: false,
            seed: 0,
            threads: 1,
            prefetch: 2,
            skip_bad_samples: false,
        }
    }
}

impl LoaderConfig {
    /// The reference's training loader: shuffled, `drop_last`.
    pub fn train(batch_size: usize, seed: u64) -> Self {
        LoaderConfig { batch_size, shuffle: true, drop_last: true, seed, ..Default::default() }
    }

    /// An evaluation loader: in order, keeps the last batch.
    pub fn eval(batch_size: usize) -> Self {
        LoaderConfig { batch_size, ..Default::default() }
    }
}

/// Batches over an `Arc<dyn Dataset>` with a [`MaskPolicy`].
///
/// Sample `i` of epoch `e` draws its mask and its augmentation from streams seeded by
/// `(seed, e, i)`, so an epoch is identical for any `threads`. Samples are decoded on a rayon
/// pool in a background thread, up to `prefetch` batches ahead; tensors are built on the
/// thread that iterates (tch tensors are not `Sync`).
pub struct DataLoader {
    dataset: Arc<dyn Dataset>,
    policy: MaskPolicy,
    config: LoaderConfig,
    pool: Arc<rayon::ThreadPool>,
}

impl std::fmt::Debug for DataLoader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataLoader")
            .field("len", &self.dataset.len())
            .field("policy", &self.policy)
            .field("config", &self.config)
            .finish()
    }
}

impl DataLoader {
    /// A loader; fails on a zero batch size or thread count, or a policy that uses
    /// modalities the data set lacks.
    pub fn new(
        dataset: Arc<dyn Dataset>,
        policy: MaskPolicy,
        config: LoaderConfig,
    ) -> Result<Self> {
        if config.batch_size == 0 || config.threads == 0 || config.prefetch == 0 {
            return Err(DataError::Config(
                "batch_size, threads and prefetch must be at least 1".into(),
            ));
        }
        policy.validate(dataset.modalities())?;
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(config.threads)
            .thread_name(|i| format!("mmanet-data-{i}"))
            .build()
            .map_err(|e| DataError::Worker(e.to_string()))?;
        Ok(DataLoader { dataset, policy, config, pool: Arc::new(pool) })
    }

    /// The data set.
    pub fn dataset(&self) -> &Arc<dyn Dataset> {
        &self.dataset
    }

    /// The settings.
    pub fn config(&self) -> &LoaderConfig {
        &self.config
    }

    /// The mask policy.
    pub fn policy(&self) -> &MaskPolicy {
        &self.policy
    }

    /// Replaces the mask policy (e.g. switching the evaluated combination).
    pub fn set_policy(&mut self, policy: MaskPolicy) -> Result<()> {
        policy.validate(self.dataset.modalities())?;
        self.policy = policy;
        Ok(())
    }

    /// A loader over the same data, settings and thread pool with another policy (e.g. one
    /// per evaluated combination).
    pub fn with_policy(&self, policy: MaskPolicy) -> Result<DataLoader> {
        policy.validate(self.dataset.modalities())?;
        Ok(DataLoader {
            dataset: Arc::clone(&self.dataset),
            policy,
            config: self.config.clone(),
            pool: Arc::clone(&self.pool),
        })
    }

    /// Batches per epoch (before any skipped sample).
    pub fn num_batches(&self) -> usize {
        let (n, b) = (self.dataset.len(), self.config.batch_size);
        if self.config.drop_last { n / b } else { n.div_ceil(b) }
    }

    /// The sample order of `epoch` (a seeded permutation when shuffling).
    pub fn order(&self, epoch: u64) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.dataset.len()).collect();
        if self.config.shuffle {
            order.shuffle(&mut derive_rng(self.config.seed, epoch, 0, Stream::Shuffle));
        }
        order
    }

    /// The combination sample `index` gets in `epoch`.
    pub fn mask_of(&self, epoch: u64, index: usize) -> ModalityMask {
        self.policy.draw(&mut derive_rng(self.config.seed, epoch, index as u64, Stream::Mask))
    }

    /// Iterates the batches of `epoch`. After an error (with `skip_bad_samples` off) the
    /// iterator ends.
    pub fn iter(&self, epoch: u64) -> BatchIter {
        let mut chunks: Vec<Vec<usize>> =
            self.order(epoch).chunks(self.config.batch_size).map(<[usize]>::to_vec).collect();
        if self.config.drop_last && chunks.last().is_some_and(|c| c.len() < self.config.batch_size)
        {
            chunks.pop();
        }
        let (tx, rx) = sync_channel::<Result<Decoded>>(self.config.prefetch);
        let skipped = Arc::new(AtomicUsize::new(0));
        let job = Producer {
            dataset: Arc::clone(&self.dataset),
            policy: self.policy.clone(),
            seed: self.config.seed,
            epoch,
            skip: self.config.skip_bad_samples,
            skipped: Arc::clone(&skipped),
            pool: Arc::clone(&self.pool),
        };
        let handle =
            std::thread::Builder::new().name("mmanet-data-prefetch".into()).spawn(move || {
                for chunk in chunks {
                    let out = job.decode(&chunk);
                    let stop = out.is_err();
                    if tx.send(out).is_err() || stop {
                        break;
                    }
                }
            });
        let (rx, handle, failed) = match handle {
            Ok(h) => (Some(rx), Some(h), None),
            Err(e) => (None, None, Some(DataError::Worker(e.to_string()))),
        };
        BatchIter {
            rx,
            handle,
            skipped,
            set: self.dataset.modalities().clone(),
            failed,
            done: false,
        }
    }
}

/// Decoded samples of one batch, with their masks and indices.
struct Decoded {
    samples: Vec<Sample>,
    combos: Vec<ModalityMask>,
    indices: Vec<usize>,
}

struct Producer {
    dataset: Arc<dyn Dataset>,
    policy: MaskPolicy,
    seed: u64,
    epoch: u64,
    skip: bool,
    skipped: Arc<AtomicUsize>,
    pool: Arc<rayon::ThreadPool>,
}

impl Producer {
    fn decode(&self, chunk: &[usize]) -> Result<Decoded> {
        let results: Vec<(usize, Result<Sample>)> = self.pool.install(|| {
            chunk
                .par_iter()
                .map(|&i| {
                    let mut rng = derive_rng(self.seed, self.epoch, i as u64, Stream::Augment);
                    (i, self.dataset.get(i, &mut rng))
                })
                .collect()
        });
        let mut out = Decoded { samples: Vec::new(), combos: Vec::new(), indices: Vec::new() };
        for (i, r) in results {
            match r {
                Ok(s) => {
                    out.combos.push(self.policy.draw(&mut derive_rng(
                        self.seed,
                        self.epoch,
                        i as u64,
                        Stream::Mask,
                    )));
                    out.samples.push(s);
                    out.indices.push(i);
                }
                Err(e) if self.skip => {
                    let n = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::warn!(index = i, skipped = n, "skipping bad sample: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}

/// The batches of one epoch; see [`DataLoader::iter`].
pub struct BatchIter {
    rx: Option<Receiver<Result<Decoded>>>,
    handle: Option<JoinHandle<()>>,
    skipped: Arc<AtomicUsize>,
    set: mmanet_core::ModalitySet,
    failed: Option<DataError>,
    done: bool,
}

impl BatchIter {
    /// Samples skipped so far in this epoch (only with `skip_bad_samples`).
    pub fn skipped(&self) -> usize {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl Iterator for BatchIter {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(e) = self.failed.take() {
            self.done = true;
            return Some(Err(e));
        }
        loop {
            let msg = self.rx.as_ref()?.recv();
            match msg {
                Ok(Ok(d)) if d.samples.is_empty() => continue,
                Ok(Ok(d)) => {
                    let b = Batch::collate(&d.samples, &d.combos, &d.indices, &self.set);
                    if b.is_err() {
                        self.done = true;
                    }
                    return Some(b);
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Err(_) => {
                    self.done = true;
                    let panicked = self.handle.take().map(|h| h.join().is_err()).unwrap_or(false);
                    return panicked
                        .then(|| Err(DataError::Worker("a decoding thread panicked".into())));
                }
            }
        }
    }
}

impl Drop for BatchIter {
    fn drop(&mut self) {
        // Dropping the receiver makes a blocked producer's `send` fail, so it stops.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
