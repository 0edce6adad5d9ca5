//! [`DataLoader`]: parallel, prefetching, deterministic mini-batches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use mmanet_core::ModalityMask;
use rand::seq::SliceRandom;
use rayon::prelude::*;
use tch::Tensor;

use crate::batch_memory::BatchMemory;
use crate::seeding::{Stream, derive_rng};
use crate::{Batch, DataError, Dataset, MaskPolicy, Result, Sample, Target};

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
    /// Collate image inputs into page-locked (pinned) host memory for this CUDA device, on the
    /// loader's threads, so the trainer's host-to-device copies are asynchronous and the
    /// pinning copy stays off its thread (PyTorch's `DataLoader(pin_memory=True)`). Only for
    /// data sets with fixed shapes; ignored without CUDA.
    pub pin_memory: Option<tch::Device>,
    /// Which positions of every batch this loader yields (data-parallel training: rank `r` of
    /// `W` takes positions `r, r + W, ...` of each batch of the single-process order, so the
    /// samples, masks and augmentations do not depend on `W`). [`Shard::WHOLE`] by default.
    pub shard: Shard,
}

/// Positions `index, index + count, index + 2 count, ...` of every batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// The first position, `0..count`.
    pub index: usize,
    /// The stride (the world size).
    pub count: usize,
}

impl Shard {
    /// Every position.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    /// Shard `index` of `count`; an error unless `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(DataError::Config(format!("shard {index} of {count}")));
        }
        Ok(Shard { index, count })
    }

    /// The positions of this shard among `len` positions.
    pub fn positions(self, len: usize) -> impl Iterator<Item = usize> {
        (self.index..len).step_by(self.count)
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard::WHOLE
    }
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
            pin_memory: None,
            shard: Shard::WHOLE,
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
        let shard = config.shard;
        if shard.count == 0 || shard.index >= shard.count || config.batch_size % shard.count != 0 {
            return Err(DataError::Config(format!(
                "shard {} of {}: the batch size {} must divide by the number of shards",
                shard.index, shard.count, config.batch_size
            )));
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

    /// A loader over the samples `indices` of this loader's data set (same policy, settings
    /// and thread pool), e.g. the samples that have every modality of a combination.
    pub fn restricted(&self, indices: Vec<usize>) -> Result<DataLoader> {
        let subset = crate::Subset::new(Arc::clone(&self.dataset), indices)?;
        Ok(DataLoader {
            dataset: Arc::new(subset),
            policy: self.policy.clone(),
            config: self.config.clone(),
            pool: Arc::clone(&self.pool),
        })
    }

    /// This loader yielding only positions `shard.index, shard.index + shard.count, ...` of
    /// every batch (same data, policy, masks and thread pool), e.g. one rank's part of a
    /// data-parallel evaluation. Unlike training shards, the batch size need not divide by
    /// `shard.count` (a rank may get fewer samples of a batch, or none).
    pub fn sharded(&self, shard: Shard) -> Result<DataLoader> {
        let shard = Shard::new(shard.index, shard.count)?;
        Ok(DataLoader {
            dataset: Arc::clone(&self.dataset),
            policy: self.policy.clone(),
            config: LoaderConfig { shard, ..self.config.clone() },
            pool: Arc::clone(&self.pool),
        })
    }

    /// The indices of the samples that have every modality of `combo`.
    pub fn samples_with(&self, combo: ModalityMask) -> Vec<usize> {
        (0..self.dataset.len())
            .filter(|&i| self.dataset.availability(i).is_superset_of(combo))
            .collect()
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
        let mut rng = derive_rng(self.config.seed, epoch, index as u64, Stream::Mask);
        self.policy.draw_within(&mut rng, self.dataset.availability(index))
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
        let shard = self.config.shard;
        if shard != Shard::WHOLE {
            for c in &mut chunks {
                *c = shard.positions(c.len()).map(|p| c[p]).collect();
            }
            // A last partial batch may leave this shard without a sample.
            chunks.retain(|c| !c.is_empty());
        }
        let (tx, rx) = sync_channel::<Result<Decoded>>(self.config.prefetch);
        let skipped = Arc::new(AtomicUsize::new(0));
        let job = Producer {
            dataset: Arc::clone(&self.dataset),
            policy: self.policy.clone(),
            seed: self.config.seed,
            epoch,
            skip: self.config.skip_bad_samples,
            pin: self.config.pin_memory.filter(|d| d.is_cuda() && tch::Cuda::is_available()),
            skipped: Arc::clone(&skipped),
            pool: Arc::clone(&self.pool),
        };
        let handle = std::thread::Builder::new()
            .name("mmanet-data-prefetch".into())
            .spawn(move || job.run(chunks, &tx));
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

/// One decoded batch, with its masks and indices.
struct Decoded {
    payload: Payload,
    combos: Vec<ModalityMask>,
    indices: Vec<usize>,
}

/// What the workers produced: samples to collate, or inputs already collated.
enum Payload {
    Samples(Vec<Sample>),
    Collated { inputs: Vec<Tensor>, targets: Vec<Target> },
}

impl Decoded {
    fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    fn into_batch(self, set: &mmanet_core::ModalitySet) -> Result<Batch> {
        match self.payload {
            Payload::Samples(s) => Batch::collate(&s, &self.combos, &self.indices, set),
            Payload::Collated { inputs, targets } => {
                Batch::from_inputs(inputs, &targets, &self.combos, &self.indices, set)
            }
        }
    }
}

struct Producer {
    dataset: Arc<dyn Dataset>,
    policy: MaskPolicy,
    seed: u64,
    epoch: u64,
    skip: bool,
    pin: Option<tch::Device>,
    skipped: Arc<AtomicUsize>,
    pool: Arc<rayon::ThreadPool>,
}

/// The per-sample results of [`Producer::fill`] (data-set index, target or error).
type Filled = Vec<(usize, Result<Target>)>;

impl Producer {
    /// Decodes and sends every chunk; stops after an error or when the receiver is gone.
    fn run(&self, chunks: Vec<Vec<usize>>, tx: &SyncSender<Result<Decoded>>) {
        let shapes = self
            .dataset
            .fixed_shapes()
            .filter(|s| s.len() == self.dataset.modalities().len())
            .filter(|s| s.iter().all(|m| m.iter().all(|d| *d > 0)));
        if let Some(shapes) = shapes {
            return self.run_direct(&chunks, &shapes, tx);
        }
        for chunk in chunks {
            let out = self.decode(&chunk);
            let stop = out.is_err();
            if tx.send(out).is_err() || stop {
                break;
            }
        }
    }

    /// Fixed-shape data sets: the workers decode straight into the memory of the batch
    /// tensors (no per-sample vectors, no copy); while they fill batch `k`, this thread
    /// allocates (and pins) the tensors of batch `k + 1`.
    fn run_direct(
        &self,
        chunks: &[Vec<usize>],
        shapes: &[Vec<i64>],
        tx: &SyncSender<Result<Decoded>>,
    ) {
        // Only this thread creates tensors: libtorch may start an OpenMP thread team in any
        // thread that runs a tensor operation, and the decoding threads should not own one.
        let alloc = |chunk: &Vec<usize>| BatchMemory::new(chunk.len(), shapes, self.pin);
        let mut next = chunks.first().map(alloc);
        for (k, chunk) in chunks.iter().enumerate() {
            let mut memory = match next.take() {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    let _ = tx.send(Err(e));
                    return;
                }
                None => return,
            };
            let mut filled = Vec::new();
            let per = memory.per_sample().to_vec();
            self.pool.in_place_scope(|s| {
                let slices = memory.slices_mut();
                s.spawn(|_| filled = self.fill(chunk, slices, &per));
                next = chunks.get(k + 1).map(alloc);
            });
            if !self.emit(filled, memory, &per, tx) {
                return;
            }
        }
    }

    /// Decodes `chunk` in parallel, sample `j`'s modality `m` into
    /// `bufs[m][j * per[m]..(j + 1) * per[m]]` (every `per[m] > 0`).
    fn fill(&self, chunk: &[usize], bufs: Vec<&mut [f32]>, per: &[usize]) -> Filled {
        let mut slots: Vec<Vec<&mut [f32]>> =
            (0..chunk.len()).map(|_| Vec::with_capacity(bufs.len())).collect();
        for (buf, &p) in bufs.into_iter().zip(per) {
            for (slot, part) in slots.iter_mut().zip(buf.chunks_exact_mut(p)) {
                slot.push(part);
            }
        }
        chunk
            .par_iter()
            .zip(slots.par_iter_mut())
            .map(|(&i, outs)| {
                let mut rng = derive_rng(self.seed, self.epoch, i as u64, Stream::Augment);
                (i, self.dataset.get_into(i, &mut rng, outs))
            })
            .collect()
    }

    /// Hands a filled batch out as tensors (skipped samples dropped; `per[m]` values per sample
    /// of modality `m`, as in `fill`) and sends it; false when the iteration must stop (an
    /// error was sent, or the receiver is gone).
    fn emit(
        &self,
        filled: Filled,
        mut memory: BatchMemory,
        per: &[usize],
        tx: &SyncSender<Result<Decoded>>,
    ) -> bool {
        let mut targets = Vec::with_capacity(filled.len());
        let mut indices = Vec::with_capacity(filled.len());
        let mut combos = Vec::with_capacity(filled.len());
        let mut bufs = memory.slices_mut();
        for (slot, (i, r)) in filled.into_iter().enumerate() {
            match r {
                Ok(t) => {
                    // Compact: sample `slot` moves to position `targets.len()` when some
                    // earlier sample was skipped.
                    let to = targets.len();
                    if to != slot {
                        for (buf, &p) in bufs.iter_mut().zip(per) {
                            buf.copy_within(slot * p..(slot + 1) * p, to * p);
                        }
                    }
                    targets.push(t);
                    indices.push(i);
                    combos.push(self.mask(i));
                }
                Err(e) if self.skip => self.count_skip(i, &e),
                Err(e) => {
                    // Whether or not the receiver is still there, the iteration stops.
                    let _ = tx.send(Err(e));
                    return false;
                }
            }
        }
        drop(bufs);
        if targets.is_empty() {
            return true;
        }
        let out = memory.into_tensors(targets.len()).map(|inputs| Decoded {
            payload: Payload::Collated { inputs, targets },
            combos,
            indices,
        });
        let stop = out.is_err();
        tx.send(out).is_ok() && !stop
    }

    fn mask(&self, index: usize) -> ModalityMask {
        let mut rng = derive_rng(self.seed, self.epoch, index as u64, Stream::Mask);
        self.policy.draw_within(&mut rng, self.dataset.availability(index))
    }

    fn count_skip(&self, index: usize, e: &DataError) {
        let n = self.skipped.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::warn!(index, skipped = n, "skipping bad sample: {e}");
    }

    /// Data sets without fixed shapes: per-sample vectors, collated by the consumer.
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
        let mut samples = Vec::new();
        let mut out = Decoded {
            payload: Payload::Samples(Vec::new()),
            combos: Vec::new(),
            indices: Vec::new(),
        };
        for (i, r) in results {
            match r {
                Ok(s) => {
                    out.combos.push(self.mask(i));
                    samples.push(s);
                    out.indices.push(i);
                }
                Err(e) if self.skip => self.count_skip(i, &e),
                Err(e) => return Err(e),
            }
        }
        out.payload = Payload::Samples(samples);
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
                Ok(Ok(d)) if d.is_empty() => continue,
                Ok(Ok(d)) => {
                    let b = d.into_batch(&self.set);
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
