//! Small building blocks with PyTorch parameter names: [`BatchNorm`] (with `num_batches_tracked`),
//! conv and linear constructors using PyTorch's initialisations.
//!
//! **The BatchNorm rule for placeholders.** A sample that really lacks a modality feeds that
//! modality's branch a zero placeholder (its mask bit is 0, so the branch's *output* is
//! multiplied away, docs/architecture.md invariant 2). So that placeholders do not shift the
//! batch statistics of the rows that have the modality, the trainer installs the batch's
//! availability ([`with_availability`], `[B, M]` 0/1) around the trained network's forward
//! pass, and every network runs each modality branch inside [`in_branch`]: a training-mode
//! [`BatchNorm`] inside branch `m` then computes its batch statistics, and updates its running
//! statistics, over the rows whose column `m` is 1 only ([`BatchNorm::forward_rows`]); every
//! row is normalised with them. Without an installed availability, outside a branch, in
//! evaluation mode, or for a branch whose column is all ones, the forward is exactly
//! `Tensor::batch_norm`.

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
    /// normalisation does (`num_batches_tracked` is counted by the caller). With `rows` (the
    /// BatchNorm rule for placeholders: a branch under an installed availability), the
    /// statistics must be those of the rows with `rows[b] = 1`, as in
    /// [`BatchNorm::forward_rows`].
    ///
    /// # Shapes
    /// - `xs`: `[B, C, ...]` -> same shape; `rows`: `[B]` f32 of 0/1.
    fn forward(&self, bn: &BatchNorm, xs: &Tensor, rows: Option<&Tensor>) -> Tensor;
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

thread_local! {
    static AVAILABILITY: std::cell::RefCell<Option<Availability>> =
        const { std::cell::RefCell::new(None) };
    static BRANCH: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// The availability of the batch being run (installed by [`with_availability`]).
struct Availability {
    /// `[B, M]` f32 of 0/1.
    rows: Tensor,
    /// Per column: every row has the modality (the plain path applies).
    complete: Vec<bool>,
}

/// Runs `f` with `avail` as the availability of the batch (one host read of it), so that every
/// training-mode [`BatchNorm`] run inside [`in_branch`]`(m, ..)` on this thread normalises over
/// the rows whose column `m` is 1 (module docs). The previous availability, if any, is
/// restored afterwards. A BatchNorm whose batch size differs from `B` panics.
///
/// # Shapes
/// - `avail`: `[B, M]`, 0/1 (any float kind, any device).
pub fn with_availability<R>(avail: &Tensor, f: impl FnOnce() -> R) -> R {
    let rows = avail.detach().to_kind(Kind::Float);
    let (b, m) = match rows.size()[..] {
        [b, m] => (b, m),
        ref other => panic!("availability must be [B, M], got {other:?}"),
    };
    let host: Vec<f32> =
        Vec::<f32>::try_from(rows.to_device(tch::Device::Cpu).reshape([-1])).unwrap_or_default();
    let complete = (0..m as usize)
        .map(|c| (0..b as usize).all(|r| host.get(r * m as usize + c).is_some_and(|v| *v == 1.0)))
        .collect();
    install_availability(Availability { rows, complete }, f)
}

/// [`with_availability`] without its host read: every branch runs the rule
/// ([`BatchNorm::forward_rows`]), complete columns included, which gives their plain
/// statistics up to rounding. For work that must not read the device (a CUDA-graph capture).
///
/// # Shapes
/// - `avail`: `[B, M]`, 0/1 (any float kind, any device).
pub fn with_availability_every_branch<R>(avail: &Tensor, f: impl FnOnce() -> R) -> R {
    let rows = avail.detach().to_kind(Kind::Float);
    let m = match rows.size()[..] {
        [_, m] => m,
        ref other => panic!("availability must be [B, M], got {other:?}"),
    };
    install_availability(Availability { rows, complete: vec![false; m as usize] }, f)
}

/// Runs `f` with `avail` installed, restoring the previous availability afterwards.
fn install_availability<R>(avail: Availability, f: impl FnOnce() -> R) -> R {
    let previous = AVAILABILITY.with(|a| a.borrow_mut().replace(avail));
    struct Restore(Option<Availability>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0.take();
            AVAILABILITY.with(|a| *a.borrow_mut() = previous);
        }
    }
    let _restore = Restore(previous);
    f()
}

/// Runs `f` as modality `m`'s branch: the layers whose input derives from modality `m`'s input
/// alone (before its first fusion or mask). Changes nothing unless an availability is installed
/// ([`with_availability`]). The enclosing branch, if any, is restored afterwards.
pub fn in_branch<R>(m: usize, f: impl FnOnce() -> R) -> R {
    let previous = BRANCH.with(|b| b.replace(Some(m)));
    struct Restore(Option<usize>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let previous = self.0;
            BRANCH.with(|b| b.set(previous));
        }
    }
    let _restore = Restore(previous);
    f()
}

/// The row weights of the current branch under the installed availability: `None` outside a
/// branch, without an availability, or when every row has the branch's modality.
///
/// # Shapes
/// - output: `[B]` f32 of 0/1.
fn branch_rows() -> Option<Tensor> {
    let m = BRANCH.with(std::cell::Cell::get)?;
    AVAILABILITY.with(|a| {
        let a = a.borrow();
        let a = a.as_ref()?;
        match a.complete.get(m) {
            Some(false) => Some(a.rows.select(1, m as i64)),
            Some(true) => None,
            None => panic!(
                "branch {m} outside the installed availability of {} modalities",
                a.complete.len()
            ),
        }
    })
}

impl BatchNorm {
    /// Training-mode batch normalisation over the rows with `rows[b] = 1` only: with
    /// `n = Σ rows · (spatial size)`, the mean and the biased variance per channel over the
    /// kept rows' values; **every** row is normalised with them (the others' outputs are
    /// finite and depend on their own input only); `running_mean` and `running_var` move with
    /// the momentum towards the kept rows' mean and unbiased variance (`n / (n - 1)`), and stay
    /// unchanged when `n <= 1`. Equal to `Tensor::batch_norm` in training mode on the
    /// index-selected sub-batch for the kept rows (outputs, running statistics, gradients).
    /// Static shapes, no host synchronisation; computed in f32, returned in `xs`'s kind.
    /// `num_batches_tracked` is not counted here (the caller, [`ModuleT::forward_t`], does).
    ///
    /// # Shapes
    /// - `xs`: `[B, C, ...]` -> same shape; `rows`: `[B]`, 0/1 (any float kind).
    pub fn forward_rows(&self, xs: &Tensor, rows: &Tensor) -> Tensor {
        let size = xs.size();
        assert_eq!(
            rows.size(),
            [size[0]],
            "BatchNorm rows {:?} for a batch of {:?}",
            rows.size(),
            size
        );
        let rank = size.len();
        let c = size[1];
        let x = xs.to_kind(Kind::Float); // [B, C, ...]
        let mut shape = vec![1i64; rank];
        shape[0] = size[0];
        let w = rows.detach().to_device(xs.device()).to_kind(Kind::Float); // [B]
        let w_b = w.view(shape.as_slice()); // [B, 1, ..., 1]
        shape[0] = 1;
        shape[1] = c;
        let per_channel = shape.clone(); // [1, C, 1, ..., 1]
        let spatial: i64 = size[2..].iter().product();
        let dims: Vec<i64> = (0..rank as i64).filter(|&d| d != 1).collect();
        let n = w.sum(Kind::Float) * spatial as f64; // []
        let denom = n.clamp_min(1.0); // []
        let mean = (&x * &w_b).sum_dim_intlist(dims.as_slice(), true, Kind::Float) / &denom; // [1, C, 1..]
        let centred = &x - &mean; // [B, C, ...]
        let var =
            (centred.square() * &w_b).sum_dim_intlist(dims.as_slice(), true, Kind::Float) / &denom; // [1, C, 1..], biased
        let gamma = self.weight.to_kind(Kind::Float).view(per_channel.as_slice());
        let beta = self.bias.to_kind(Kind::Float).view(per_channel.as_slice());
        let y = centred * (var.shallow_clone() + self.eps).rsqrt() * gamma + beta;
        tch::no_grad(|| {
            let keep = n.gt(1.0); // [] bool
            let unbiased = &n / (&n - 1.0).clamp_min(1.0); // [] (used only when n > 1)
            let batch_mean = mean.detach().view([c]);
            let batch_var = var.detach().view([c]) * unbiased;
            for (running, batch) in
                [(&self.running_mean, batch_mean), (&self.running_var, batch_var)]
            {
                let old = running.to_kind(Kind::Float); // [C]
                let moved = &old * (1.0 - self.momentum) + batch * self.momentum;
                running.shallow_clone().copy_(&moved.where_self(&keep, &old));
            }
        });
        y.to_kind(xs.kind())
    }

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
    /// Training mode: an installed [`TrainBatchNorm`] hook if any (given the branch's rows
    /// under an installed availability), else inside a branch under an installed availability
    /// [`BatchNorm::forward_rows`] over the rows that have the branch's modality, else
    /// `Tensor::batch_norm`.
    ///
    /// # Shapes
    /// - `xs`: `[B, C, ...]` -> same shape.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        if train {
            tch::no_grad(|| {
                let mut n = self.num_batches_tracked.shallow_clone();
                let _ = n.g_add_scalar_(1);
            });
            let rows = branch_rows();
            if let Some(hook) = TRAIN_BATCH_NORM.with(|h| h.borrow().clone()) {
                return hook.forward(self, xs, rows.as_ref());
            }
            if let Some(rows) = rows {
                return self.forward_rows(xs, &rows);
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

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, nn::VarStore};

    const O: (Kind, Device) = (Kind::Float, Device::Cpu);

    /// A `c`-channel BatchNorm with random affine parameters and running statistics, in its
    /// own var store. (Tests run on parallel threads and libtorch's generator is global, so
    /// identical layers are made with [`twin`], not by reseeding.)
    fn bn(c: i64) -> (VarStore, BatchNorm) {
        let vs = VarStore::new(Device::Cpu);
        let bn = batch_norm(vs.root() / "bn", c, BN_EPS);
        tch::no_grad(|| {
            bn.weight.shallow_clone().copy_(&(Tensor::rand([c], O) + 0.5));
            bn.bias.shallow_clone().copy_(&Tensor::randn([c], O));
            bn.running_mean.shallow_clone().copy_(&Tensor::randn([c], O));
            bn.running_var.shallow_clone().copy_(&(Tensor::rand([c], O) + 0.5));
        });
        (vs, bn)
    }

    /// A BatchNorm with `src`'s values, in its own var store.
    fn twin(src: &BatchNorm) -> (VarStore, BatchNorm) {
        let vs = VarStore::new(Device::Cpu);
        let bn = batch_norm(vs.root() / "bn", src.weight.size()[0], src.eps());
        tch::no_grad(|| {
            for (d, s) in [
                (&bn.weight, &src.weight),
                (&bn.bias, &src.bias),
                (&bn.running_mean, &src.running_mean),
                (&bn.running_var, &src.running_var),
                (&bn.num_batches_tracked, &src.num_batches_tracked),
            ] {
                d.shallow_clone().copy_(s);
            }
        });
        (vs, bn)
    }

    fn close(a: &Tensor, b: &Tensor, what: &str) {
        assert_eq!(a.size(), b.size(), "{what}");
        let d = (a - b).abs().max().double_value(&[]);
        let scale = 1.0 + b.abs().max().double_value(&[]);
        assert!(d <= 2e-5 * scale, "{what}: max |diff| {d}");
    }

    fn rows(r: &[f32]) -> Tensor {
        Tensor::from_slice(r)
    }

    fn kept(r: &[f32]) -> Tensor {
        let idx: Vec<i64> = (0..r.len() as i64).filter(|&i| r[i as usize] == 1.0).collect();
        Tensor::from_slice(&idx)
    }

    fn plain(bn: &BatchNorm, xs: &Tensor) -> Tensor {
        Tensor::batch_norm(
            xs,
            Some(&bn.weight),
            Some(&bn.bias),
            Some(&bn.running_mean),
            Some(&bn.running_var),
            true,
            bn.momentum(),
            bn.eps(),
            false,
        )
    }

    #[test]
    fn masked_statistics_equal_batch_norm_on_the_kept_sub_batch() {
        let r = [1f32, 0., 1., 1., 0., 1.];
        for shape in [vec![6i64, 3], vec![6, 3, 4, 5], vec![6, 3, 7]] {
            let (_va, a) = bn(3);
            let (_vb, b) = twin(&a);
            let x = (Tensor::randn(shape.as_slice(), O) * 3.0 + 1.0).set_requires_grad(true);
            let g = Tensor::randn(shape.as_slice(), O);
            let idx = kept(&r);
            // Masked statistics over the full batch; the loss reads the kept rows only.
            let y = a.forward_rows(&x, &rows(&r));
            (&y * &g).index_select(0, &idx).sum(Kind::Float).backward();
            // PyTorch's training-mode batch norm on the index-selected sub-batch.
            let x2 = x.detach().copy().set_requires_grad(true);
            let y2 = plain(&b, &x2.index_select(0, &idx));
            (&y2 * g.index_select(0, &idx)).sum(Kind::Float).backward();

            close(&y.index_select(0, &idx), &y2, "kept rows' outputs");
            close(&a.running_mean, &b.running_mean, "running_mean");
            close(&a.running_var, &b.running_var, "running_var");
            close(&a.weight.grad(), &b.weight.grad(), "d weight");
            close(&a.bias.grad(), &b.bias.grad(), "d bias");
            close(&x.grad().index_select(0, &idx), &x2.grad().index_select(0, &idx), "d kept x");
            // The placeholders do not reach the kept rows.
            let dropped = Tensor::from_slice(&[1i64, 4]);
            assert_eq!(
                x.grad().index_select(0, &dropped).abs().sum(Kind::Float).double_value(&[]),
                0.0
            );
            assert!(bool::try_from(y.isfinite().all()).unwrap());
        }
    }

    #[test]
    fn all_rows_kept_is_plain_batch_norm() {
        let (_va, a) = bn(4);
        let (_vb, b) = twin(&a);
        let x = Tensor::randn([5, 4, 3, 3], O) * 2.0 - 1.0;
        let y = a.forward_rows(&x, &Tensor::ones([5], O));
        let y2 = plain(&b, &x);
        close(&y, &y2, "outputs");
        close(&a.running_mean, &b.running_mean, "running_mean");
        close(&a.running_var, &b.running_var, "running_var");
    }

    #[test]
    fn one_value_or_none_leaves_the_running_statistics_and_outputs_stay_finite() {
        // n = 1 (one kept row of a [B, C] batch) and n = 0 (no kept row of a [B, C, H, W] one).
        for (shape, r) in [(vec![4i64, 3], [0f32, 1., 0., 0.]), (vec![4, 3, 2, 2], [0.; 4])] {
            let (_v, a) = bn(3);
            let (m0, v0) = (a.running_mean.copy(), a.running_var.copy());
            let x = Tensor::randn(shape.as_slice(), O).set_requires_grad(true);
            let y = a.forward_rows(&x, &rows(&r));
            y.sum(Kind::Float).backward();
            assert_eq!(a.running_mean, m0, "{shape:?}");
            assert_eq!(a.running_var, v0, "{shape:?}");
            assert!(bool::try_from(y.isfinite().all()).unwrap(), "{shape:?}");
            assert!(bool::try_from(x.grad().isfinite().all()).unwrap(), "{shape:?}");
        }
    }

    #[test]
    fn forward_t_applies_the_rule_only_inside_a_branch_under_an_availability() {
        let x = Tensor::randn([4, 2, 3, 3], O);
        let (_v, template) = bn(2);
        // Column 0 lacks row 2; column 1 is complete.
        let avail = Tensor::from_slice(&[1f32, 1., 1., 1., 0., 1., 1., 1.]).view([4, 2]);
        let r = [1f32, 1., 0., 1.];
        let run = |f: &dyn Fn(&BatchNorm) -> Tensor| {
            let (_v, a) = twin(&template);
            let y = f(&a);
            (y, a.running_mean.copy(), a.num_batches_tracked.int64_value(&[]))
        };
        let (masked, m_masked, _) = run(&|a| a.forward_rows(&x, &rows(&r)));
        let (plain_y, m_plain, _) = run(&|a| plain(a, &x));
        let (y, m, n) =
            run(&|a| with_availability(&avail, || in_branch(0, || a.forward_t(&x, true))));
        assert_eq!((y, m, n), (masked.shallow_clone(), m_masked, 1));
        // A complete column, no branch, no availability, and evaluation mode: the plain path.
        for f in [
            &(|a: &BatchNorm| with_availability(&avail, || in_branch(1, || a.forward_t(&x, true))))
                as &dyn Fn(&BatchNorm) -> Tensor,
            &|a| with_availability(&avail, || a.forward_t(&x, true)),
            &|a| in_branch(0, || a.forward_t(&x, true)),
        ] {
            let (y, m, n) = run(f);
            assert_eq!((y, m, n), (plain_y.shallow_clone(), m_plain.shallow_clone(), 1));
        }
        let (y, m, n) =
            run(&|a| with_availability(&avail, || in_branch(0, || a.forward_t(&x, false))));
        let (e, me, _) = run(&|a| {
            Tensor::batch_norm(
                &x,
                Some(&a.weight),
                Some(&a.bias),
                Some(&a.running_mean),
                Some(&a.running_var),
                false,
                0.1,
                BN_EPS,
                false,
            )
        });
        assert_eq!((y, m, n), (e, me, 0));
        // The scopes are restored on the way out.
        assert!(branch_rows().is_none());
        assert_ne!(masked, plain_y);
    }

    /// Records the rows each training-mode forward hands it and answers with the rule.
    struct Recording(std::sync::Mutex<Vec<Option<Vec<f32>>>>);

    impl TrainBatchNorm for Recording {
        fn forward(&self, bn: &BatchNorm, xs: &Tensor, rows: Option<&Tensor>) -> Tensor {
            let seen = rows.map(|r| Vec::<f32>::try_from(r).unwrap());
            self.0.lock().unwrap().push(seen);
            match rows {
                Some(r) => bn.forward_rows(xs, r),
                None => plain(bn, xs),
            }
        }
    }

    /// An installed hook replaces every training-mode forward and is given the branch's rows
    /// exactly where the rule applies (inside a branch whose column some row lacks), `None`
    /// elsewhere; evaluation mode never reaches it.
    #[test]
    fn an_installed_hook_gets_the_branch_rows_where_the_rule_applies() {
        let x = Tensor::randn([4, 2, 3, 3], O);
        let (_v, a) = bn(2);
        let avail = Tensor::from_slice(&[1f32, 1., 1., 1., 0., 1., 1., 1.]).view([4, 2]);
        let hook = std::sync::Arc::new(Recording(std::sync::Mutex::new(Vec::new())));
        with_train_batch_norm(hook.clone(), || {
            with_availability(&avail, || {
                let _ = in_branch(0, || a.forward_t(&x, true));
                let _ = in_branch(1, || a.forward_t(&x, true));
                let _ = a.forward_t(&x, true);
                let _ = in_branch(0, || a.forward_t(&x, false));
            });
            let _ = in_branch(0, || a.forward_t(&x, true));
        });
        let seen = hook.0.lock().unwrap().clone();
        assert_eq!(seen, [Some(vec![1., 1., 0., 1.]), None, None, None]);
        assert_eq!(a.num_batches_tracked.int64_value(&[]), 4);
    }
}
