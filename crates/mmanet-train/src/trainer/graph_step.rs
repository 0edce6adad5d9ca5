//! `compute.cuda_graph` in the trainer: the step on static buffers ([`crate::captured`]),
//! captured once per phase as a CUDA graph and replayed, one launch per step.
//!
//! The host reads one `[6]` tensor per step (the loss parts and both flags of
//! [`device_side_update`]) and fails or counts the skip as the eager path does. What changes
//! the computation itself starts a new capture, counted ([`GraphCounts::captures`]): the phase
//! (distillation and MAR from `begin_epoch`), the weak set, whether SGD keeps a momentum buffer.
//!
//! On CPU nothing is captured: every step runs eagerly on the static buffers, which is how CI
//! checks that this path computes what the eager trainer computes.

use mmanet_data::Batch;
use tch::{Device, Tensor};

use super::Trainer;
use crate::TrainError;
use crate::captured::{
    CapturedStep, GraphCounts, StaticBatch, device_side_update, note_device_step,
};
use crate::config::ValidConfig;
use crate::state::LossBreakdown;

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

/// The captured step of a run and the phase it was captured for.
pub(super) struct GraphState {
    key: Option<PhaseKey>,
    steps: CapturedStep,
}

impl GraphState {
    /// The state of a run with `compute.cuda_graph` (`None` without it). On CUDA the shim
    /// must have been built with graphs.
    pub(super) fn for_run(cfg: &ValidConfig, device: Device) -> Result<Option<Self>, TrainError> {
        if !cfg.compute.cuda_graph {
            return Ok(None);
        }
        let steps = CapturedStep::new(device, 6);
        if steps.captures() {
            if !mmanet_sys::cuda_graphs_built() {
                return Err(TrainError::config(
                    "compute.cuda_graph",
                    "CUDA graphs need mmanet-sys built against the CUDA libtorch \
                     (`cargo xtask setup --cuda`): set it to false or rebuild",
                ));
            }
        } else {
            tracing::info!(
                "compute.cuda_graph: nothing is captured on {device:?}; the step runs eagerly \
                 on static buffers (the same values)"
            );
        }
        Ok(Some(GraphState { key: None, steps }))
    }

    /// Logs how this run's steps were executed so far.
    pub(super) fn log_epoch(&self, epoch: usize) {
        let c = self.steps.counts();
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
        self.graph.as_ref().map(|g| g.steps.counts())
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
            g.steps.reset();
        }
        let out = g.steps.run(batch, available.as_ref(), |s| self.static_step(s, epoch))?;
        // One transfer: the loss parts, then the two flags.
        let host = out.to_device(Device::Cpu);
        let parts = LossBreakdown::from_parts(&host.narrow(0, 0, 4));
        let [bad_loss, overflow] = [4, 5].map(|i| host.double_value(&[i]) != 0.0);
        if bad_loss {
            return Err(super::non_finite(&parts, epoch, step));
        }
        note_device_step(&mut self.opt, &mut self.scaler, overflow);
        Ok(parts)
    }

    /// The step a graph captures: the loss, [`device_side_update`], and the `[6]` output
    /// (`total, ce, distill, mar`, non-finite loss, found Inf); it reads nothing to the host.
    fn static_step(&mut self, s: &StaticBatch, epoch: usize) -> Result<(), TrainError> {
        let terms =
            self.loss(&s.batch, epoch, s.available.as_ref().map(Tensor::shallow_clone), true)?;
        let flags = device_side_update(&mut self.opt, &mut self.scaler, &terms.total)?;
        let _guard = tch::no_grad_guard();
        s.out.shallow_clone().copy_(&Tensor::cat(&[terms.parts(), flags], 0));
        Ok(())
    }
}
