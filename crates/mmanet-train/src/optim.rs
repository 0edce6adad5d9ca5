//! SGD (Nesterov) and Adam with PyTorch's update rules and savable state.
//!
//! Written here rather than using `tch::nn::Optimizer` so that the momentum buffers can be saved
//! next to the weights: an interrupted run then resumes exactly.

use std::collections::BTreeMap;
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
pub struct Optimizer {
    config: OptimizerConfig,
    params: Vec<(String, Tensor)>,
    /// SGD momentum buffers, or Adam first moments.
    first: BTreeMap<String, Tensor>,
    /// Adam second moments.
    second: BTreeMap<String, Tensor>,
    step: i64,
    lr: f64,
    momentum_override: Option<f64>,
}

impl Optimizer {
    /// An optimizer for the trainable variables of `vs`, sorted by name.
    pub fn new(vs: &VarStore, config: OptimizerConfig) -> Self {
        let mut params: Vec<(String, Tensor)> =
            vs.variables().into_iter().filter(|(_, t)| t.requires_grad()).collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let lr = config.base_lr();
        Optimizer {
            config,
            params,
            first: BTreeMap::new(),
            second: BTreeMap::new(),
            step: 0,
            lr,
            momentum_override: None,
        }
    }

    /// Sets the learning rate used by the next steps.
    pub fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    /// The current learning rate.
    pub fn lr(&self) -> f64 {
        self.lr
    }

    /// Overrides SGD momentum or Adam beta1 (one-cycle momentum cycling).
    pub fn set_momentum(&mut self, momentum: Option<f64>) {
        self.momentum_override = momentum;
    }

    /// Number of steps taken.
    pub fn steps(&self) -> i64 {
        self.step
    }

    /// Zeroes every parameter's gradient.
    pub fn zero_grad(&mut self) {
        for (_, p) in &self.params {
            let mut g = p.grad();
            if g.defined() {
                let _ = g.detach_().zero_();
            }
        }
    }

    /// Applies one update with the current gradients; parameters without a gradient are skipped.
    pub fn step(&mut self) {
        self.step += 1;
        let _guard = tch::no_grad_guard();
        for (name, p) in &self.params {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            let mut p = p.shallow_clone();
            match self.config {
                OptimizerConfig::Sgd { momentum, nesterov, weight_decay, .. } => {
                    let momentum = self.momentum_override.unwrap_or(momentum);
                    let mut d = if weight_decay != 0.0 { &g + &p * weight_decay } else { g.copy() };
                    if momentum != 0.0 {
                        let buf = match self.first.get_mut(name) {
                            Some(buf) => {
                                let _ = buf.g_mul_scalar_(momentum).g_add_(&d);
                                buf.shallow_clone()
                            }
                            None => {
                                let buf = d.copy();
                                self.first.insert(name.clone(), buf.shallow_clone());
                                buf
                            }
                        };
                        d = if nesterov { d + buf * momentum } else { buf };
                    }
                    let _ = p.g_sub_(&(d * self.lr));
                }
                OptimizerConfig::Adam { beta1, beta2, eps, weight_decay, .. } => {
                    let beta1 = self.momentum_override.unwrap_or(beta1);
                    let d = if weight_decay != 0.0 { &g + &p * weight_decay } else { g.copy() };
                    let m = self.first.entry(name.clone()).or_insert_with(|| d.zeros_like());
                    let _ = m.g_mul_scalar_(beta1).g_add_(&(&d * (1.0 - beta1)));
                    let v = self.second.entry(name.clone()).or_insert_with(|| d.zeros_like());
                    let _ = v.g_mul_scalar_(beta2).g_add_(&(&d * &d * (1.0 - beta2)));
                    let bc1 = 1.0 - beta1.powi(self.step as i32);
                    let bc2 = 1.0 - beta2.powi(self.step as i32);
                    let denom = (v.shallow_clone() / bc2).sqrt() + eps;
                    let _ = p.g_sub_(&(m.shallow_clone() / denom * (self.lr / bc1)));
                }
            }
        }
    }

    /// Writes the optimizer state (buffers, step count) as safetensors.
    pub fn save(&self, path: &Path) -> Result<(), TrainError> {
        let mut named: Vec<(String, Tensor)> = Vec::new();
        for (k, t) in &self.first {
            named.push((format!("first.{k}"), t.shallow_clone()));
        }
        for (k, t) in &self.second {
            named.push((format!("second.{k}"), t.shallow_clone()));
        }
        named.push(("step".into(), Tensor::from_slice(&[self.step])));
        crate::run_dir::write_safetensors_atomic(&named, path)
    }

    /// Restores state written by [`Optimizer::save`]; buffers of unknown parameters are an error.
    pub fn load(&mut self, path: &Path) -> Result<(), TrainError> {
        let tensors = Tensor::read_safetensors(path)
            .map_err(|e| TrainError::checkpoint(path, format!("cannot read: {e}")))?;
        let device = self.params.first().map(|(_, p)| p.device()).unwrap_or(tch::Device::Cpu);
        self.first.clear();
        self.second.clear();
        for (name, t) in tensors {
            if name == "step" {
                self.step = t.int64_value(&[0]);
                continue;
            }
            let (slot, param) = name
                .split_once('.')
                .ok_or_else(|| TrainError::checkpoint(path, format!("bad entry `{name}`")))?;
            let Some((_, p)) = self.params.iter().find(|(n, _)| n == param) else {
                return Err(TrainError::checkpoint(path, format!("state for unknown `{param}`")));
            };
            let t = t.to_device(device).to_kind(p.kind());
            match slot {
                "first" => self.first.insert(param.to_string(), t),
                "second" => self.second.insert(param.to_string(), t),
                _ => return Err(TrainError::checkpoint(path, format!("bad entry `{name}`"))),
            };
        }
        Ok(())
    }
}

/// Checks that every parameter is finite; used to stop on a NaN/Inf loss with a clear error.
pub fn all_finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) != 0
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
}
