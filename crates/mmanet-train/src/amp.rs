//! Mixed precision: a dynamic loss scaler with `torch.cuda.amp.GradScaler`'s rules.
//!
//! Under `tch::autocast` the forward pass runs in fp16 where it is safe; small fp16 gradients
//! underflow to zero, so the loss is multiplied by a large `scale` before `backward`, the
//! gradients are divided by it before the optimizer step, and a step whose gradients hold an
//! Inf or NaN is skipped and the scale halved. After `growth_interval` clean steps in a row the
//! scale doubles. This is PyTorch's algorithm (same defaults, same update kernel
//! `_amp_update_scale_`), so a run can be compared with a PyTorch AMP run step for step.
//!
//! On CPU, or with `enabled = false`, the scaler is a no-op: `scale` returns the loss and
//! `step` always steps; so the same training loop serves both precisions.
//!
//! ```
//! use mmanet_train::amp::GradScaler;
//! use mmanet_train::optim::{Optimizer, OptimizerConfig};
//! use tch::{Device, Kind, Tensor, nn, nn::Module};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let lin = nn::linear(vs.root(), 4, 2, Default::default());
//! let mut opt = Optimizer::new(&vs, OptimizerConfig::reference_sgd());
//! let mut scaler = GradScaler::new(false, Device::Cpu); // disabled: plain fp32 steps
//! let x = Tensor::randn([8, 4], (Kind::Float, Device::Cpu));
//! let loss = lin.forward(&x).square().mean(Kind::Float);
//! let grads = opt.backward(&scaler.scale(&loss));
//! assert!(scaler.step(&mut opt, grads));
//! ```

use std::path::Path;

use tch::{Device, Kind, Tensor};

use crate::TrainError;
use crate::optim::{Gradients, Optimizer};

/// `GradScaler`'s defaults: initial scale 2^16, growth 2, back-off 0.5, interval 2000.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScalerConfig {
    /// Scale of the first step.
    pub init_scale: f64,
    /// Factor after `growth_interval` clean steps.
    pub growth_factor: f64,
    /// Factor after a step with non-finite gradients.
    pub backoff_factor: f64,
    /// Clean steps in a row before the scale grows.
    pub growth_interval: i64,
}

impl Default for ScalerConfig {
    fn default() -> Self {
        ScalerConfig {
            init_scale: 65536.0,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        }
    }
}

/// Dynamic loss scaling for fp16 autocast training.
#[derive(Debug)]
pub struct GradScaler {
    enabled: bool,
    config: ScalerConfig,
    /// `[1]` f32 on the training device.
    scale: Tensor,
    /// `[1]` i32: clean steps since the last change of scale.
    growth_tracker: Tensor,
    skipped: u64,
}

impl GradScaler {
    /// A scaler with PyTorch's defaults; enabled only on CUDA (fp16 autocast is CUDA-only here).
    pub fn new(enabled: bool, device: Device) -> Self {
        Self::with_config(enabled, device, ScalerConfig::default())
    }

    /// A scaler with explicit settings.
    pub fn with_config(enabled: bool, device: Device, config: ScalerConfig) -> Self {
        let enabled = enabled && device.is_cuda();
        GradScaler {
            enabled,
            config,
            scale: Tensor::from_slice(&[config.init_scale as f32]).to_device(device),
            growth_tracker: Tensor::from_slice(&[0i32]).to_device(device),
            skipped: 0,
        }
    }

    /// Whether scaling is active (asked for, and on CUDA).
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The current scale (1 when disabled).
    pub fn current_scale(&self) -> f64 {
        if self.enabled { self.scale.double_value(&[0]) } else { 1.0 }
    }

    /// Steps skipped so far because of non-finite gradients.
    pub fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    /// The loss to call `backward` on: `loss * scale`, in f32.
    ///
    /// # Shapes
    /// `loss`: `[]` (any float kind). Returns `[]` f32.
    pub fn scale(&self, loss: &Tensor) -> Tensor {
        if self.enabled { loss.to_kind(Kind::Float) * &self.scale } else { loss.shallow_clone() }
    }

    /// Unscales `grads` (computed from [`GradScaler::scale`]d loss), steps `opt` unless one of
    /// them is non-finite, and updates the scale. Returns whether the optimizer stepped.
    ///
    /// One host synchronisation per step (reading the Inf/NaN flag), as PyTorch's `step`.
    pub fn step(&mut self, opt: &mut Optimizer, mut grads: Gradients) -> bool {
        if !self.enabled {
            opt.apply(&grads);
            return true;
        }
        let found_inf = self.unscale_on_device(&mut grads);
        let stepped = found_inf.double_value(&[0]) == 0.0;
        if stepped {
            opt.apply(&grads);
        } else {
            self.note_skipped();
        }
        self.update_on_device(&found_inf);
        stepped
    }

    /// The first half of [`GradScaler::step`] for a captured CUDA graph: unscales `grads` and
    /// returns the Inf/NaN flag without reading it (`[1]` f32 0/1; zeros when disabled).
    ///
    /// # Shapes
    /// - output: `[1]` f32 on the gradients' device.
    pub(crate) fn unscale_on_device(&self, grads: &mut Gradients) -> Tensor {
        let _guard = tch::no_grad_guard();
        let g = grads.flat_mut();
        if !self.enabled {
            return g.new_zeros([1], (Kind::Float, g.device()));
        }
        let _ = g.g_mul_(&self.scale.reciprocal());
        g.isfinite().all().logical_not().to_kind(Kind::Float).reshape([1])
    }

    /// The second half: updates the scale from `found_inf` on the device (nothing when
    /// disabled). The caller counts a skipped step with `note_skipped` once it has read the
    /// flag.
    ///
    /// # Shapes
    /// - `found_inf`: `[1]` f32 0/1.
    pub(crate) fn update_on_device(&mut self, found_inf: &Tensor) {
        if !self.enabled {
            return;
        }
        let _ = self.scale.internal_amp_update_scale_(
            &self.growth_tracker,
            found_inf,
            self.config.growth_factor,
            self.config.backoff_factor,
            self.config.growth_interval,
        );
    }

    /// Counts a skipped step (a captured update's: see [`GradScaler::update_on_device`]).
    pub(crate) fn note_skipped(&mut self) {
        self.skipped += 1;
        tracing::debug!(scale = self.current_scale(), "non-finite gradients: step skipped");
    }

    /// Writes the scale and growth tracker (for exact resume).
    /// Returns the file's sha256 and size (the commit record names it).
    pub fn save(&self, path: &Path) -> Result<mmanet_fs::Written, TrainError> {
        let named = vec![
            ("scale".to_string(), self.scale.to_device(Device::Cpu)),
            ("growth_tracker".to_string(), self.growth_tracker.to_device(Device::Cpu)),
            ("skipped".to_string(), Tensor::from_slice(&[self.skipped as i64])),
        ];
        crate::run_dir::write_safetensors_atomic(&named, path)
    }

    /// Restores what [`GradScaler::save`] wrote.
    pub fn load(&mut self, path: &Path) -> Result<(), TrainError> {
        // Its errors name the file.
        let tensors =
            mmanet_models::checkpoint::read_safetensors(path).map_err(TrainError::from_model)?;
        let device = self.scale.device();
        for (name, t) in tensors {
            match name.as_str() {
                // In place: a captured step keeps reading the same tensors.
                "scale" | "growth_tracker" => {
                    let (dst, kind) = if name == "scale" {
                        (&mut self.scale, Kind::Float)
                    } else {
                        (&mut self.growth_tracker, Kind::Int)
                    };
                    dst.f_copy_(&t.to_kind(kind).to_device(device)).map_err(|e| {
                        TrainError::checkpoint(path, format!("entry `{name}`: {e}"))
                    })?;
                }
                "skipped" => {
                    self.skipped = t.f_int64_value(&[0]).map_err(|e| {
                        TrainError::checkpoint(
                            path,
                            format!("entry `skipped` is not one integer: {e}"),
                        )
                    })? as u64;
                }
                other => {
                    return Err(TrainError::checkpoint(path, format!("unknown entry `{other}`")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::optim::OptimizerConfig;
    use tch::nn::{self, Module, VarStore};

    fn setup() -> (VarStore, nn::Linear, Optimizer) {
        tch::manual_seed(0);
        let vs = VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root(), 3, 2, Default::default());
        let opt = Optimizer::new(&vs, OptimizerConfig::reference_sgd());
        (vs, lin, opt)
    }

    /// The unscale/skip/update logic, driven on CPU by forcing `enabled` (autocast itself is
    /// CUDA-only, the arithmetic is not).
    fn forced(config: ScalerConfig) -> GradScaler {
        let mut s = GradScaler::with_config(false, Device::Cpu, config);
        s.enabled = true;
        s
    }

    #[test]
    fn scaled_step_equals_unscaled_step() {
        let _rng = crate::test_rng_lock();
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75]).view([2, 3]);
        let (vs_a, lin_a, mut opt_a) = setup();
        let (vs_b, lin_b, mut opt_b) = setup();
        // Plain fp32 step.
        opt_a.zero_grad();
        lin_a.forward(&x).square().mean(Kind::Float).backward();
        opt_a.step();
        // Scaled by 2^10 (exact in binary), unscaled before the step.
        let mut scaler = forced(ScalerConfig { init_scale: 1024.0, ..Default::default() });
        let grads = opt_b.backward(&scaler.scale(&lin_b.forward(&x).square().mean(Kind::Float)));
        assert!(scaler.step(&mut opt_b, grads));
        let b_vars = vs_b.variables();
        for (name, a) in vs_a.variables() {
            let diff = (&a - &b_vars[&name]).abs().max().double_value(&[]);
            assert!(diff < 1e-7, "{name}: scaled and plain steps differ by {diff}");
        }
        assert_eq!(scaler.current_scale(), 1024.0);
    }

    #[test]
    fn non_finite_gradients_skip_the_step_and_halve_the_scale() {
        let _rng = crate::test_rng_lock();
        let (vs, lin, mut opt) = setup();
        let before: Vec<Tensor> = vs.trainable_variables().iter().map(|t| t.copy()).collect();
        let mut scaler = forced(ScalerConfig::default());
        let x = Tensor::from_slice(&[f32::INFINITY, 1.0, 1.0]).view([1, 3]);
        let grads = opt.backward(&scaler.scale(&lin.forward(&x).sum(Kind::Float)));
        assert!(!scaler.step(&mut opt, grads));
        assert_eq!(scaler.skipped_steps(), 1);
        assert_eq!(scaler.current_scale(), 32768.0);
        for (b, a) in before.iter().zip(vs.trainable_variables()) {
            assert!(b.equal(&a), "a skipped step changed a weight");
        }
    }

    /// The captured step's halves (`unscale_on_device`, `Optimizer::apply_on_device` with the
    /// flag, `update_on_device`) do what `step` does: the same weights, momentum and scale
    /// through clean steps and a step with an Inf gradient, which both skip.
    #[test]
    fn the_device_side_step_equals_the_eager_step_and_skips_alike() {
        let _rng = crate::test_rng_lock();
        let (vs_a, lin_a, mut opt_a) = setup();
        let (vs_b, lin_b, mut opt_b) = setup();
        let config = ScalerConfig { growth_interval: 2, ..Default::default() };
        let (mut eager, mut device) = (forced(config), forced(config));
        let clean = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75]).view([2, 3]);
        let inf = Tensor::from_slice(&[f32::INFINITY, 1.0, 1.0]).view([1, 3]);
        for (i, x) in [&clean, &clean, &inf, &clean].into_iter().enumerate() {
            opt_a.set_lr(0.1 / (i + 1) as f64);
            opt_b.set_lr(0.1 / (i + 1) as f64);
            let loss = |lin: &nn::Linear| lin.forward(x).square().mean(Kind::Float);
            let grads_a = opt_a.backward(&eager.scale(&loss(&lin_a)));
            let stepped = eager.step(&mut opt_a, grads_a);
            let mut grads = opt_b.backward(&device.scale(&loss(&lin_b)));
            let found_inf = device.unscale_on_device(&mut grads);
            opt_b.apply_on_device(&grads, &found_inf.gt(0.0));
            device.update_on_device(&found_inf);
            assert_eq!(stepped, found_inf.double_value(&[0]) == 0.0, "step {i}");
            if stepped {
                opt_b.note_device_step();
            } else {
                device.note_skipped();
            }
            let b_vars = vs_b.variables();
            for (name, a) in vs_a.variables() {
                assert!(a.equal(&b_vars[&name]), "step {i}: {name} differs");
            }
            assert_eq!(eager.current_scale(), device.current_scale(), "step {i}");
        }
        assert_eq!((opt_a.steps(), opt_b.steps()), (3, 3));
        assert_eq!((eager.skipped_steps(), device.skipped_steps()), (1, 1));
    }

    #[test]
    fn scale_grows_after_the_growth_interval() {
        let _rng = crate::test_rng_lock();
        let (_vs, lin, mut opt) = setup();
        let mut scaler = forced(ScalerConfig { growth_interval: 2, ..Default::default() });
        let x = Tensor::ones([1, 3], (Kind::Float, Device::Cpu));
        for _ in 0..2 {
            let grads = opt.backward(&scaler.scale(&lin.forward(&x).sum(Kind::Float)));
            assert!(scaler.step(&mut opt, grads));
        }
        assert_eq!(scaler.current_scale(), 131072.0);
    }

    #[test]
    fn state_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("scaler.safetensors");
        let mut a = forced(ScalerConfig { init_scale: 8.0, ..Default::default() });
        a.skipped = 3;
        a.save(&path).unwrap();
        let mut b = forced(ScalerConfig::default());
        b.load(&path).unwrap();
        assert_eq!(b.current_scale(), 8.0);
        assert_eq!(b.skipped_steps(), 3);
    }

    #[test]
    fn disabled_on_cpu() {
        let s = GradScaler::new(true, Device::Cpu);
        assert!(!s.is_enabled());
        let l = Tensor::from_slice(&[2.0f32]).view([]);
        assert!(s.scale(&l).equal(&l));
    }
}
