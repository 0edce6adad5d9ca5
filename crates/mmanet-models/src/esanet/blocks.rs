//! ESANet building blocks: [`ConvBnAct`], [`NonBottleneck1D`], [`LearnedUpsample`] and the
//! masked SE-add fusion [`SeFusionAdd`].

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::layers::{BN_EPS, BatchNorm, Conv2d, ConvInit, ConvSpec, batch_norm, conv2d};
use crate::se::SeConv;

/// NBt1D BatchNorm epsilon.
pub const NBT1D_BN_EPS: f64 = 1e-3;

/// `ConvBNAct` (an `nn.Sequential` with children `conv`, `bn`, `act`): conv k x k (pad k/2,
/// no bias) -> BN -> ReLU.
#[derive(Debug)]
pub struct ConvBnAct {
    conv: Conv2d,
    bn: BatchNorm,
}

impl ConvBnAct {
    /// Under `p` (`p.conv.weight`, `p.bn.*`), PyTorch default conv init.
    pub fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64, k: i64) -> Self {
        let spec = ConvSpec { init: ConvInit::TorchDefault, ..ConvSpec::square(k, 1, k / 2) };
        ConvBnAct {
            conv: conv2d(p / "conv", c_in, c_out, spec),
            bn: batch_norm(p / "bn", c_out, BN_EPS),
        }
    }
}

impl ModuleT for ConvBnAct {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, C_out, H, W]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(xs), train).relu()
    }
}

/// ERFNet `NonBottleneck1D` (stride 1, dilation 1, no dropout): 3x1 -> ReLU -> 1x3 -> BN ->
/// ReLU -> 3x1 -> ReLU -> 1x3 -> BN -> + input -> ReLU; convs with bias, BN eps 1e-3.
/// Names `conv3x1_1`, `conv1x3_1`, `bn1`, `conv3x1_2`, `conv1x3_2`, `bn2`.
#[derive(Debug)]
pub struct NonBottleneck1D {
    conv3x1_1: Conv2d,
    conv1x3_1: Conv2d,
    bn1: BatchNorm,
    conv3x1_2: Conv2d,
    conv1x3_2: Conv2d,
    bn2: BatchNorm,
}

impl NonBottleneck1D {
    /// A block of `c` channels under `p`.
    pub fn new(p: &nn::Path<'_>, c: i64) -> Self {
        let base =
            ConvSpec { bias: true, init: ConvInit::TorchDefault, ..ConvSpec::square(3, 1, 1) };
        let v = ConvSpec { kernel: [3, 1], padding: [1, 0], ..base };
        let h = ConvSpec { kernel: [1, 3], padding: [0, 1], ..base };
        NonBottleneck1D {
            conv3x1_1: conv2d(p / "conv3x1_1", c, c, v),
            conv1x3_1: conv2d(p / "conv1x3_1", c, c, h),
            bn1: batch_norm(p / "bn1", c, NBT1D_BN_EPS),
            conv3x1_2: conv2d(p / "conv3x1_2", c, c, v),
            conv1x3_2: conv2d(p / "conv1x3_2", c, c, h),
            bn2: batch_norm(p / "bn2", c, NBT1D_BN_EPS),
        }
    }
}

impl ModuleT for NonBottleneck1D {
    /// # Shapes
    /// - `xs`: `[B, C, H, W]` -> `[B, C, H, W]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let o = self.conv3x1_1.forward(xs).relu();
        let o = self.bn1.forward_t(&self.conv1x3_1.forward(&o), train).relu();
        let o = self.conv3x1_2.forward(&o).relu();
        let o = self.bn2.forward_t(&self.conv1x3_2.forward(&o), train);
        (o + xs).relu()
    }
}

/// Padding of the learned 3x3 upsampling conv.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpsamplePad {
    /// `learned-3x3-zeropad` (MMANet's setting, docs/method.md §3.2): conv padding 1.
    Zero,
    /// `learned-3x3` (ESANet's default): replication pad 1, conv padding 0.
    Replicate,
}

/// ESANet `Upsample` in a learned-3x3 mode: nearest x2, then a depthwise 3x3 conv (`conv`)
/// initialised to `[[1,2,1],[2,4,2],[1,2,1]] / 16` with bias 0.
#[derive(Debug)]
pub struct LearnedUpsample {
    conv: Conv2d,
    pad: UpsamplePad,
}

impl LearnedUpsample {
    /// For `c` channels under `p` (`p.conv.weight` `[c, 1, 3, 3]`, `p.conv.bias`).
    pub fn new(p: &nn::Path<'_>, c: i64, pad: UpsamplePad) -> Self {
        let padding = if pad == UpsamplePad::Zero { 1 } else { 0 };
        let spec = ConvSpec { groups: c, bias: true, ..ConvSpec::square(3, 1, padding) };
        let conv = conv2d(p / "conv", c, c, spec);
        let k = Tensor::from_slice(&[1f32, 2., 1., 2., 4., 2., 1., 2., 1.]) / 16.0;
        tch::no_grad(|| {
            let mut w = conv.weight.shallow_clone();
            w.copy_(&k.view([1, 1, 3, 3]).expand([c, 1, 3, 3], false).to_device(w.device()));
            if let Some(b) = &conv.bias {
                let _ = b.shallow_clone().zero_();
            }
        });
        LearnedUpsample { conv, pad }
    }
}

impl Module for LearnedUpsample {
    /// # Shapes
    /// - `xs`: `[B, C, H, W]` -> `[B, C, 2H, 2W]`.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let (h, w) = (xs.size()[2], xs.size()[3]);
        let up = xs.upsample_nearest2d([2 * h, 2 * w], None, None);
        let up = match self.pad {
            UpsamplePad::Zero => up,
            UpsamplePad::Replicate => up.replication_pad2d([1, 1, 1, 1]),
        };
        self.conv.forward(&up)
    }
}

/// `SqueezeAndExciteFusionAdd` with per-sample masks:
/// `fuse = SE_rgb(rgb * p_rgb) + SE_depth(depth * p_depth)` (names `se_rgb.fc.*`,
/// `se_depth.fc.*`).
#[derive(Debug)]
pub struct SeFusionAdd {
    se_rgb: SeConv,
    se_depth: SeConv,
}

impl SeFusionAdd {
    /// For `c` channels under `p`, SE reduction `r`.
    pub fn new(p: &nn::Path<'_>, c: i64, r: i64) -> Self {
        SeFusionAdd {
            se_rgb: SeConv::new(&(p / "se_rgb"), c, r),
            se_depth: SeConv::new(&(p / "se_depth"), c, r),
        }
    }

    /// # Shapes
    /// - `rgb`, `depth`: `[B, C, H, W]`; `p_rgb`, `p_depth`: `[B, 1, 1, 1]` -> `[B, C, H, W]`.
    pub fn forward(
        &self,
        rgb: &Tensor,
        depth: &Tensor,
        p_rgb: &Tensor,
        p_depth: &Tensor,
    ) -> Tensor {
        self.se_rgb.forward(&(rgb * p_rgb)) + self.se_depth.forward(&(depth * p_depth))
    }
}
