//! A training step on static buffers, captured once as a CUDA graph
//! ([`mmanet_sys::CudaGraph`]) and replayed: [`CapturedStep`] runs any step closure this way,
//! [`device_side_update`] is the update such a step ends with. The trainer's
//! `compute.cuda_graph` uses both; a custom loop (the `bench_step` example) can too.
//!
//! What changes between steps must be data in fixed device tensors: each batch is copied into
//! the static batch buffers ([`StaticBatch`]); the learning rate, momentum and step count are
//! device tensors ([`Optimizer`]); the loss scale and the Inf/NaN flag stay on the device; the
//! per-sample modality mask is an input like the images, so one graph serves every mask mix.
//! A step whose loss is not finite, or whose fp16 gradients overflow, keeps the old parameters
//! (a `where` on the device, as the eager path skips the update).
//!
//! [`WARMUP_STEPS`] steps run eagerly on the buffers before the capture (lazy allocations:
//! moment buffers, cuDNN and cuBLAS state); [`CapturedStep::reset`] starts over when the
//! computation itself changes. A batch of another size (the last of an epoch without
//! `drop_last`) runs the same step eagerly on buffers of its own. On CPU nothing is captured:
//! every step runs eagerly on the static buffers, the same values.

use mmanet_data::Batch;
use tch::{Device, Kind, Tensor};

use crate::TrainError;
use crate::amp::GradScaler;
use crate::optim::Optimizer;

/// Eager steps on the static buffers before a capture.
pub const WARMUP_STEPS: usize = 2;

/// How the steps were executed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphCounts {
    /// Graphs captured (0 on CPU).
    pub captures: u64,
    /// Steps run by replaying a graph.
    pub replays: u64,
    /// Steps run eagerly on static buffers (warm-ups, odd-sized batches, every step on CPU).
    pub eager: u64,
}

/// The step's fixed device tensors: what a step closure reads and writes.
pub struct StaticBatch {
    /// The batch buffers (`indices` and `combos` empty: a captured step reads tensors only).
    pub batch: Batch,
    /// `[B, M]` f32: the samples' availability on incomplete data.
    pub available: Option<Tensor>,
    /// `[N]` f32 the step writes its results into (read by the host after the step).
    pub out: Tensor,
}

impl StaticBatch {
    /// Buffers shaped (and strided) like `batch`, holding its values, and an `[out_len]` output.
    ///
    /// # Shapes
    /// `batch`: inputs `[B, ...]` per modality, mask `[B, M]`, targets `[B, ...]`;
    /// `available`: `[B, M]`.
    fn like(batch: &Batch, available: Option<&Tensor>, out_len: i64) -> Self {
        let _guard = tch::no_grad_guard();
        let batch = Batch {
            inputs: batch.inputs.iter().map(Tensor::copy).collect(),
            lengths: batch.lengths.iter().map(|l| l.as_ref().map(Tensor::copy)).collect(),
            mask: batch.mask.copy(),
            combos: Vec::new(),
            targets: batch.targets.copy(),
            indices: Vec::new(),
        };
        let out = Tensor::zeros([out_len], (Kind::Float, batch.mask.device()));
        StaticBatch { batch, available: available.map(Tensor::copy), out }
    }

    /// Whether `batch` fits these buffers (same shapes and kinds, same optional tensors).
    fn fits(&self, batch: &Batch, available: Option<&Tensor>) -> bool {
        let same = |a: &Tensor, b: &Tensor| a.size() == b.size() && a.kind() == b.kind();
        let same_opt = |a: Option<&Tensor>, b: Option<&Tensor>| match (a, b) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            (Some(_), None) | (None, Some(_)) => false,
        };
        self.batch.inputs.len() == batch.inputs.len()
            && self.batch.inputs.iter().zip(&batch.inputs).all(|(a, b)| same(a, b))
            && self.batch.lengths.len() == batch.lengths.len()
            && self
                .batch
                .lengths
                .iter()
                .zip(&batch.lengths)
                .all(|(a, b)| same_opt(a.as_ref(), b.as_ref()))
            && same(&self.batch.mask, &batch.mask)
            && same(&self.batch.targets, &batch.targets)
            && same_opt(self.available.as_ref(), available)
    }

    /// Copies `batch` into the buffers (queued on the current stream, before the replay).
    fn fill(&self, batch: &Batch, available: Option<&Tensor>) {
        let _guard = tch::no_grad_guard();
        let copy = |dst: &Tensor, src: &Tensor| dst.shallow_clone().copy_(src);
        for (dst, src) in self.batch.inputs.iter().zip(&batch.inputs) {
            copy(dst, src);
        }
        for (dst, src) in self.batch.lengths.iter().zip(&batch.lengths) {
            if let (Some(dst), Some(src)) = (dst, src) {
                copy(dst, src);
            }
        }
        copy(&self.batch.mask, &batch.mask);
        copy(&self.batch.targets, &batch.targets);
        if let (Some(dst), Some(src)) = (&self.available, available) {
            copy(dst, src);
        }
    }
}

/// A step run on static buffers and, on CUDA after [`WARMUP_STEPS`], replayed from a graph.
pub struct CapturedStep {
    /// The CUDA device index, `None` on CPU (nothing is captured).
    cuda: Option<usize>,
    out_len: i64,
    statics: Option<StaticBatch>,
    graph: Option<mmanet_sys::CudaGraph>,
    /// Eager steps run on the statics since the last reset.
    warm: usize,
    counts: GraphCounts,
}

impl CapturedStep {
    /// Steps on `device` whose closures write an `[out_len]` f32 result. On CUDA the caller
    /// checks [`mmanet_sys::cuda_graphs_built`] first (the capture fails otherwise).
    pub fn new(device: Device, out_len: i64) -> Self {
        CapturedStep {
            cuda: mmanet_sys::cuda_index(device),
            out_len,
            statics: None,
            graph: None,
            warm: 0,
            counts: GraphCounts::default(),
        }
    }

    /// Whether steps are captured (a CUDA device) or all run eagerly (CPU).
    pub fn captures(&self) -> bool {
        self.cuda.is_some()
    }

    /// How the steps were executed so far.
    pub fn counts(&self) -> GraphCounts {
        self.counts
    }

    /// Drops the graph and the buffers: the computation changed, the next steps warm up and
    /// capture again (counted in [`GraphCounts::captures`]).
    pub fn reset(&mut self) {
        self.graph = None;
        self.statics = None;
        self.warm = 0;
    }

    /// Runs `step` on static copies of `batch` (eagerly while warming up, on CPU and for a
    /// batch of another size; otherwise by replaying the graph captured from it once) and
    /// returns the `[out_len]` result it wrote, still on the device. `step` must read only
    /// tensors (no host reads: they are not captured) and must compute the same operations
    /// every call.
    ///
    /// # Shapes
    /// `batch`: inputs `[B, ...]` per modality, mask `[B, M]`, targets `[B, ...]`, on the
    /// step's device; `available`: `[B, M]`.
    pub fn run<E: From<mmanet_sys::GraphError>>(
        &mut self,
        batch: &Batch,
        available: Option<&Tensor>,
        mut step: impl FnMut(&StaticBatch) -> Result<(), E>,
    ) -> Result<Tensor, E> {
        if !self.statics.as_ref().is_none_or(|s| s.fits(batch, available)) {
            // Another batch size: the same step, eagerly, on buffers of its own.
            let odd = StaticBatch::like(batch, available, self.out_len);
            step(&odd)?;
            self.counts.eager += 1;
            return Ok(odd.out);
        }
        let out_len = self.out_len;
        let statics =
            self.statics.get_or_insert_with(|| StaticBatch::like(batch, available, out_len));
        statics.fill(batch, available);
        match self.cuda {
            Some(device) if self.warm >= WARMUP_STEPS => {
                if self.graph.is_none() {
                    let mut graph = mmanet_sys::CudaGraph::new(device)?;
                    graph.capture(|| step(statics))??;
                    self.graph = Some(graph);
                    self.counts.captures += 1;
                }
                self.graph.as_ref().expect("captured above").replay()?;
                self.counts.replays += 1;
            }
            Some(_) | None => {
                step(statics)?;
                self.warm += 1;
                self.counts.eager += 1;
            }
        }
        Ok(statics.out.shallow_clone())
    }
}

/// The end of a graph-ready step: scaled backward of `total`, unscale and Inf/NaN check, the
/// optimizer update kept only when the loss is finite and no gradient overflowed, the loss
/// scale update. Reads nothing back to the host; returns `[2]` f32 flags (non-finite loss,
/// gradient overflow) for the host to read after the step, then to call
/// [`note_device_step`].
///
/// # Shapes
/// `total`: `[]` f32, the loss.
pub fn device_side_update(
    opt: &mut Optimizer,
    scaler: &mut GradScaler,
    total: &Tensor,
) -> Result<Tensor, TrainError> {
    let mut grads = opt.try_backward(&scaler.scale(total))?;
    let _guard = tch::no_grad_guard();
    let found_inf = scaler.unscale_on_device(&mut grads);
    let bad_loss = total.isfinite().logical_not().to_kind(Kind::Float).reshape([1]);
    let skip = (&found_inf + &bad_loss).gt(0.0);
    opt.apply_on_device(&grads, &skip);
    scaler.update_on_device(&found_inf);
    Ok(Tensor::cat(&[bad_loss, found_inf], 0))
}

/// Counts the step of [`device_side_update`] on the host from its read-back `overflow` flag:
/// a skipped step for the scaler, or one more optimizer step.
pub fn note_device_step(opt: &mut Optimizer, scaler: &mut GradScaler, overflow: bool) {
    if overflow {
        scaler.note_skipped();
    } else {
        opt.note_device_step();
    }
}

impl From<mmanet_sys::GraphError> for TrainError {
    /// A CUDA-graph failure as a config error naming the option (the way out is to turn it off).
    fn from(e: mmanet_sys::GraphError) -> Self {
        TrainError::config(
            "compute.cuda_graph",
            format!("{e} (an operation of this step cannot be captured: set it to false)"),
        )
    }
}
