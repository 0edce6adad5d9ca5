//! ESANet `Decoder`: three `DecoderModule`s (`decoder_module_{1,2,3}`), `conv_out`, and two
//! learned x2 upsamplings (`upsample1`, `upsample2`).
//!
//! DecoderModule names: `conv3x3.{conv,bn}`, `decoder_blocks.<i>.*` (NBt1D), `side_output`
//! (1x1 conv to classes, bias), `upsample.conv`.

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use super::blocks::{ConvBnAct, LearnedUpsample, NonBottleneck1D, UpsamplePad};
use crate::layers::{Conv2d, ConvInit, ConvSpec, conv2d};

/// One decoder stage.
#[derive(Debug)]
pub struct DecoderModule {
    conv3x3: ConvBnAct,
    blocks: Vec<NonBottleneck1D>,
    side_output: Conv2d,
    upsample: LearnedUpsample,
}

impl DecoderModule {
    /// `c_in -> c_out`, `n_blocks` NBt1D blocks, side output to `n_classes`.
    pub fn new(
        p: &nn::Path<'_>,
        c_in: i64,
        c_out: i64,
        n_blocks: usize,
        n_classes: i64,
        pad: UpsamplePad,
    ) -> Self {
        let b = p / "decoder_blocks";
        let side =
            ConvSpec { bias: true, init: ConvInit::TorchDefault, ..ConvSpec::square(1, 1, 0) };
        DecoderModule {
            conv3x3: ConvBnAct::new(&(p / "conv3x3"), c_in, c_out, 3),
            blocks: (0..n_blocks).map(|i| NonBottleneck1D::new(&(&b / i), c_out)).collect(),
            side_output: conv2d(p / "side_output", c_out, n_classes, side),
            upsample: LearnedUpsample::new(&(p / "upsample"), c_out, pad),
        }
    }

    /// Returns (`upsample(blocks(conv3x3(x))) + skip`, side output in train mode).
    ///
    /// # Shapes
    /// - `x`: `[B, C_in, h, w]`; `skip`: `[B, C_out, 2h, 2w]` -> `[B, C_out, 2h, 2w]`,
    ///   side `[B, K, h, w]`.
    pub fn forward_t(&self, x: &Tensor, skip: &Tensor, train: bool) -> (Tensor, Option<Tensor>) {
        let mut o = self.conv3x3.forward_t(x, train);
        for b in &self.blocks {
            o = b.forward_t(&o, train);
        }
        let side = train.then(|| self.side_output.forward(&o));
        (self.upsample.forward(&o) + skip, side)
    }
}

/// Decoder outputs.
#[derive(Debug)]
pub struct DecoderOutput {
    /// Full-resolution logits `[B, K, H, W]`.
    pub logits: Tensor,
    /// Side logits at /8, /16, /32 (train mode only).
    pub side_logits: Vec<Tensor>,
    /// Stage outputs after upsampling + skip: `feat_32` (/16), `feat_16` (/8), `feat_8` (/4).
    /// `features[0]` is the official `out_down_32_feature` (index 6 of the train-mode tuple).
    pub features: Vec<Tensor>,
}

/// The ESANet decoder.
#[derive(Debug)]
pub struct Decoder {
    modules: Vec<DecoderModule>,
    conv_out: Conv2d,
    upsample1: LearnedUpsample,
    upsample2: LearnedUpsample,
}

impl Decoder {
    /// `c_in` (context output) -> channels `[c0, c1, c2]` -> `n_classes`.
    pub fn new(
        p: &nn::Path<'_>,
        c_in: i64,
        channels: [i64; 3],
        n_blocks: usize,
        n_classes: i64,
        pad: UpsamplePad,
    ) -> Self {
        let ins = [c_in, channels[0], channels[1]];
        let modules = (0..3)
            .map(|i| {
                DecoderModule::new(
                    &(p / format!("decoder_module_{}", i + 1)),
                    ins[i],
                    channels[i],
                    n_blocks,
                    n_classes,
                    pad,
                )
            })
            .collect();
        let out =
            ConvSpec { bias: true, init: ConvInit::TorchDefault, ..ConvSpec::square(3, 1, 1) };
        Decoder {
            modules,
            conv_out: conv2d(p / "conv_out", channels[2], n_classes, out),
            upsample1: LearnedUpsample::new(&(p / "upsample1"), n_classes, pad),
            upsample2: LearnedUpsample::new(&(p / "upsample2"), n_classes, pad),
        }
    }

    /// # Shapes
    /// - `context`: `[B, c_in, H/32, W/32]`; `skips = [skip3 /16 (c0), skip2 /8 (c1), skip1 /4 (c2)]`.
    /// - logits `[B, K, H, W]`.
    pub fn forward_t(&self, context: &Tensor, skips: [&Tensor; 3], train: bool) -> DecoderOutput {
        let mut x = context.shallow_clone();
        let mut sides = Vec::new();
        let mut features = Vec::new();
        for (m, skip) in self.modules.iter().zip(skips) {
            let (o, side) = m.forward_t(&x, skip, train);
            features.push(o.shallow_clone());
            sides.extend(side);
            x = o;
        }
        sides.reverse(); // computed /32, /16, /8 -> stored /8, /16, /32
        let logits = self.upsample2.forward(&self.upsample1.forward(&self.conv_out.forward(&x)));
        DecoderOutput { logits, side_logits: sides, features }
    }
}
