//! Graph-replayed prediction ([`Predictor::with_cuda_graphs`](crate::Predictor::with_cuda_graphs),
//! `mmanet serve --cuda-graph`): one CUDA graph of the network's forward pass per batch-size
//! bucket and input shape, replayed for every batch that fits it.
//!
//! A batch of `n` samples runs in the smallest bucket `>= n` (powers of two up to the largest,
//! which is the server's `max_batch`); the rows past `n` repeat the last sample and their
//! outputs are dropped, so in evaluation mode (rows independent) every sample gets what an
//! eager pass gives it. Modality subsets are data (the mask and zero placeholders), so one
//! graph serves any mix of them. Each bucket runs [`WARMUP_RUNS`] eager passes on its static
//! buffers (cuDNN's algorithm choice) before the capture. A forward that cannot be captured
//! (a host read inside it) is logged once and served eagerly from then on. On CPU nothing is
//! captured: batches run eagerly on the padded buffers, the same values.

use std::cell::{Cell, RefCell};

use mmanet_models::MultiModalNet;
use tch::{Device, Tensor};

/// Eager passes on a bucket's buffers before its capture.
pub const WARMUP_RUNS: usize = 2;

/// How the batches were run so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphCounts {
    /// Graphs captured (one per bucket and input shape; 0 on CPU).
    pub captures: u64,
    /// Forward passes run by replaying a graph.
    pub replays: u64,
    /// Forward passes run eagerly on a bucket's buffers (warm-ups, every pass on CPU, every
    /// pass after a failed capture).
    pub eager: u64,
}

/// One bucket's static buffers and graph.
struct Entry {
    /// The per-sample input shapes (one per modality).
    key: Vec<Vec<i64>>,
    bucket: usize,
    /// `[bucket, ...]` per modality.
    inputs: Vec<Tensor>,
    /// `[bucket, M]` f32.
    mask: Tensor,
    /// The captured pass's logits `[bucket, ...]`, rewritten by each replay.
    logits: Option<Tensor>,
    graph: Option<mmanet_sys::CudaGraph>,
    warm: usize,
}

/// The graphs of one predictor (it is `!Sync`: one thread runs it, hence the cells).
pub(crate) struct Graphs {
    device: Device,
    buckets: Vec<usize>,
    entries: RefCell<Vec<Entry>>,
    counts: Cell<GraphCounts>,
    /// Set when a capture failed: every pass runs eagerly from then on.
    eager_only: Cell<bool>,
}

impl Graphs {
    /// Buckets `1, 2, 4, ...` below `max_batch`, and `max_batch`.
    pub(crate) fn new(device: Device, max_batch: usize) -> Self {
        let max_batch = max_batch.max(1);
        let mut buckets: Vec<usize> = std::iter::successors(Some(1usize), |b| b.checked_mul(2))
            .take_while(|&b| b < max_batch)
            .collect();
        buckets.push(max_batch);
        Graphs {
            device,
            buckets,
            entries: RefCell::new(Vec::new()),
            counts: Cell::new(GraphCounts::default()),
            eager_only: Cell::new(false),
        }
    }

    /// The batch sizes a pass runs at, ascending.
    pub(crate) fn buckets(&self) -> &[usize] {
        &self.buckets
    }

    /// The largest bucket: longer batches run in chunks of it.
    pub(crate) fn largest(&self) -> usize {
        *self.buckets.last().expect("at least one bucket")
    }

    /// The smallest bucket holding `n` samples (`n <= largest()`).
    pub(crate) fn bucket_for(&self, n: usize) -> usize {
        *self.buckets.iter().find(|&&b| b >= n).expect("n fits the largest bucket")
    }

    pub(crate) fn counts(&self) -> GraphCounts {
        self.counts.get()
    }

    fn count(&self, f: impl FnOnce(&mut GraphCounts)) {
        let mut c = self.counts.get();
        f(&mut c);
        self.counts.set(c);
    }

    /// The logits of one padded batch, through the bucket's graph.
    ///
    /// # Shapes
    /// `inputs`: `[bucket, ...]` per modality (host or device), `mask`: `[bucket, M]` f32;
    /// returns the logits `[bucket, ...]` on the device (valid until the next call).
    pub(crate) fn logits(
        &self,
        net: &dyn MultiModalNet,
        key: &[Vec<i64>],
        inputs: &[Tensor],
        mask: &Tensor,
    ) -> Result<Tensor, mmanet_sys::GraphError> {
        let bucket = mask.size()[0] as usize;
        let mut entries = self.entries.borrow_mut();
        let at = match entries.iter().position(|e| e.bucket == bucket && e.key == key) {
            Some(at) => at,
            None => {
                let device = self.device;
                entries.push(Entry {
                    key: key.to_vec(),
                    bucket,
                    inputs: inputs.iter().map(|t| t.to_device(device).copy()).collect(),
                    mask: mask.to_device(device).copy(),
                    logits: None,
                    graph: None,
                    warm: 0,
                });
                entries.len() - 1
            }
        };
        let e = &mut entries[at];
        {
            let _guard = tch::no_grad_guard();
            for (dst, src) in e.inputs.iter().zip(inputs) {
                dst.shallow_clone().copy_(src);
            }
            e.mask.shallow_clone().copy_(mask);
        }
        let forward = |e: &Entry| tch::no_grad(|| net.forward_t(&e.inputs, &e.mask, false).logits);
        let device = match mmanet_sys::cuda_index(self.device) {
            Some(d) if e.warm >= WARMUP_RUNS && !self.eager_only.get() => d,
            Some(_) | None => {
                e.warm += 1;
                self.count(|c| c.eager += 1);
                return Ok(forward(e));
            }
        };
        if e.graph.is_none() {
            let mut graph = mmanet_sys::CudaGraph::new(device)?;
            match graph.capture(|| forward(e)) {
                Ok(logits) => {
                    e.logits = Some(logits);
                    e.graph = Some(graph);
                    self.count(|c| c.captures += 1);
                    tracing::info!(bucket, "cuda graph captured");
                }
                Err(err) => {
                    tracing::warn!("the forward pass cannot be captured ({err}): serving eagerly");
                    self.eager_only.set(true);
                    self.count(|c| c.eager += 1);
                    return Ok(forward(e));
                }
            }
        }
        e.graph.as_ref().expect("captured above").replay()?;
        self.count(|c| c.replays += 1);
        Ok(e.logits.as_ref().expect("captured with the graph").shallow_clone())
    }
}
