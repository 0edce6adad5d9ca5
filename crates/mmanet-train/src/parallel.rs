//! [`DataParallel`]: what the trainer exchanges with the other ranks of a data-parallel run
//! over a c10d process group ([`mmanet_sys::ProcessGroup`], Gloo on CPU tensors).
//!
//! The semantics (docs/distributed.md): rank 0's weights, buffers and, on resume, checkpoint
//! are broadcast; rank `r` of `W` trains on positions `r, r + W, ...` of every global batch;
//! each step all-reduces one small vector (the loss parts, the stop request, whether some
//! parameter got no gradient) and the optimizer's flat gradient (mean); BatchNorm buffers follow
//! rank 0 after every step (DDP's `broadcast_buffers`); only rank 0 writes the run folder.

use std::sync::{Arc, Mutex};

use mmanet_data::Shard;
use mmanet_models::layers::{BatchNorm, TrainBatchNorm};
use mmanet_sys::{DistError, ProcessGroup, ReduceOp, SyncBatchNorm};
use tch::{Kind, Tensor};

use crate::TrainError;
use crate::optim::{Gradients, Optimizer};
use crate::state::LossBreakdown;

/// This process's place in a data-parallel run and its process group.
pub struct DataParallel {
    group: ProcessGroup,
    /// What this epoch's steps spent in collectives.
    stats: CommStats,
}

/// Per-epoch cost of the step collectives, logged by the trainer (`benches/ddp_compare.sh`
/// reads the log line).
#[derive(Clone, Debug, Default)]
pub struct CommStats {
    /// Seconds of each step's gradient all-reduce.
    pub allreduce_s: Vec<f64>,
    /// Bytes of one gradient all-reduce (the flat buffer).
    pub allreduce_bytes: usize,
    /// Seconds of each step's other collectives (the agreed loss vector, the buffers).
    pub other_s: Vec<f64>,
    /// Seconds of each whole step (forward, backward, collectives, update).
    pub step_s: Vec<f64>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

impl CommStats {
    /// Median seconds of the gradient all-reduce.
    pub fn allreduce_median_s(&self) -> f64 {
        median(&self.allreduce_s)
    }

    /// Median seconds of a whole step.
    pub fn step_median_s(&self) -> f64 {
        median(&self.step_s)
    }

    /// Median seconds of the other per-step collectives.
    pub fn other_median_s(&self) -> f64 {
        median(&self.other_s)
    }
}

impl std::fmt::Debug for DataParallel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataParallel")
            .field("rank", &self.rank())
            .field("world_size", &self.world_size())
            .finish()
    }
}

/// What the ranks agreed on after one step's backward pass.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Agreed {
    /// The loss parts averaged over the ranks (non-finite when any rank's were).
    pub parts: LossBreakdown,
    /// Some rank was asked to stop (SIGTERM, Ctrl-C).
    pub stop: bool,
    /// Some rank has a parameter without gradient.
    pub inactive: bool,
}

impl DataParallel {
    /// Wraps a joined process group.
    pub fn new(group: ProcessGroup) -> Self {
        DataParallel { group, stats: CommStats::default() }
    }

    /// Records one whole step's wall time.
    pub(crate) fn record_step(&mut self, seconds: f64) {
        self.stats.step_s.push(seconds);
    }

    /// The collective costs since the last call (the trainer logs them per epoch).
    pub fn take_stats(&mut self) -> CommStats {
        std::mem::take(&mut self.stats)
    }

    /// Joins the group a launcher describes in the environment (`RANK`, `WORLD_SIZE`,
    /// `MASTER_ADDR`, `MASTER_PORT`, torchrun's agent store; [`mmanet_sys::Config::from_env`]),
    /// every collective bounded by `timeout`. With `cuda` the rank trains on `cuda:LOCAL_RANK`
    /// and the group gets the NCCL backend for its CUDA tensors (Gloo keeps the host values).
    pub fn from_env(timeout: std::time::Duration, cuda: bool) -> Result<Self, TrainError> {
        let var = |k: &str| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(0);
        let err = |source| TrainError::Distributed {
            rank: var("RANK"),
            world: var("WORLD_SIZE"),
            source,
        };
        let mut config = mmanet_sys::Config::from_env(timeout).map_err(err)?;
        if cuda {
            config.cuda_device = Some(config.local_rank);
        }
        ProcessGroup::with_config(config).map(Self::new).map_err(err)
    }

    /// The CUDA device of this rank's NCCL backend, if any.
    pub fn cuda_device(&self) -> Option<usize> {
        self.group.config().cuda_device
    }

    /// Whether the environment describes a data-parallel run of more than one rank
    /// (`WORLD_SIZE` > 1).
    pub fn in_env() -> bool {
        std::env::var("WORLD_SIZE").ok().and_then(|v| v.trim().parse::<usize>().ok()) > Some(1)
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// Whether this rank writes the run folder (rank 0).
    pub fn is_writer(&self) -> bool {
        self.rank() == 0
    }

    /// The positions of every global batch this rank trains on.
    pub(crate) fn shard(&self) -> Shard {
        Shard { index: self.rank(), count: self.world_size() }
    }

    fn err(&self, source: DistError) -> TrainError {
        TrainError::Distributed { rank: self.rank(), world: self.world_size(), source }
    }

    /// Rank 0's `value` on every rank (e.g. whether the run folder holds a run to resume).
    pub fn agree_flag(&mut self, value: bool) -> Result<bool, TrainError> {
        let mut t = Tensor::from_slice(&[u8::from(value)]);
        self.group.broadcast(&mut t, 0).map_err(|e| self.err(e))?;
        Ok(t.int64_value(&[0]) != 0)
    }

    /// `values` summed element-wise over the ranks, in place on every rank (one all-reduce of
    /// an f64 tensor): the evaluation counts, exact for integers below 2^53.
    pub fn sum_f64(&mut self, values: &mut [f64]) -> Result<(), TrainError> {
        if values.is_empty() {
            return Ok(());
        }
        let mut t = Tensor::from_slice(values);
        self.group.all_reduce(&mut t, ReduceOp::Sum).map_err(|e| self.err(e))?;
        values.copy_from_slice(&Vec::<f64>::try_from(&t)?);
        Ok(())
    }

    /// Rank 0's bytes on every rank (`bytes` is read on rank 0 only): a length, then the
    /// bytes.
    pub fn broadcast_bytes(&mut self, bytes: &[u8]) -> Result<Vec<u8>, TrainError> {
        let mut len = Tensor::from_slice(&[bytes.len() as i64]);
        self.group.broadcast(&mut len, 0).map_err(|e| self.err(e))?;
        let n = len.int64_value(&[0]).max(0) as usize;
        let mut data = if self.is_writer() {
            Tensor::from_slice(bytes)
        } else {
            Tensor::zeros([n as i64], (Kind::Uint8, tch::Device::Cpu))
        };
        if n > 0 {
            self.group.broadcast(&mut data, 0).map_err(|e| self.err(e))?;
        }
        Vec::<u8>::try_from(&data).map_err(TrainError::from)
    }

    /// Overwrites `tensors` (in a fixed order, the same on every rank) with rank 0's values:
    /// one broadcast per element kind, through a flat buffer.
    ///
    /// # Shapes
    /// Any; the shapes must agree across ranks (the same network).
    pub(crate) fn broadcast_tensors(&mut self, tensors: &[Tensor]) -> Result<(), TrainError> {
        let _guard = tch::no_grad_guard();
        let mut kinds: Vec<Kind> = Vec::new();
        for t in tensors {
            if !kinds.contains(&t.kind()) {
                kinds.push(t.kind());
            }
        }
        for kind in kinds {
            let group: Vec<&Tensor> = tensors.iter().filter(|t| t.kind() == kind).collect();
            let pieces: Vec<Tensor> = group.iter().map(|t| t.reshape([-1])).collect();
            let mut flat = Tensor::cat(&pieces, 0).contiguous();
            self.group.broadcast(&mut flat, 0).map_err(|e| self.err(e))?;
            let mut offset = 0;
            for t in group {
                let n = t.numel() as i64;
                let mut dst = t.shallow_clone();
                dst.copy_(&flat.narrow(0, offset, n).view(t.size().as_slice()));
                offset += n;
            }
        }
        Ok(())
    }

    /// Rank 0's optimizer state (step count, moment buffers) on every rank.
    pub(crate) fn broadcast_optimizer(&mut self, opt: &mut Optimizer) -> Result<(), TrainError> {
        let template = opt.flat_params().zeros_like();
        let (step, buffers) = opt.state_mut();
        let flags: Vec<i64> =
            std::iter::once(*step).chain(buffers.iter().map(|b| i64::from(b.is_some()))).collect();
        let mut t = Tensor::from_slice(&flags);
        self.group.broadcast(&mut t, 0).map_err(|e| self.err(e))?;
        let agreed = Vec::<i64>::try_from(&t)?;
        *step = agreed[0];
        let mut present = Vec::new();
        for (b, &on) in buffers.into_iter().zip(&agreed[1..]) {
            if on == 0 {
                *b = None;
            } else {
                present.push(b.get_or_insert_with(|| template.zeros_like()).shallow_clone());
            }
        }
        self.broadcast_tensors(&present)
    }

    /// One small all-reduce per step: the mean of the ranks' loss parts (NaN and inf
    /// propagate, so every rank sees a non-finite loss at the same step), whether any rank
    /// was asked to stop, and whether any rank has a parameter without gradient.
    pub(crate) fn agree_step(
        &mut self,
        parts: &LossBreakdown,
        stop: bool,
        inactive: bool,
    ) -> Result<Agreed, TrainError> {
        let v = [
            parts.total,
            parts.ce,
            parts.distill,
            parts.mar,
            f64::from(u8::from(stop)),
            f64::from(u8::from(inactive)),
        ];
        let mut t = Tensor::from_slice(&v);
        let started = std::time::Instant::now();
        self.group.all_reduce(&mut t, ReduceOp::Sum).map_err(|e| self.err(e))?;
        self.stats.other_s.push(started.elapsed().as_secs_f64());
        let s = Vec::<f64>::try_from(&t)?;
        let w = self.world_size() as f64;
        Ok(Agreed {
            parts: LossBreakdown {
                total: s[0] / w,
                ce: s[1] / w,
                distill: s[2] / w,
                mar: s[3] / w,
            },
            stop: s[4] > 0.0,
            inactive: s[5] > 0.0,
        })
    }

    /// Averages the flat gradient over the ranks (one all-reduce); with `inactive` (some rank
    /// left a parameter without gradient) the per-parameter activity flags (`[P]`, small) are
    /// united first, so a parameter any rank reached is updated everywhere, as DDP's
    /// `find_unused_parameters` does.
    ///
    /// # Shapes
    /// `grads`: the optimizer's flat `[N]` gradient.
    pub(crate) fn average_gradients(
        &mut self,
        grads: &mut Gradients,
        inactive: bool,
        opt: &Optimizer,
    ) -> Result<(), TrainError> {
        let started = std::time::Instant::now();
        if inactive {
            let flags: Vec<f32> = match grads.pattern() {
                Some(p) => p.iter().map(|&a| f32::from(u8::from(a))).collect(),
                None => vec![1.0; opt.num_params()],
            };
            let mut t = Tensor::from_slice(&flags);
            self.group.all_reduce(&mut t, ReduceOp::Sum).map_err(|e| self.err(e))?;
            let united: Vec<bool> = Vec::<f32>::try_from(&t)?.iter().map(|&v| v > 0.0).collect();
            grads.set_pattern(united);
        }
        let flat = grads.flat_mut();
        self.stats.allreduce_bytes = flat.numel() * flat.kind().elt_size_in_bytes();
        self.group.all_reduce(flat, ReduceOp::Mean).map_err(|e| self.err(e))?;
        self.stats.allreduce_s.push(started.elapsed().as_secs_f64());
        Ok(())
    }

    /// [`DataParallel::broadcast_tensors`] of the buffers after a step, timed as a step
    /// collective.
    pub(crate) fn broadcast_buffers(&mut self, buffers: &[Tensor]) -> Result<(), TrainError> {
        let started = std::time::Instant::now();
        self.broadcast_tensors(buffers)?;
        if let Some(last) = self.stats.other_s.last_mut() {
            *last += started.elapsed().as_secs_f64();
        }
        Ok(())
    }

    /// The SyncBatchNorm hook over this group (`compute.sync_batchnorm`).
    pub(crate) fn sync_batch_norm(&self) -> Result<Arc<SyncBnHook>, TrainError> {
        let sync = self.group.sync_batch_norm().map_err(|e| self.err(e))?;
        Ok(Arc::new(SyncBnHook {
            sync,
            rank: self.rank(),
            world: self.world_size(),
            error: Mutex::new(None),
        }))
    }
}

/// Every training-mode [`BatchNorm`] of the student as SyncBatchNorm over the process group
/// (installed by the trainer around the student's forward pass).
pub(crate) struct SyncBnHook {
    sync: SyncBatchNorm,
    rank: usize,
    world: usize,
    /// The first collective failure of a forward pass (the output is NaN then).
    error: Mutex<Option<DistError>>,
}

impl SyncBnHook {
    /// The failure of a forward pass since the last call, as the trainer reports it.
    pub(crate) fn take_error(&self) -> Option<TrainError> {
        let e = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        e.map(|source| TrainError::Distributed { rank: self.rank, world: self.world, source })
    }
}

impl TrainBatchNorm for SyncBnHook {
    /// # Shapes
    /// - `xs`: `[B, C, ...]` -> same shape; `rows`: `[B]` f32 of 0/1.
    fn forward(&self, bn: &BatchNorm, xs: &Tensor, rows: Option<&Tensor>) -> Tensor {
        let (w, b, m, v) = (&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var);
        match self.sync.forward(xs, w, b, m, v, rows, bn.momentum(), bn.eps()) {
            Ok(y) => y,
            Err(e) => {
                let mut slot = self.error.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                slot.get_or_insert(e);
                xs * f64::NAN
            }
        }
    }
}
