//! Squeeze-and-excitation layers: [`SeLayer`] (linear, CASIA-SURF `SELayer`, names `fc.0`, `fc.2`)
//! and [`SeConv`] (1x1 convs, ESANet `SqueezeAndExcitation`, same names).

use tch::Tensor;
use tch::nn::{self, Module};

use crate::layers::{Conv2d, ConvInit, ConvSpec, conv2d, linear};

/// `SELayer(channels, reduction)`: avgpool -> Linear(C -> C/r) -> ReLU -> Linear(C/r -> C)
/// -> sigmoid -> channel scale.
#[derive(Debug)]
pub struct SeLayer {
    fc0: nn::Linear,
    fc2: nn::Linear,
}

impl SeLayer {
    /// Layers under `p / "fc" / {0, 2}`.
    pub fn new(p: &nn::Path<'_>, channels: i64, reduction: i64) -> Self {
        let hidden = (channels / reduction).max(1);
        let f = p / "fc";
        SeLayer { fc0: linear(&f / "0", channels, hidden), fc2: linear(&f / "2", hidden, channels) }
    }
}

impl Module for SeLayer {
    /// # Shapes
    /// - `xs`: `[B, C, H, W]` -> `[B, C, H, W]`.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let (b, c) = (xs.size()[0], xs.size()[1]);
        let w = xs.mean_dim(&[2i64, 3][..], false, None); // [B, C]
        let w = self.fc2.forward(&self.fc0.forward(&w).relu()).sigmoid(); // [B, C]
        xs * w.view([b, c, 1, 1])
    }
}

/// ESANet `SqueezeAndExcitation`: avgpool -> 1x1 conv C -> C/r (bias) -> ReLU -> 1x1 conv
/// C/r -> C (bias) -> sigmoid -> channel scale.
#[derive(Debug)]
pub struct SeConv {
    fc0: Conv2d,
    fc2: Conv2d,
}

impl SeConv {
    /// Convs under `p / "fc" / {0, 2}`, PyTorch default init.
    pub fn new(p: &nn::Path<'_>, channels: i64, reduction: i64) -> Self {
        let hidden = (channels / reduction).max(1);
        let spec =
            ConvSpec { bias: true, init: ConvInit::TorchDefault, ..ConvSpec::square(1, 1, 0) };
        let f = p / "fc";
        SeConv {
            fc0: conv2d(&f / "0", channels, hidden, spec),
            fc2: conv2d(&f / "2", hidden, channels, spec),
        }
    }
}

impl Module for SeConv {
    /// # Shapes
    /// - `xs`: `[B, C, H, W]` -> `[B, C, H, W]`.
    fn forward(&self, xs: &Tensor) -> Tensor {
        let w = xs.adaptive_avg_pool2d([1, 1]); // [B, C, 1, 1]
        let w = self.fc2.forward(&self.fc0.forward(&w).relu()).sigmoid();
        xs * w
    }
}
