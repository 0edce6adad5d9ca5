//! Small building blocks with PyTorch parameter names: [`BatchNorm`] (with `num_batches_tracked`),
//! conv and linear constructors using PyTorch's initialisations.

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// PyTorch's BatchNorm default epsilon.
pub const BN_EPS: f64 = 1e-5;
/// PyTorch's BatchNorm default momentum.
pub const BN_MOMENTUM: f64 = 0.1;

/// Batch normalisation over dim 1 with the variables of `torch.nn.BatchNorm{1,2}d`:
/// `weight`, `bias` (trainable), `running_mean`, `running_var`, `num_batches_tracked` (buffers).
///
/// tch's own `nn::BatchNorm` has no `num_batches_tracked`, so official state dicts would not
/// load strictly; this one counts train-mode forwards like PyTorch (momentum stays fixed).
#[derive(Debug)]
pub struct BatchNorm {
    /// Scale `[C]`.
    pub weight: Tensor,
    /// Shift `[C]`.
    pub bias: Tensor,
    /// Running mean `[C]`.
    pub running_mean: Tensor,
    /// Running (unbiased) variance `[C]`.
    pub running_var: Tensor,
    /// Number of train-mode forwards, i64 scalar.
    pub num_batches_tracked: Tensor,
    eps: f64,
    momentum: f64,
}

/// A [`BatchNorm`] with `c` channels under `p`, weight 1, bias 0, momentum 0.1.
pub fn batch_norm(p: nn::Path<'_>, c: i64, eps: f64) -> BatchNorm {
    BatchNorm {
        weight: p.var("weight", &[c], nn::Init::Const(1.0)),
        bias: p.var("bias", &[c], nn::Init::Const(0.0)),
        running_mean: p.zeros_no_train("running_mean", &[c]),
        running_var: p.ones_no_train("running_var", &[c]),
        num_batches_tracked: p.add(
            "num_batches_tracked",
            Tensor::zeros([], (Kind::Int64, p.device())),
            false,
        ),
        eps,
        momentum: BN_MOMENTUM,
    }
}

/// Replaces the training-mode arithmetic of every [`BatchNorm`] run on this thread while
/// installed ([`with_train_batch_norm`]), e.g. SyncBatchNorm across data-parallel ranks.
/// Evaluation mode always uses the running statistics.
pub trait TrainBatchNorm: Send + Sync {
    /// The normalised `xs`; must update `bn`'s running statistics as training-mode batch
    /// normalisation does (`num_batches_tracked` is counted by the caller).
    ///
    /// # Shapes
    /// - `xs`: `[B, C, ...]` -> same shape.
    fn forward(&self, bn: &BatchNorm, xs: &Tensor) -> Tensor;
}

thread_local! {
    static TRAIN_BATCH_NORM: std::cell::RefCell<Option<std::sync::Arc<dyn TrainBatchNorm>>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs `f` with `hook` doing every training-mode [`BatchNorm`] forward of this thread (the
/// previous hook, if any, is restored afterwards).
pub fn with_train_batch_norm<R>(
    hook: std::sync::Arc<dyn TrainBatchNorm>,
    f: impl FnOnce() -> R,
) -> R {
    let previous = TRAIN_BATCH_NORM.with(|h| h.borrow_mut().replace(hook));
    struct Restore(Option<std::sync::Arc<dyn TrainBatchNorm>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            TRAIN_BATCH_NORM.with(|h| *h.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

impl BatchNorm {
    /// The epsilon added to the variance.
    pub fn eps(&self) -> f64 {
        self.eps
    }

    /// The running statistics' momentum.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }
}

impl ModuleT for BatchNorm {
    /// # Shapes
    /// - `xs`: `[B, C, ...]` -> same shape.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let mut n = self.num_batches_tracked.shallow_clone();
                let _ = n.g_add_scalar_(1);
            });
            if let Some(hook) = TRAIN_BATCH_NORM.with(|h| h.borrow().clone()) {
                return hook.forward(self, xs);
            }
        }
        Tensor::batch_norm(
            xs,
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            self.momentum,
            self.eps,
            false,
        )
    }
}

/// How a conv's weights are initialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvInit {
    /// Kaiming-normal, fan_out, ReLU gain: std = sqrt(2 / (C_out * kh * kw)) (torchvision ResNet).
    KaimingFanOut,
    /// PyTorch's `Conv2d` default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias.
    TorchDefault,
}

/// Geometry of a 2-D convolution (square or rectangular kernels).
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Kernel `[kh, kw]`.
    pub kernel: [i64; 2],
    /// Stride `[sh, sw]`.
    pub stride: [i64; 2],
    /// Padding `[ph, pw]`.
    pub padding: [i64; 2],
    /// Dilation `[dh, dw]`.
    pub dilation: [i64; 2],
    /// Groups.
    pub groups: i64,
    /// With a bias.
    pub bias: bool,
    /// Initialisation.
    pub init: ConvInit,
}

impl ConvSpec {
    /// A square `k`x`k` conv, stride `s`, padding `pad`, no bias, Kaiming fan_out init.
    pub fn square(k: i64, s: i64, pad: i64) -> Self {
        ConvSpec {
            kernel: [k, k],
            stride: [s, s],
            padding: [pad, pad],
            dilation: [1, 1],
            groups: 1,
            bias: false,
            init: ConvInit::KaimingFanOut,
        }
    }
}

/// A 2-D convolution with PyTorch names `weight` `[C_out, C_in/groups, kh, kw]` and `bias`.
#[derive(Debug)]
pub struct Conv2d {
    /// Kernel.
    pub weight: Tensor,
    /// Optional bias `[C_out]`.
    pub bias: Option<Tensor>,
    spec: ConvSpec,
}

/// A [`Conv2d`] under `p`.
pub fn conv2d(p: nn::Path<'_>, c_in: i64, c_out: i64, spec: ConvSpec) -> Conv2d {
    let dims = [c_out, c_in / spec.groups, spec.kernel[0], spec.kernel[1]];
    let fan_in = (dims[1] * dims[2] * dims[3]) as f64;
    let bound = 1.0 / fan_in.sqrt();
    let w_init = match spec.init {
        ConvInit::KaimingFanOut => nn::Init::Kaiming {
            dist: nn::init::NormalOrUniform::Normal,
            fan: nn::init::FanInOut::FanOut,
            non_linearity: nn::init::NonLinearity::ReLU,
        },
        ConvInit::TorchDefault => nn::Init::Uniform { lo: -bound, up: bound },
    };
    let weight = p.var("weight", &dims, w_init);
    let bias = spec.bias.then(|| {
        let b_init = match spec.init {
            ConvInit::KaimingFanOut => nn::Init::Const(0.0),
            ConvInit::TorchDefault => nn::Init::Uniform { lo: -bound, up: bound },
        };
        p.var("bias", &[c_out], b_init)
    });
    Conv2d { weight, bias, spec }
}

impl nn::Module for Conv2d {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, C_out, H', W']`.
    fn forward(&self, xs: &Tensor) -> Tensor {
        xs.conv2d(
            &self.weight,
            self.bias.as_ref(),
            self.spec.stride,
            self.spec.padding,
            self.spec.dilation,
            self.spec.groups,
        )
    }
}

/// A linear layer `weight [out, in]`, `bias [out]` with PyTorch's default init
/// U(-1/sqrt(in), 1/sqrt(in)).
pub fn linear(p: nn::Path<'_>, d_in: i64, d_out: i64) -> nn::Linear {
    let bound = 1.0 / (d_in as f64).sqrt();
    let init = nn::Init::Uniform { lo: -bound, up: bound };
    nn::linear(p, d_in, d_out, nn::LinearConfig { ws_init: init, bs_init: Some(init), bias: true })
}
