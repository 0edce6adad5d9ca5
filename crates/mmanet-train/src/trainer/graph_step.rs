//! `compute.cuda_graph`: the training step on static buffers, captured once per phase as a
//! CUDA graph ([`mmanet_sys::CudaGraph`]) and replayed, one launch per step.
//!
//! What changes between steps is data in fixed device tensors: each batch is copied into the
//! static batch buffers; the learning rate, momentum and step count are device tensors
//! ([`Optimizer::apply_on_device`](crate::optim::Optimizer)); the loss scale and the Inf/NaN
//! flag stay on the device; the per-sample modality mask is an input like the images, so one
//! graph serves every mask mix. A step whose loss is not finite, or whose fp16 gradients
//! overflow, keeps the old parameters (a `where` on the device, as the eager path skips the
//! update); the host reads one `[6]` tensor per step (the loss parts and both flags) and
//! fails or counts the skip as the eager path does.
//!
//! What changes the computation itself starts a new capture, counted
//! ([`GraphCounts::captures`]): the phase (distillation and MAR from `begin_epoch`), the weak
//! set, whether SGD keeps a momentum buffer. After each change [`WARMUP_STEPS`] steps run
//! eagerly on the same buffers first (lazy allocations: moment buffers, the device
//! hyper-parameters, cuDNN and cuBLAS state). A batch of another size (the last of an epoch
//! without `drop_last`) runs the same step eagerly ([`GraphCounts::eager`]).
//!
//! On CPU nothing is captured: every step runs eagerly on the static buffers, which is how CI
//! checks that this path computes what the eager trainer computes.

use mmanet_data::{Batch, Task};
use tch::{Device, Kind, Tensor};

use super::Trainer;
use crate::TrainError;
use crate::config::ValidConfig;
use crate::state::LossBreakdown;

/// Eager steps on the static buffers before a capture.
pub const WARMUP_STEPS: usize = 2;

/// How the steps of a `compute.cuda_graph` run were executed so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GraphCounts {
    /// Graphs captured (one per phase; 0 on CPU).
    pub captures: u64,
    /// Steps run by replaying a graph.
    pub replays: u64,
    /// Steps run eagerly on the static path (warm-ups, odd-sized batches, every step on CPU).
    pub eager: u64,
}

/// The computation a captured graph stands for; a change needs a new capture.
#[derive(Clone, Debug, PartialEq)]
struct PhaseKey {
    /// Distillation (and MAR) are on in this epoch.
    active: bool,
    /// The weak set MAR uses, as mask strings.
    weak: Option<Vec<String>>,
    /// SGD keeps a momentum buffer (always for Adam).
    momentum_buffer: bool,
}

/// The step's fixed device tensors.
struct Statics {
    /// The batch buffers (`indices` and `combos` empty: the step reads tensors only).
    batch: Batch,
    /// `[B, M]` f32: the samples' availability on incomplete data.
    available: Option<Tensor>,
    /// `[6]` f32 written by the step: `total, ce, distill, mar`, non-finite loss, found Inf.
    out: Tensor,
}

impl Statics {
    /// Buffers shaped (and strided) like `batch`, holding its values.
    ///
    /// # Shapes
    /// `batch`: as [`Trainer::loss`]; `available`: `[B, M]`.
    fn like(batch: &Batch, available: Option<&Tensor>) -> Self {
        let _guard = tch::no_grad_guard();
        let batch = Batch {
            inputs: batch.inputs.iter().map(Tensor::copy).collect(),
            lengths: batch.lengths.iter().map(|l| l.as_ref().map(Tensor::copy)).collect(),
            mask: batch.mask.copy(),
            combos: Vec::new(),
            targets: batch.targets.copy(),
            indices: Vec::new(),
        };
        let out = Tensor::zeros([6], (Kind::Float, batch.mask.device()));
        Statics { batch, available: available.map(Tensor::copy), out }
    }

    /// Whether `batch` fits these buffers (same shapes, same optional tensors).
    fn fits(&self, batch: &Batch, available: Option<&Tensor>) -> bool {
        let same = |a: &Tensor, b: &Tensor| a.size() == b.size() && a.kind() == b.kind();
        let lengths = self.batch.lengths.len() == batch.lengths.len()
            && self.batch.lengths.iter().zip(&batch.lengths).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => same(a, b),
                (None, None) => true,
                (Some(_), None) | (None, Some(_)) => false,
            });
        let available = match (&self.available, available) {
            (Some(a), Some(b)) => same(a, b),
            (None, None) => true,
            (Some(_), None) | (None, Some(_)) => false,
        };
        self.batch.inputs.len() == batch.inputs.len()
            && self.batch.inputs.iter().zip(&batch.inputs).all(|(a, b)| same(a, b))
            && same(&self.batch.mask, &batch.mask)
            && same(&self.batch.targets, &batch.targets)
            && lengths
            && available
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

/// The captured step of a run and its counters.
pub(super) struct GraphState {
    /// The CUDA device index, `None` on CPU (nothing is captured).
    cuda: Option<usize>,
    key: Option<PhaseKey>,
    statics: Option<Statics>,
    graph: Option<mmanet_sys::CudaGraph>,
    /// Eager steps run on the statics since the key last changed.
    warm: usize,
    counts: GraphCounts,
}

impl GraphState {
    /// The state of a run with `compute.cuda_graph` (`None` without it). On CUDA the shim
    /// must have been built with graphs, and the task must be classification (segmentation's
    /// MAR selects the weak samples by index, a shape that depends on the data).
    pub(super) fn for_run(
        cfg: &ValidConfig,
        device: Device,
        task: Task,
    ) -> Result<Option<Self>, TrainError> {
        if !cfg.compute.cuda_graph {
            return Ok(None);
        }
        let cuda = match device {
            Device::Cuda(i) => Some(i),
            Device::Cpu | Device::Mps | Device::Vulkan => None,
        };
        if cuda.is_some() {
            if !mmanet_sys::cuda_graphs_built() {
                return Err(TrainError::config(
                    "compute.cuda_graph",
                    "CUDA graphs need mmanet-sys built against the CUDA libtorch \
                     (`cargo xtask setup --cuda`): set it to false or rebuild",
                ));
            }
            match task {
                Task::Classification { .. } => {}
                Task::Segmentation { .. } => {
                    return Err(TrainError::config(
                        "compute.cuda_graph",
                        "segmentation's MAR selects the weak samples by index (a shape that \
                         depends on the data), which a graph cannot capture yet: set it to false",
                    ));
                }
            }
        } else {
            tracing::info!(
                "compute.cuda_graph: nothing is captured on {device:?}; the step runs eagerly \
                 on static buffers (the same values)"
            );
        }
        Ok(Some(GraphState {
            cuda,
            key: None,
            statics: None,
            graph: None,
            warm: 0,
            counts: GraphCounts::default(),
        }))
    }

    /// Logs how this run's steps were executed so far.
    pub(super) fn log_epoch(&self, epoch: usize) {
        let c = self.counts;
        tracing::info!(
            epoch,
            captures = c.captures,
            replays = c.replays,
            eager = c.eager,
            "cuda graph steps"
        );
    }
}

impl Trainer {
    /// How the steps were executed so far with `compute.cuda_graph` (`None` without it).
    pub fn cuda_graph_counts(&self) -> Option<GraphCounts> {
        self.graph.as_ref().map(|g| g.counts)
    }

    /// One training step of a `compute.cuda_graph` run (module docs); returns its loss parts.
    ///
    /// # Shapes
    /// `batch`: as [`Trainer::loss`], on the training device.
    pub(super) fn graph_step(
        &mut self,
        batch: &Batch,
        epoch: usize,
        step: usize,
    ) -> Result<LossBreakdown, TrainError> {
        let mut g = self.graph.take().expect("graph_step runs with compute.cuda_graph");
        let result = self.graph_step_in(&mut g, batch, epoch, step);
        self.graph = Some(g);
        result
    }

    fn graph_step_in(
        &mut self,
        g: &mut GraphState,
        batch: &Batch,
        epoch: usize,
        step: usize,
    ) -> Result<LossBreakdown, TrainError> {
        let available = self.availability(batch)?;
        let m = &self.cfg.method;
        let active = self.is_student() && epoch > m.begin_epoch;
        let key = PhaseKey {
            active,
            weak: self.weak.as_ref().filter(|_| active && m.mar).map(mmanet_losses::WeakSet::names),
            momentum_buffer: self.opt.uses_momentum_buffer(),
        };
        if g.key.as_ref() != Some(&key) {
            if g.key.is_some() {
                tracing::info!(epoch, ?key, "cuda graph: the step changed, capturing it again");
            }
            g.key = Some(key);
            g.graph = None;
            g.statics = None;
            g.warm = 0;
        }
        let fits = g.statics.as_ref().is_none_or(|s| s.fits(batch, available.as_ref()));
        let out = if !fits {
            // Another batch size: the same step, eagerly, on buffers of its own.
            let odd = Statics::like(batch, available.as_ref());
            self.static_step(&odd, epoch)?;
            g.counts.eager += 1;
            odd.out
        } else {
            let statics = g.statics.get_or_insert_with(|| Statics::like(batch, available.as_ref()));
            statics.fill(batch, available.as_ref());
            match g.cuda {
                Some(device) if g.warm >= WARMUP_STEPS => {
                    if g.graph.is_none() {
                        let mut graph = mmanet_sys::CudaGraph::new(device).map_err(graph_error)?;
                        graph
                            .capture(|| self.static_step(statics, epoch))
                            .map_err(graph_error)??;
                        g.graph = Some(graph);
                        g.counts.captures += 1;
                    }
                    g.graph.as_ref().expect("captured above").replay().map_err(graph_error)?;
                    g.counts.replays += 1;
                }
                Some(_) | None => {
                    self.static_step(statics, epoch)?;
                    g.warm += 1;
                    g.counts.eager += 1;
                }
            }
            statics.out.shallow_clone()
        };
        let v: Vec<f32> = Vec::try_from(out.to_device(Device::Cpu))?;
        let parts = LossBreakdown {
            total: f64::from(v[0]),
            ce: f64::from(v[1]),
            distill: f64::from(v[2]),
            mar: f64::from(v[3]),
        };
        if v[4] != 0.0 {
            return Err(super::non_finite(&parts, epoch, step));
        }
        if v[5] != 0.0 {
            self.scaler.note_skipped();
        } else {
            self.opt.note_device_step();
        }
        Ok(parts)
    }

    /// The step a graph captures: loss, scaled backward, unscale and Inf/NaN check, the
    /// update kept only when the loss is finite and no gradient overflowed, the scale update,
    /// and the `[6]` output; it reads nothing back to the host.
    fn static_step(&mut self, s: &Statics, epoch: usize) -> Result<(), TrainError> {
        let terms =
            self.loss(&s.batch, epoch, s.available.as_ref().map(Tensor::shallow_clone), true)?;
        let mut grads = self.opt.try_backward(&self.scaler.scale(&terms.total))?;
        let _guard = tch::no_grad_guard();
        let found_inf = self.scaler.unscale_on_device(&mut grads);
        let bad_loss = terms.total.isfinite().logical_not().to_kind(Kind::Float).reshape([1]);
        let skip = (&found_inf + &bad_loss).gt(0.0);
        self.opt.apply_on_device(&grads, &skip);
        self.scaler.update_on_device(&found_inf);
        let out = Tensor::cat(&[terms.parts(), bad_loss, found_inf], 0);
        s.out.shallow_clone().copy_(&out);
        Ok(())
    }
}

/// A CUDA-graph failure as a config error naming the option (the way out is to turn it off).
fn graph_error(e: mmanet_sys::GraphError) -> TrainError {
    TrainError::config(
        "compute.cuda_graph",
        format!("{e} (an operation of this step cannot be captured: set it to false)"),
    )
}
