//! SGD (Nesterov) and Adam with PyTorch's update rules and savable state.
//!
//! Written here rather than using `tch::nn::Optimizer` so that the momentum buffers can be saved
//! next to the weights: an interrupted run then resumes exactly.

use std::path::Path;

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn::VarStore};

use crate::TrainError;

/// Optimizer settings (reference: SGD, momentum 0.9, Nesterov, weight decay 5e-4, lr 1e-3).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// `torch.optim.SGD` semantics (L2 weight decay added to the gradient, dampening 0).
    Sgd {
        /// Peak learning rate.
        lr: f64,
        /// Momentum factor.
        momentum: f64,
        /// Nesterov momentum.
        nesterov: bool,
        /// L2 weight decay.
        weight_decay: f64,
    },
    /// `torch.optim.Adam` semantics (L2 weight decay added to the gradient, not decoupled).
    Adam {
        /// Peak learning rate.
        lr: f64,
        /// First-moment decay (cycled by one-cycle schedules).
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator epsilon.
        eps: f64,
        /// L2 weight decay.
        weight_decay: f64,
    },
}

impl OptimizerConfig {
    /// The reference classification optimizer.
    pub fn reference_sgd() -> Self {
        OptimizerConfig::Sgd { lr: 1e-3, momentum: 0.9, nesterov: true, weight_decay: 5e-4 }
    }

    /// The configured (peak) learning rate.
    pub fn base_lr(&self) -> f64 {
        match self {
            OptimizerConfig::Sgd { lr, .. } | OptimizerConfig::Adam { lr, .. } => *lr,
        }
    }
}

/// An optimizer over the trainable variables of one [`VarStore`].
///
/// The parameters are moved into one flat buffer (each variable becomes a view of it, with its
/// own strides, so channels-last weights stay channels-last), and so are the gradients and the
/// optimizer state: one update is a handful of whole-buffer kernels instead of several kernels
/// per parameter, which on a GPU removes thousands of kernel launches per step (PyTorch gets
/// the same from its multi-tensor `foreach` optimizers). The arithmetic is element-wise and in
/// the same order as `torch.optim`, so results do not depend on the layout.
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<(String, Tensor)>,
    layout: Vec<Segment>,
    /// `[N]`: every parameter's values.
    flat: Tensor,
    /// `[gap]` zeros per segment, laid between flattened gradients to match the alignment.
    gaps: Vec<Option<Tensor>>,
    /// The last `[N]` 0/1 mask of parameters with a gradient, with the pattern it encodes.
    active_cache: Option<(Vec<bool>, Tensor)>,
    /// `[N]`: SGD momentum buffer, or Adam first moment (zeros until the first update).
    first: Option<Tensor>,
    /// `[N]`: Adam second moment.
    second: Option<Tensor>,
    step: i64,
    lr: f64,
    momentum_override: Option<f64>,
    /// The hyper-parameters [`Optimizer::apply_on_device`] reads, once it has been called.
    on_device: Option<DeviceHyper>,
}

/// The hyper-parameters that change between steps, as device tensors (a captured CUDA graph
/// reads them at replay; the host refills them between replays).
struct DeviceHyper {
    /// `[]` f32: the learning rate (SGD), as the eager update's scalar rounds it.
    lr: Tensor,
    /// `[]` f64: the learning rate (Adam's `lr / bias correction` is formed in f64).
    lr64: Tensor,
    /// `[]` f32: SGD momentum or Adam beta1.
    momentum: Tensor,
    /// `[]` f32: `1 - beta1`.
    one_minus_momentum: Tensor,
    /// `[]` f64: beta1 (Adam's bias correction).
    momentum64: Tensor,
    /// `[]` f64: the number of updates applied (Adam's bias correction).
    step: Tensor,
    /// `[]` f64: Adam's beta2 (a constant, kept on the device so that no capture uploads it).
    beta2: Tensor,
}

/// Every parameter starts on a 512-byte boundary of the flat buffer, as a tensor of its own
/// would (CUDA kernels with vectorised loads, e.g. cuDNN's channels-last ones, need it).
const ALIGN_BYTES: i64 = 512;

/// Where one parameter lives in the flat buffer.
#[derive(Clone, Debug)]
struct Segment {
    offset: i64,
    numel: i64,
    /// Permutation of the dimensions that lists them outermost-first in memory.
    order: Vec<i64>,
    /// Its inverse (memory order back to logical order).
    inverse: Vec<i64>,
}

impl Segment {
    fn new(t: &Tensor, offset: i64) -> Self {
        let stride = t.stride();
        let mut order: Vec<i64> = (0..stride.len() as i64).collect();
        // Stable: equal strides (size-1 dims) keep their logical order.
        order.sort_by(|&a, &b| stride[b as usize].cmp(&stride[a as usize]));
        let mut inverse = vec![0; order.len()];
        for (i, &d) in order.iter().enumerate() {
            inverse[d as usize] = i as i64;
        }
        Segment { offset, numel: t.numel() as i64, order, inverse }
    }

    /// This segment of `flat`, viewed with the parameter's shape and strides.
    fn view(&self, flat: &Tensor, param: &Tensor) -> Tensor {
        let size = param.size();
        let mem_shape: Vec<i64> = self.order.iter().map(|&d| size[d as usize]).collect();
        flat.narrow(0, self.offset, self.numel).view(mem_shape.as_slice()).permute(&self.inverse)
    }

    /// `t` (the parameter's shape, any strides) flattened in the parameter's memory order.
    fn flatten(&self, t: &Tensor) -> Tensor {
        t.permute(&self.order).reshape([-1])
    }
}

/// Gradients of the loss for every parameter, flattened like the parameters.
#[derive(Debug)]
pub struct Gradients {
    /// `[N]`, zeros where a parameter got no gradient.
    flat: Tensor,
    /// Per parameter (the optimizer's order), whether it got a gradient; `None` when all did
    /// (parameters without one are not updated; [`Optimizer::apply`] turns this into its `[N]`
    /// mask, cached per pattern).
    pattern: Option<Vec<bool>>,
}

impl Gradients {
    /// The flat gradient `[N]` (for clipping, scaling or inspection).
    pub fn flat_mut(&mut self) -> &mut Tensor {
        &mut self.flat
    }

    /// Adds the gradients of another loss of the same optimizer (gradient accumulation); a
    /// parameter is updated when either loss reached it.
    pub fn accumulate(&mut self, other: &Gradients) {
        let _guard = tch::no_grad_guard();
        let _ = self.flat.g_add_(&other.flat);
        self.pattern = match (self.pattern.take(), &other.pattern) {
            (Some(a), Some(b)) => Some(a.iter().zip(b).map(|(x, y)| *x || *y).collect()),
            (None, _) | (_, None) => None,
        };
    }

    /// Multiplies every gradient by `factor` (the mean of accumulated micro-batches).
    pub fn scale(&mut self, factor: f64) {
        let _guard = tch::no_grad_guard();
        let _ = self.flat.g_mul_scalar_(factor);
    }

    /// Whether some parameter got no gradient.
    pub fn has_inactive(&self) -> bool {
        self.pattern.is_some()
    }

    /// Per parameter (the optimizer's order), whether it got a gradient; `None` when all did.
    pub(crate) fn pattern(&self) -> Option<&[bool]> {
        self.pattern.as_deref()
    }

    /// Sets which parameters these gradients update (one flag per parameter, the optimizer's
    /// order; all `true` is stored as `None`).
    pub(crate) fn set_pattern(&mut self, pattern: Vec<bool>) {
        self.pattern = (!pattern.iter().all(|&a| a)).then_some(pattern);
    }
}

impl Optimizer {
    /// An optimizer for the trainable variables of `vs`, sorted by name; the variables become
    /// views of one flat buffer (their values are unchanged).
    pub fn new(vs: &VarStore, config: OptimizerConfig) -> Self {
        let mut params: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let (kind, device) = params
            .first()
            .map(|(_, p)| (p.kind(), p.device()))
            .unwrap_or((tch::Kind::Float, tch::Device::Cpu));
        let align = (ALIGN_BYTES / kind.elt_size_in_bytes() as i64).max(1);
        let mut layout: Vec<Segment> = Vec::with_capacity(params.len());
        let mut gaps = Vec::with_capacity(params.len());
        let mut n = 0;
        for (_, p) in &params {
            let seg = Segment::new(p, n);
            n += seg.numel;
            let gap = (align - n % align) % align;
            gaps.push((gap > 0).then(|| Tensor::zeros([gap], (kind, device))));
            n += gap;
            layout.push(seg);
        }
        let flat = Tensor::zeros([n], (kind, device));
        tch::no_grad(|| {
            for ((_, p), seg) in params.iter_mut().zip(&layout) {
                let mut view = seg.view(&flat, p);
                view.copy_(p);
                p.set_data(&view);
            }
        });
        let lr = config.base_lr();
        Optimizer {
            config,
            params,
            layout,
            flat,
            gaps,
            active_cache: None,
            first: None,
            second: None,
            step: 0,
            lr,
            momentum_override: None,
            on_device: None,
        }
    }

    /// Sets the learning rate used by the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
        self.refill_device_hyper();
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Overrides SGD momentum or Adam beta1 (one-cycle momentum cycling).
    pub fn set_momentum(&mut self, momentum: Option<f64>) {
        self.momentum_override = momentum;
        self.refill_device_hyper();
    }

    /// The momentum (SGD) or beta1 (Adam) of the next step.
    fn momentum(&self) -> f64 {
        let configured = match self.config {
            OptimizerConfig::Sgd { momentum, .. } => momentum,
            OptimizerConfig::Adam { beta1, .. } => beta1,
        };
        self.momentum_override.unwrap_or(configured)
    }

    /// Whether the next update keeps a momentum buffer: a captured update is one shape of
    /// computation, so a change of this flag needs a new capture (`compute.cuda_graph`).
    pub(crate) fn uses_momentum_buffer(&self) -> bool {
        matches!(self.config, OptimizerConfig::Adam { .. }) || self.momentum() != 0.0
    }

    /// Copies the host's learning rate, momentum and step count into the device tensors
    /// [`Optimizer::apply_on_device`] reads (queued on the current stream, before the next
    /// replay); nothing until it has been called once.
    fn refill_device_hyper(&mut self) {
        let (lr, momentum, step) = (self.lr, self.momentum(), self.step);
        let Some(h) = &mut self.on_device else { return };
        let _guard = tch::no_grad_guard();
        let _ = h.lr.fill_(lr);
        let _ = h.lr64.fill_(lr);
        let _ = h.momentum.fill_(momentum);
        let _ = h.one_minus_momentum.fill_(1.0 - momentum);
        let _ = h.momentum64.fill_(momentum);
        let _ = h.step.fill_(step as f64);
        if let OptimizerConfig::Adam { beta2, .. } = self.config {
            let _ = h.beta2.fill_(beta2);
        }
    }

    /// Counts one update applied by a replay of a captured [`Optimizer::apply_on_device`]
    /// (which ran its host code once, at capture).
    pub(crate) fn note_device_step(&mut self) {
        self.step += 1;
    }

    /// Number of steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Zeroes every parameter's accumulated `.grad` (only needed with [`Optimizer::step`]).
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// The gradients of `loss` (`[]`), computed without touching the parameters' `.grad`.
    ///
    /// # Panics
    /// If libtorch's backward pass fails (see [`Optimizer::try_backward`]).
    pub fn backward(&mut self, loss: &Tensor) -> Gradients {
        self.try_backward(loss).expect("backward pass")
    }

    /// [`Optimizer::backward`], with a failure of libtorch's backward pass (e.g. a collective
    /// inside SyncBatchNorm's backward that timed out) as an error.
    pub fn try_backward(&mut self, loss: &Tensor) -> Result<Gradients, TrainError> {
        let inputs: Vec<&Tensor> = self.params.iter().map(|(_, p)| p).collect();
        let grads = Tensor::f_run_backward(&[loss], &inputs, false, false)?;
        Ok(self.gather(grads))
    }

    /// One update from the parameters' accumulated `.grad` (after `loss.backward()`);
    /// parameters without a gradient are skipped.
    pub fn step(&mut self) {
        let grads = self.params.iter().map(|(_, p)| p.grad()).collect();
        let grads = self.gather(grads);
        self.apply(&grads);
    }

    /// Flattens per-parameter gradients (undefined = none) into [`Gradients`]: one `cat`.
    fn gather(&mut self, grads: Vec<Tensor>) -> Gradients {
        let _guard = tch::no_grad_guard();
        let mut pieces = Vec::with_capacity(2 * grads.len());
        let mut active = Vec::with_capacity(grads.len());
        for (((g, seg), (_, p)), gap) in
            grads.iter().zip(&self.layout).zip(&self.params).zip(&self.gaps)
        {
            active.push(g.defined());
            pieces.push(if g.defined() {
                seg.flatten(&g.to_kind(p.kind()))
            } else {
                Tensor::zeros([seg.numel], (p.kind(), p.device()))
            });
            if let Some(gap) = gap {
                pieces.push(gap.shallow_clone());
            }
        }
        let flat = if pieces.is_empty() { self.flat.zeros_like() } else { Tensor::cat(&pieces, 0) };
        let mut grads = Gradients { flat, pattern: None };
        grads.set_pattern(active);
        grads
    }

    /// The number of parameters (the length of a gradient's activity pattern).
    pub(crate) fn num_params(&self) -> usize {
        self.params.len()
    }

    /// `[N]` 0/1: which parameters got a gradient (built on the device, cached per pattern).
    fn active_mask(&mut self, active: Vec<bool>) -> Tensor {
        if let Some((pattern, mask)) = &self.active_cache {
            if *pattern == active {
                return mask.shallow_clone();
            }
        }
        let mask = self.flat.ones_like();
        for (seg, _) in self.layout.iter().zip(&active).filter(|(_, a)| !**a) {
            let _ = mask.narrow(0, seg.offset, seg.numel).fill_(0.0);
        }
        self.active_cache = Some((active, mask.shallow_clone()));
        mask
    }

    /// Applies one update with `grads` (as `torch.optim`: L2 weight decay added to the gradient,
    /// dampening 0; parameters without a gradient keep their values).
    ///
    /// # Panics
    /// If a parameter no longer views the flat buffer (its storage was replaced after
    /// [`Optimizer::new`], e.g. by a later layout conversion): its updates would be lost.
    pub fn apply(&mut self, grads: &Gradients) {
        self.assert_views();
        self.step += 1;
        let _guard = tch::no_grad_guard();
        let active = grads.pattern.clone().map(|pattern| self.active_mask(pattern));
        let p = &mut self.flat;
        let g = &grads.flat;
        match self.config {
            OptimizerConfig::Sgd { momentum, nesterov, weight_decay, .. } => {
                let momentum = self.momentum_override.unwrap_or(momentum);
                let mut d = decayed_gradient(g, p, weight_decay, active.as_ref());
                if momentum != 0.0 {
                    // A zero buffer gives PyTorch's first-step `buf = d` exactly (0 * m + d).
                    let buf = self.first.get_or_insert_with(|| p.zeros_like());
                    let _ = buf.g_mul_scalar_(momentum).g_add_(&d);
                    d = if nesterov { d + &*buf * momentum } else { buf.shallow_clone() };
                }
                let _ = p.g_sub_(&(d * self.lr));
            }
            OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, .. } => {
                let beta1 = self.momentum_override.unwrap_or(beta1);
                let d = decayed_gradient(g, p, weight_decay, active.as_ref());
                let m = self.first.get_or_insert_with(|| p.zeros_like());
                let _ = m.g_mul_scalar_(beta1).g_add_(&(&d * (1.0 - beta1)));
                let v = self.second.get_or_insert_with(|| p.zeros_like());
                let _ = v.g_mul_scalar_(beta2).g_add_(&(&d * &d * (1.0 - beta2)));
                let bc1 = 1.0 - beta1.powi(self.step as i32);
                let bc2 = 1.0 - beta2.powi(self.step as i32);
                let denom = (&*v / bc2).sqrt() + eps;
                let mut update = &*m / denom * (self.lr / bc1);
                if let Some(active) = &active {
                    update *= active;
                }
                let _ = p.g_sub_(&update);
            }
        }
    }

    /// [`Optimizer::apply`] without reading the host's hyper-parameters at launch, for a
    /// captured CUDA graph: the learning rate, momentum and step count come from device tensors
    /// (refilled by [`Optimizer::set_lr`] and [`Optimizer::set_momentum`]), and the update is
    /// kept only where `skip` is false (AMP's Inf/NaN gradients, a non-finite loss), as the
    /// eager path skips [`Optimizer::apply`]. The same element-wise arithmetic in the same
    /// order, so the values equal the eager update's. The host step count is not advanced
    /// (the caller counts executed steps with `note_device_step`). The first call must not be
    /// captured: it creates the moment buffers and the device tensors.
    ///
    /// # Shapes
    /// - `skip`: `[]` or `[1]` bool on the parameters' device.
    pub(crate) fn apply_on_device(&mut self, grads: &Gradients, skip: &Tensor) {
        self.assert_views();
        if self.on_device.is_none() {
            let (device, f32, f64) = (self.flat.device(), tch::Kind::Float, tch::Kind::Double);
            let scalar = |kind| Tensor::zeros([], (kind, device));
            self.on_device = Some(DeviceHyper {
                lr: scalar(f32),
                lr64: scalar(f64),
                momentum: scalar(f32),
                one_minus_momentum: scalar(f32),
                momentum64: scalar(f64),
                step: scalar(f64),
                beta2: scalar(f64),
            });
            self.refill_device_hyper();
        }
        let _guard = tch::no_grad_guard();
        let keep = skip.logical_not().reshape([]);
        let active = grads.pattern.clone().map(|pattern| self.active_mask(pattern));
        let uses_buffer = self.uses_momentum_buffer();
        let h = self.on_device.as_ref().expect("created above");
        let p = &self.flat;
        let g = &grads.flat;
        let kept = |new: &Tensor, old: &Tensor| {
            old.shallow_clone().copy_(&new.where_self(&keep, old));
        };
        match self.config {
            OptimizerConfig::Sgd { nesterov, weight_decay, .. } => {
                let mut d = decayed_gradient(g, p, weight_decay, active.as_ref());
                if uses_buffer {
                    let buf = self.first.get_or_insert_with(|| p.zeros_like());
                    let new_buf = &*buf * &h.momentum + &d;
                    d = if nesterov { d + &new_buf * &h.momentum } else { new_buf.shallow_clone() };
                    kept(&new_buf, buf);
                }
                kept(&(p - d * &h.lr), p);
            }
            OptimizerConfig::Adam { beta2, eps, weight_decay, .. } => {
                let d = decayed_gradient(g, p, weight_decay, active.as_ref());
                let _ = h.step.shallow_clone().g_add_(&keep.to_kind(tch::Kind::Double));
                let m = self.first.get_or_insert_with(|| p.zeros_like());
                let new_m = &*m * &h.momentum + &d * &h.one_minus_momentum;
                let v = self.second.get_or_insert_with(|| p.zeros_like());
                let new_v = &*v * beta2 + &d * &d * (1.0 - beta2);
                let bc1: Tensor = 1.0 - h.momentum64.pow(&h.step);
                let bc2: Tensor = 1.0 - h.beta2.pow(&h.step);
                let bc2 = bc2.to_kind(tch::Kind::Float);
                let denom = (&new_v / bc2).sqrt() + eps;
                let step_size = (&h.lr64 / bc1).to_kind(tch::Kind::Float);
                let mut update = &new_m / denom * step_size;
                if let Some(active) = &active {
                    update *= active;
                }
                kept(&new_m, m);
                kept(&new_v, v);
                kept(&(p - update), p);
            }
        }
    }

    /// The optimizer's state for data-parallel broadcast: the step count and the moment
    /// buffers `[N]` (`None` before the first step).
    pub(crate) fn state_mut(&mut self) -> (&mut i64, [&mut Option<Tensor>; 2]) {
        (&mut self.step, [&mut self.first, &mut self.second])
    }

    /// The flat parameter buffer `[N]`, for creating moment buffers of its shape.
    pub(crate) fn flat_params(&self) -> &Tensor {
        &self.flat
    }

    /// Checks that every parameter still lives in the flat buffer (pointer comparisons only).
    fn assert_views(&self) {
        let base = self.flat.data_ptr() as usize;
        let elt = self.flat.kind().elt_size_in_bytes();
        for ((name, p), seg) in self.params.iter().zip(&self.layout) {
            assert!(
                p.data_ptr() as usize == base + seg.offset as usize * elt,
                "parameter `{name}` no longer views the optimizer's buffer (its storage was \
                 replaced after Optimizer::new; convert layouts before building the optimizer)"
            );
        }
    }

    /// Writes the optimizer state (buffers per parameter name, step count) as safetensors.
    /// Returns the file's sha256 and size (the commit record names it).
    pub fn save(&self, path: &Path) -> Result<mmanet_fs::Written, TrainError> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (slot, buf) in [("first", &self.first), ("second", &self.second)] {
            if let Some(buf) = buf {
                for ((name, p), seg) in self.params.iter().zip(&self.layout) {
                    named.push((format!("{slot}.{name}"), seg.view(buf, p)));
                }
            }
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        crate::run_dir::write_safetensors_atomic(&named, path)
    }

    /// Restores state written by [`Optimizer::save`]; buffers of unknown parameters are an error.
    pub fn load(&mut self, path: &Path) -> Result<(), TrainError> {
        // Its errors name the file.
        let tensors =
            mmanet_models::checkpoint::read_safetensors(path).map_err(TrainError::from_model)?;
        self.first = None;
        self.second = None;
        let _guard = tch::no_grad_guard();
        for (name, t) in tensors {
            if name == "step" {
                self.step = t.f_int64_value(&[0]).map_err(|e| {
                    TrainError::checkpoint(path, format!("entry `step` is not one integer: {e}"))
                })?;
                continue;
            }
            let (slot, param) = name
                .split_once('.')
                .ok_or_else(|| TrainError::checkpoint(path, format!("bad entry `{name}`")))?;
            let Some(i) = self.params.iter().position(|(n, _)| n == param) else {
                return Err(TrainError::checkpoint(path, format!("state for unknown `{param}`")));
            };
            let flat = &self.flat;
            let buf = match slot {
                "first" => self.first.get_or_insert_with(|| flat.zeros_like()),
                "second" => self.second.get_or_insert_with(|| flat.zeros_like()),
                _ => return Err(TrainError::checkpoint(path, format!("bad entry `{name}`"))),
            };
            let (_, p) = &self.params[i];
            if t.size() != p.size() {
                return Err(TrainError::checkpoint(
                    path,
                    format!("`{name}` has shape {:?}, the parameter {:?}", t.size(), p.size()),
                ));
            }
            self.layout[i].view(buf, p).copy_(&t);
        }
        self.refill_device_hyper();
        Ok(())
    }
}

/// Checks that every parameter is finite; used to stop on a NaN/Inf loss with a clear error.
pub fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) != 0
}

/// The update direction both update paths start from, as `torch.optim`: the gradient plus L2
/// weight decay, zero where `active` is 0 (parameters that got no gradient keep their values).
///
/// # Shapes
/// - `g`, `p`, `active`, the result: `[N]` (the flat gradient and parameter buffers).
fn decayed_gradient(g: &Tensor, p: &Tensor, weight_decay: f64, active: Option<&Tensor>) -> Tensor {
    let mut d = if weight_decay != 0.0 { g + p * weight_decay } else { g.copy() };
    if let Some(active) = active {
        d *= active;
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    /// Runs `steps` updates of `loss = sum((w - 3)^2)` from w = [1, 2] and returns w.
    fn run(config: OptimizerConfig, steps: usize) -> Vec<f64> {
        let mut vs = VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f64, 2.0]));
        vs.double();
        let mut opt = Optimizer::new(&vs, config);
        for _ in 0..steps {
            opt.zero_grad();
            let loss = (&w - 3.0).pow_tensor_scalar(2).sum(Kind::Double);
            loss.backward();
            opt.step();
        }
        Vec::<f64>::try_from(&w).unwrap()
    }

    #[test]
    fn sgd_nesterov_matches_pytorch() {
        // Equivalent python code (torch 2.x):
        //   w = torch.tensor([1., 2.], dtype=torch.float64, requires_grad=True)
        //   opt = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01)
        //   for _ in range(3): opt.zero_grad(); ((w - 3) ** 2).sum().backward(); opt.step()
        // Hand-derived with d = g + 0.01 w, buf = 0.9 buf + d, w -= 0.1 (d + 0.9 buf):
        let cfg =
            OptimizerConfig::Sgd { lr: 0.1, momentum: 0.9, nesterov: true, weight_decay: 0.01 };
        let got = run(cfg, 3);
        let want = reference_sgd(&[1.0, 2.0], 0.1, 0.9, 0.01, 3);
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    /// Scalar re-statement of PyTorch's SGD loop for the quadratic above.
    fn reference_sgd(w0: &[f64], lr: f64, mom: f64, wd: f64, steps: usize) -> Vec<f64> {
        w0.iter()
            .map(|&w0| {
                let (mut w, mut buf) = (w0, None::<f64>);
                for _ in 0..steps {
                    let d = 2.0 * (w - 3.0) + wd * w;
                    let b = match buf {
                        Some(b) => mom * b + d,
                        None => d,
                    };
                    buf = Some(b);
                    w -= lr * (d + mom * b);
                }
                w
            })
            .collect()
    }

    #[test]
    fn adam_converges_and_first_step_is_lr_sized() {
        let cfg = OptimizerConfig::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        };
        // Adam's first step moves every coordinate by ~lr in the descent direction.
        let one = run(cfg.clone(), 1);
        assert!((one[0] - 1.1).abs() < 1e-6 && (one[1] - 2.1).abs() < 1e-6, "{one:?}");
        let many = run(cfg, 500);
        assert!(many.iter().all(|w| (w - 3.0).abs() < 1e-2), "{many:?}");
    }

    #[test]
    fn state_round_trip_resumes_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let cfg =
            OptimizerConfig::Sgd { lr: 0.05, momentum: 0.9, nesterov: true, weight_decay: 0.0 };
        let straight = run(cfg.clone(), 4);

        let mut vs = VarStore::new(Device::Cpu);
        let w = vs.root().var_copy("w", &Tensor::from_slice(&[1.0f64, 2.0]));
        vs.double();
        let mut opt = Optimizer::new(&vs, cfg.clone());
        let step = |opt: &mut Optimizer, w: &Tensor| {
            opt.zero_grad();
            (w - 3.0).pow_tensor_scalar(2).sum(Kind::Double).backward();
            opt.step();
        };
        step(&mut opt, &w);
        step(&mut opt, &w);
        let path = dir.path().join("optim.safetensors");
        opt.save(&path).unwrap();
        let mut resumed = Optimizer::new(&vs, cfg);
        resumed.load(&path).unwrap();
        assert_eq!(resumed.steps(), 2);
        step(&mut resumed, &w);
        step(&mut resumed, &w);
        let got = Vec::<f64>::try_from(&w).unwrap();
        assert_eq!(got, straight);
    }

    /// One SGD-Nesterov step written per parameter with plain tensor ops (the `torch.optim.SGD`
    /// rule), to check the flat implementation against.
    fn per_param_sgd(p: &Tensor, g: &Tensor, lr: f64, m: f64, wd: f64) -> Tensor {
        let d = g + p * wd;
        let buf = d.copy(); // first step: buf = d
        p - (d + buf * m) * lr
    }

    #[test]
    fn flat_layout_keeps_strides_and_matches_per_parameter_updates() {
        let _rng = crate::test_rng_lock();
        tch::manual_seed(3);
        let vs = VarStore::new(Device::Cpu);
        let conv = vs.root().randn("conv", &[4, 3, 2, 2], 0.0, 1.0);
        let bias = vs.root().randn("bias", &[4], 0.0, 1.0);
        let unused = vs.root().randn("unused", &[5], 0.0, 1.0);
        mmanet_models::layout::to_channels_last(&vs);
        let before: Vec<Tensor> = [&conv, &bias, &unused].iter().map(|t| t.copy()).collect();
        let strides = conv.stride();
        let (lr, m, wd) = (0.1, 0.9, 0.01);
        let mut opt = Optimizer::new(
            &vs,
            OptimizerConfig::Sgd { lr, momentum: m, nesterov: true, weight_decay: wd },
        );
        assert_eq!(conv.stride(), strides, "the flat view must keep channels-last strides");
        let base = opt.flat.data_ptr() as usize;
        for t in [&bias, &conv, &unused] {
            assert_eq!((t.data_ptr() as usize - base) % ALIGN_BYTES as usize, 0, "unaligned view");
        }
        assert!(conv.equal(&before[0]) && bias.equal(&before[1]), "flattening changed values");

        let x = Tensor::randn([2, 3, 5, 5], (Kind::Float, Device::Cpu));
        let loss =
            (x.conv2d(&conv, Some(&bias), [1, 1], [0, 0], [1, 1], 1)).square().mean(Kind::Float);
        let grads = Tensor::run_backward(&[&loss], &[&conv, &bias], true, false);
        let flat_grads = opt.backward(&loss);
        opt.apply(&flat_grads);
        for (i, (t, g)) in [&conv, &bias].iter().zip(&grads).enumerate() {
            let want = per_param_sgd(&before[i], g, lr, m, wd);
            let diff = (*t - want).abs().max().double_value(&[]);
            assert!(diff < 1e-6, "parameter {i} differs from the per-parameter rule by {diff}");
        }
        assert!(unused.equal(&before[2]), "a parameter without gradient was updated");
    }

    #[test]
    fn backward_and_accumulated_grad_paths_agree() {
        let _rng = crate::test_rng_lock();
        let make = || {
            tch::manual_seed(5);
            let vs = VarStore::new(Device::Cpu);
            let w = vs.root().randn("w", &[3, 4], 0.0, 1.0);
            (vs, w)
        };
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-4,
        };
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25]).view([4, 1]);
        let (vs_a, wa) = make();
        let (vs_b, wb) = make();
        let mut a = Optimizer::new(&vs_a, cfg.clone());
        let mut b = Optimizer::new(&vs_b, cfg);
        for _ in 0..3 {
            let grads = a.backward(&wa.matmul(&x).square().sum(Kind::Float));
            a.apply(&grads);
            b.zero_grad();
            wb.matmul(&x).square().sum(Kind::Float).backward();
            b.step();
        }
        assert!(wa.equal(&wb));
    }

    #[test]
    fn replacing_a_variable_storage_after_construction_is_caught() {
        let _rng = crate::test_rng_lock();
        let vs = VarStore::new(Device::Cpu);
        let mut w = vs.root().randn("w", &[2, 3], 0.0, 1.0);
        let mut opt = Optimizer::new(&vs, OptimizerConfig::reference_sgd());
        let grads = opt.backward(&w.square().sum(Kind::Float));
        opt.apply(&grads); // still a view: fine
        tch::no_grad(|| w.set_data(&w.copy()));
        let grads = opt.backward(&w.square().sum(Kind::Float));
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| opt.apply(&grads)));
        assert!(caught.is_err(), "a detached parameter must not be silently skipped");
    }
}
