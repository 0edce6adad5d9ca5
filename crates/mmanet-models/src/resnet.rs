//! torchvision-style ResNet blocks and layers ([`BasicBlock`], [`Bottleneck`], [`ResLayer`]) with
//! torchvision parameter names (`conv1`, `bn1`, ..., `downsample.0`, `downsample.1`).

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::layers::{BN_EPS, BatchNorm, Conv2d, ConvSpec, batch_norm, conv2d};

/// Which residual block a ResNet uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3x3 convs, expansion 1 (ResNet18/34).
    Basic,
    /// 1x1, 3x3 (strided), 1x1 convs, expansion 4 (ResNet50, torchvision v1.5).
    Bottleneck,
}

impl BlockKind {
    /// Output channels = `planes * expansion`.
    pub fn expansion(self) -> i64 {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The 1x1 strided projection of a block's shortcut: `downsample.0` conv, `downsample.1` BN.
#[derive(Debug)]
pub struct Downsample {
    conv: Conv2d,
    bn: BatchNorm,
}

impl Downsample {
    fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64, stride: i64) -> Self {
        let p = p / "downsample";
        Downsample {
            conv: conv2d(&p / "0", c_in, c_out, ConvSpec::square(1, stride, 0)),
            bn: batch_norm(&p / "1", c_out, BN_EPS),
        }
    }

    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.conv.forward(xs), train)
    }
}

/// torchvision `BasicBlock`.
#[derive(Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<Downsample>,
}

impl BasicBlock {
    /// A block `c_in -> planes` with the first conv strided by `stride`; a projection shortcut
    /// when the shape changes.
    pub fn new(p: &nn::Path<'_>, c_in: i64, planes: i64, stride: i64) -> Self {
        BasicBlock {
            conv1: conv2d(p / "conv1", c_in, planes, ConvSpec::square(3, stride, 1)),
            bn1: batch_norm(p / "bn1", planes, BN_EPS),
            conv2: conv2d(p / "conv2", planes, planes, ConvSpec::square(3, 1, 1)),
            bn2: batch_norm(p / "bn2", planes, BN_EPS),
            downsample: (stride != 1 || c_in != planes)
                .then(|| Downsample::new(p, c_in, planes, stride)),
        }
    }
}

impl ModuleT for BasicBlock {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, planes, H/stride, W/stride]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&self.conv1.forward(xs), train).relu_();
        let out = self.bn2.forward_t(&self.conv2.forward(&out), train);
        let identity = match &self.downsample {
            Some(d) => d.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        (out + identity).relu_()
    }
}

/// torchvision `Bottleneck` (stride on the 3x3 conv).
#[derive(Debug)]
pub struct Bottleneck {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Conv2d,
    bn3: BatchNorm,
    downsample: Option<Downsample>,
}

impl Bottleneck {
    /// A block `c_in -> 4 * planes`, strided by `stride`.
    pub fn new(p: &nn::Path<'_>, c_in: i64, planes: i64, stride: i64) -> Self {
        let out = planes * 4;
        Bottleneck {
            conv1: conv2d(p / "conv1", c_in, planes, ConvSpec::square(1, 1, 0)),
            bn1: batch_norm(p / "bn1", planes, BN_EPS),
            conv2: conv2d(p / "conv2", planes, planes, ConvSpec::square(3, stride, 1)),
            bn2: batch_norm(p / "bn2", planes, BN_EPS),
            conv3: conv2d(p / "conv3", planes, out, ConvSpec::square(1, 1, 0)),
            bn3: batch_norm(p / "bn3", out, BN_EPS),
            downsample: (stride != 1 || c_in != out).then(|| Downsample::new(p, c_in, out, stride)),
        }
    }
}

impl ModuleT for Bottleneck {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, 4 planes, H/stride, W/stride]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let out = self.bn1.forward_t(&self.conv1.forward(xs), train).relu_();
        let out = self.bn2.forward_t(&self.conv2.forward(&out), train).relu_();
        let out = self.bn3.forward_t(&self.conv3.forward(&out), train);
        let identity = match &self.downsample {
            Some(d) => d.forward_t(xs, train),
            None => xs.shallow_clone(),
        };
        (out + identity).relu_()
    }
}

/// One residual block of either kind.
#[derive(Debug)]
pub enum Block {
    /// A [`BasicBlock`].
    Basic(BasicBlock),
    /// A [`Bottleneck`].
    Bottleneck(Bottleneck),
}

impl ModuleT for Block {
    /// # Shapes
    /// - see [`BasicBlock`] and [`Bottleneck`].
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Block::Basic(b) => b.forward_t(xs, train),
            Block::Bottleneck(b) => b.forward_t(xs, train),
        }
    }
}

/// A ResNet stage (`layerN`): blocks named `0`, `1`, ... under its path.
#[derive(Debug)]
pub struct ResLayer {
    blocks: Vec<Block>,
    out_channels: i64,
}

impl ResLayer {
    /// `n_blocks` blocks of `kind`, `c_in -> planes * expansion`, the first strided by `stride`.
    pub fn new(
        p: &nn::Path<'_>,
        kind: BlockKind,
        c_in: i64,
        planes: i64,
        n_blocks: usize,
        stride: i64,
    ) -> Self {
        let mut blocks = Vec::with_capacity(n_blocks);
        let mut c = c_in;
        for i in 0..n_blocks {
            let s = if i == 0 { stride } else { 1 };
            let q = p / i;
            blocks.push(match kind {
                BlockKind::Basic => Block::Basic(BasicBlock::new(&q, c, planes, s)),
                BlockKind::Bottleneck => Block::Bottleneck(Bottleneck::new(&q, c, planes, s)),
            });
            c = planes * kind.expansion();
        }
        ResLayer { blocks, out_channels: c }
    }

    /// Channels of the output.
    pub fn out_channels(&self) -> i64 {
        self.out_channels
    }
}

impl ModuleT for ResLayer {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, C_out, H/stride, W/stride]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for b in &self.blocks {
            x = b.forward_t(&x, train);
        }
        x
    }
}

/// Configuration of a torchvision-style [`ResNetEncoder`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResNetConfig {
    /// Block type.
    pub block: BlockKind,
    /// Blocks per stage (`[2,2,2,2]` R18, `[3,4,6,3]` R34 and R50).
    pub layers: [usize; 4],
    /// Input channels of the stem (3 RGB, 1 depth).
    pub in_channels: i64,
    /// Stem / layer1 planes (64); stage `i` has `width * 2^i` planes.
    pub width: i64,
}

impl ResNetConfig {
    /// ResNet34 (BasicBlock `[3,4,6,3]`).
    pub fn resnet34(in_channels: i64) -> Self {
        ResNetConfig { block: BlockKind::Basic, layers: [3, 4, 6, 3], in_channels, width: 64 }
    }

    /// ResNet50 (Bottleneck `[3,4,6,3]`).
    pub fn resnet50(in_channels: i64) -> Self {
        ResNetConfig { block: BlockKind::Bottleneck, layers: [3, 4, 6, 3], in_channels, width: 64 }
    }

    /// ResNet18 (BasicBlock `[2,2,2,2]`).
    pub fn resnet18(in_channels: i64) -> Self {
        ResNetConfig { block: BlockKind::Basic, layers: [2, 2, 2, 2], in_channels, width: 64 }
    }

    /// Output channels of the stem and of layer1..layer4.
    pub fn channels(&self) -> [i64; 5] {
        let e = self.block.expansion();
        let w = self.width;
        [w, w * e, 2 * w * e, 4 * w * e, 8 * w * e]
    }
}

/// A torchvision ResNet without `fc`: `conv1` 7x7/2, `bn1`, ReLU, (max-pool), `layer1..4`.
/// Stages are exposed separately because ESANet fuses between them.
#[derive(Debug)]
pub struct ResNetEncoder {
    conv1: Conv2d,
    bn1: BatchNorm,
    layers: Vec<ResLayer>,
    cfg: ResNetConfig,
}

impl ResNetEncoder {
    /// An encoder under `p` (names `conv1`, `bn1`, `layer1`, ...).
    pub fn new(p: &nn::Path<'_>, cfg: &ResNetConfig) -> Self {
        let w = cfg.width;
        let mut layers = Vec::with_capacity(4);
        let mut c = w;
        for (i, &n) in cfg.layers.iter().enumerate() {
            let planes = w << i;
            let stride = if i == 0 { 1 } else { 2 };
            let l =
                ResLayer::new(&(p / format!("layer{}", i + 1)), cfg.block, c, planes, n, stride);
            c = l.out_channels();
            layers.push(l);
        }
        ResNetEncoder {
            conv1: conv2d(p / "conv1", cfg.in_channels, w, ConvSpec::square(7, 2, 3)),
            bn1: batch_norm(p / "bn1", w, BN_EPS),
            layers,
            cfg: cfg.clone(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ResNetConfig {
        &self.cfg
    }

    /// conv1 -> bn1 -> ReLU (no max-pool).
    ///
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, w, H/2, W/2]`.
    pub fn forward_first_conv(&self, xs: &Tensor, train: bool) -> Tensor {
        self.bn1.forward_t(&self.conv1.forward(xs), train).relu_()
    }

    /// Stage `layer{i+1}` for `i` in 0..4.
    ///
    /// # Shapes
    /// - `xs`: `[B, C_i, H, W]` -> `[B, channels()[i+1], H/s, W/s]` (s = 1 for layer1, else 2).
    pub fn forward_layer(&self, i: usize, xs: &Tensor, train: bool) -> Tensor {
        self.layers[i].forward_t(xs, train)
    }
}

impl ModuleT for ResNetEncoder {
    /// The whole encoder (stem, max-pool, four stages).
    ///
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, channels()[4], H/32, W/32]`.
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x =
            self.forward_first_conv(xs, train).max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        for l in &self.layers {
            x = l.forward_t(&x, train);
        }
        x
    }
}
