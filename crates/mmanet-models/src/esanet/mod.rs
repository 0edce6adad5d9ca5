//! ESANet for RGB-D segmentation (docs/method.md §3.2), with MMANet's per-sample masks at the five
//! SE-add fusion points and the student's regularization decoder `auxi_decoder`.
//!
//! Parameter names follow TUI-NICR/ESANet `src/models/model.py` (best effort, written from the
//! method notes (docs/method.md) and the ESANet code layout; not checked against a converted checkpoint):
//! `encoder_rgb.*` / `encoder_depth.*` (torchvision ResNet: `conv1`, `bn1`, `layer1..4`),
//! `se_layer{0..4}.se_{rgb,depth}.fc.{0,2}`, `skip_layer{1,2,3}.0.{conv,bn}` (absent when the
//! channels already match), `context_module.features.<i>.1.{conv,bn}`,
//! `context_module.final_conv.{conv,bn}`, `decoder.decoder_module_{1,2,3}.*`,
//! `decoder.conv_out`, `decoder.upsample{1,2}.conv`, and for the student `auxi_decoder.*`.
//!
//! Not implemented: Cityscapes' adaptive PPM (`appm-1-2-4-8`) and `--he_init`; the student
//! always evaluates `auxi_decoder` (the official code skips it when no depth-only sample is
//! in the batch; the MAR loss selects the weak samples anyway).

pub mod blocks;
pub mod context;
pub mod decoder;

use std::path::PathBuf;

use mmanet_core::ModalitySet;
use serde::{Deserialize, Serialize};
use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

use crate::checkpoint::{LoadReport, load_torchvision_resnet};
use crate::generic::NetRole;
use crate::layers::in_branch;
use crate::net::{MultiModalNet, NetOutput, check_inputs, mask_column};
use crate::resnet::{BlockKind, ResNetConfig, ResNetEncoder};
use crate::{ModelError, Result};
use blocks::{ConvBnAct, SeFusionAdd, UpsamplePad};
use context::PyramidPoolingModule;
use decoder::{Decoder, DecoderOutput};

/// Configuration of [`EsaNet`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsaNetConfig {
    /// Encoder of both streams (its `in_channels` is the RGB stem's).
    pub encoder: ResNetConfig,
    /// Input channels of the depth stem (1).
    pub depth_channels: i64,
    /// Number of classes (NYUv2 40, Cityscapes 19).
    pub n_classes: i64,
    /// Decoder widths `[512, 256, 128]`; the context module outputs `decoder_channels[0]`.
    pub decoder_channels: [i64; 3],
    /// NBt1D blocks per decoder module (3).
    pub decoder_blocks: usize,
    /// PPM bins (`[1, 5]`).
    pub context_bins: Vec<i64>,
    /// SE reduction in the fusion (16).
    pub se_reduction: i64,
    /// Learned upsampling padding (`Zero` as in MMANet).
    pub upsample_pad: UpsamplePad,
    /// ImageNet weights for the two encoders, loaded when a run starts (the released code
    /// loads torchvision's ImageNet ResNet by default, `src/args.py`
    /// `--pretrained_on_imagenet`); unset: both encoders start from random weights.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pretrained: Option<EsaNetPretrained>,
}

/// Torchvision-named ResNet weights for each encoder of an [`EsaNet`], one safetensors file
/// each (it may be the same file): `conv1.weight`, `bn1.*`, `layer1..4.*` as torchvision's
/// `resnet34`/`resnet50` `state_dict` names them (`fc.*` is ignored). `scripts/torchvision_to_safetensors.py`
/// converts a torchvision `.pth`. Relative paths are relative to the config file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EsaNetPretrained {
    /// The RGB encoder's weights (stem `conv1.weight` `[w, 3, 7, 7]`).
    pub rgb: PathBuf,
    /// The depth encoder's weights: a 3-channel stem `[w, 3, 7, 7]` is summed over its input
    /// channels into the 1-channel depth stem `[w, 1, 7, 7]`, as the released `ResNet50(...,
    /// input_channels=1)` does (`torch.sum(weights['conv1.weight'], axis=1, keepdim=True)`).
    pub depth: PathBuf,
}

impl EsaNetPretrained {
    /// Loads both files into the encoders of an [`EsaNet`] built on `vs.root()`
    /// (`encoder_rgb.*`, `encoder_depth.*`); every encoder variable but `num_batches_tracked`
    /// must be in its file ([`ModelError::NameMismatch`] otherwise). Returns the RGB and the
    /// depth load reports.
    pub fn load(&self, vs: &nn::VarStore) -> Result<[LoadReport; 2]> {
        Ok([
            load_torchvision_resnet(vs, "encoder_rgb.", &self.rgb)?,
            load_torchvision_resnet(vs, "encoder_depth.", &self.depth)?,
        ])
    }

    /// Both paths, for resolving them against a folder.
    pub fn paths_mut(&mut self) -> [&mut PathBuf; 2] {
        [&mut self.rgb, &mut self.depth]
    }
}

impl EsaNetConfig {
    /// A tiny ESANet (one block per stage, 8 planes, 5 classes) that runs at 64x64 on a CPU in
    /// milliseconds: for tests and examples, not for training.
    pub fn tiny(block: BlockKind) -> Self {
        EsaNetConfig {
            encoder: ResNetConfig { block, layers: [1, 1, 1, 1], in_channels: 3, width: 8 },
            depth_channels: 1,
            n_classes: 5,
            decoder_channels: [32, 16, 8],
            decoder_blocks: 1,
            context_bins: vec![1, 5],
            se_reduction: 4,
            upsample_pad: UpsamplePad::Zero,
            pretrained: None,
        }
    }

    /// NYUv2 as MMANet trains it: two ResNet50 encoders, 40 classes, PPM (1, 5).
    pub fn nyuv2() -> Self {
        EsaNetConfig {
            encoder: ResNetConfig::resnet50(3),
            depth_channels: 1,
            n_classes: 40,
            decoder_channels: [512, 256, 128],
            decoder_blocks: 3,
            context_bins: vec![1, 5],
            se_reduction: 16,
            upsample_pad: UpsamplePad::Zero,
            pretrained: None,
        }
    }

    /// NYUv2 with ResNet34 (BasicBlock) encoders.
    pub fn nyuv2_r34() -> Self {
        EsaNetConfig { encoder: ResNetConfig::resnet34(3), ..Self::nyuv2() }
    }

    /// [`crate::NetConfig::sizes`] (every field named, so a new one needs a decision here).
    pub fn sizes(&self) -> Vec<(String, i64)> {
        let EsaNetConfig {
            encoder: ResNetConfig { block: _, layers, in_channels, width },
            depth_channels,
            n_classes,
            decoder_channels,
            decoder_blocks,
            context_bins,
            se_reduction,
            upsample_pad: _,
            pretrained: _,
        } = self;
        let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        let mut out: Vec<(String, i64)> = layers
            .iter()
            .enumerate()
            .map(|(k, &n)| (format!("encoder.layers[{k}]"), count(n)))
            .collect();
        out.push(("encoder.in_channels".into(), *in_channels));
        out.push(("encoder.width".into(), *width));
        out.push(("depth_channels".into(), *depth_channels));
        out.push(("n_classes".into(), *n_classes));
        out.extend(
            decoder_channels
                .iter()
                .enumerate()
                .map(|(k, &c)| (format!("decoder_channels[{k}]"), c)),
        );
        out.push(("decoder_blocks".into(), count(*decoder_blocks)));
        out.extend(
            context_bins.iter().enumerate().map(|(k, &b)| (format!("context_bins[{k}]"), b)),
        );
        out.push(("se_reduction".into(), *se_reduction));
        out
    }

    /// Checks sizes.
    pub fn check(&self) -> Result<()> {
        if self.n_classes < 1
            || self.depth_channels < 1
            || self.encoder.in_channels < 1
            || self.encoder.width < 1
            || self.se_reduction < 1
            || self.context_bins.is_empty()
            || self.context_bins.iter().any(|&b| b < 1)
            || self.decoder_channels.iter().any(|&c| c < 1)
        {
            return Err(ModelError::Config(format!("invalid ESANet config {self:?}")));
        }
        Ok(())
    }
}

/// Skip projection: `ConvBNAct 1x1` when the channels differ, identity otherwise.
#[derive(Debug)]
struct Skip(Option<ConvBnAct>);

impl Skip {
    fn new(p: &nn::Path<'_>, c_in: i64, c_out: i64) -> Self {
        Skip((c_in != c_out).then(|| ConvBnAct::new(&(p / "0"), c_in, c_out, 1)))
    }

    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        match &self.0 {
            Some(c) => c.forward_t(x, train),
            None => x.shallow_clone(),
        }
    }
}

/// Everything an ESANet forward computes.
#[derive(Debug)]
pub struct EsaOutput {
    /// Main decoder.
    pub main: DecoderOutput,
    /// `fuse_cache`: context output (/32), skip3 (/16), skip2 (/8), skip1 (/4).
    pub fuse_cache: Vec<Tensor>,
    /// The regularization decoder's outputs (students).
    pub aux: Option<DecoderOutput>,
}

/// ESANet teacher, deployment net or student (with `auxi_decoder`), per [`NetRole`].
#[derive(Debug)]
pub struct EsaNet {
    cfg: EsaNetConfig,
    role: NetRole,
    modalities: ModalitySet,
    encoder_rgb: ResNetEncoder,
    encoder_depth: ResNetEncoder,
    se_layers: Vec<SeFusionAdd>,
    skips: Vec<Skip>,
    context_module: PyramidPoolingModule,
    decoder: Decoder,
    auxi_decoder: Option<Decoder>,
}

impl EsaNet {
    /// Built on `p` itself; inputs are (RGB `[B, 3, H, W]`, depth `[B, 1, H, W]`).
    pub fn new(p: &nn::Path<'_>, cfg: &EsaNetConfig, role: NetRole) -> Result<Self> {
        cfg.check()?;
        let enc = &cfg.encoder;
        let depth_cfg = ResNetConfig { in_channels: cfg.depth_channels, ..enc.clone() };
        let ch = enc.channels(); // stem, layer1..4
        let se_layers = (0..5)
            .map(|i| SeFusionAdd::new(&(p / format!("se_layer{i}")), ch[i], cfg.se_reduction))
            .collect();
        let dc = cfg.decoder_channels;
        let skips = vec![
            Skip::new(&(p / "skip_layer1"), ch[1], dc[2]),
            Skip::new(&(p / "skip_layer2"), ch[2], dc[1]),
            Skip::new(&(p / "skip_layer3"), ch[3], dc[0]),
        ];
        let decoder = |name: &str| {
            Decoder::new(
                &(p / name),
                dc[0],
                dc,
                cfg.decoder_blocks,
                cfg.n_classes,
                cfg.upsample_pad,
            )
        };
        Ok(EsaNet {
            cfg: cfg.clone(),
            role,
            modalities: ModalitySet::from_names(["rgb", "depth"]).expect("valid set"),
            encoder_rgb: ResNetEncoder::new(&(p / "encoder_rgb"), enc),
            encoder_depth: ResNetEncoder::new(&(p / "encoder_depth"), &depth_cfg),
            se_layers,
            skips,
            context_module: PyramidPoolingModule::new(
                &(p / "context_module"),
                ch[4],
                dc[0],
                &cfg.context_bins,
            ),
            decoder: decoder("decoder"),
            auxi_decoder: (role == NetRole::Student).then(|| decoder("auxi_decoder")),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &EsaNetConfig {
        &self.cfg
    }

    /// Full forward. Teachers use an all-ones mask. Under an installed availability
    /// ([`crate::layers::with_availability`]) the training-mode BatchNorms of RGB's stem use
    /// the rows that have RGB only, and those of the whole depth encoder the rows that have
    /// depth; the RGB stages after the first fusion carry fused maps and use every row.
    ///
    /// # Shapes
    /// - `inputs = [rgb [B, 3, H, W], depth [B, 1, H, W]]`, H and W multiples of 32;
    ///   `mask`: `[B, 2]` (RGB, depth).
    /// - main logits `[B, K, H, W]`; fuse cache `[B, c0, H/32, W/32]`, `[B, c0, H/16, W/16]`,
    ///   `[B, c1, H/8, W/8]`, `[B, c2, H/4, W/4]`.
    pub fn f_forward_seg(
        &self,
        inputs: &[Tensor],
        mask: &Tensor,
        train: bool,
    ) -> Result<EsaOutput> {
        let b = check_inputs(inputs, mask, 2)?;
        let (h, w) = (inputs[0].size()[2], inputs[0].size()[3]);
        if h % 32 != 0 || w % 32 != 0 || inputs[1].size()[2..] != inputs[0].size()[2..] {
            return Err(ModelError::Inputs(format!(
                "RGB {:?} and depth {:?} must share H, W (multiples of 32)",
                inputs[0].size(),
                inputs[1].size()
            )));
        }
        let mask = match self.role {
            NetRole::Teacher => Tensor::ones([b, 2], (Kind::Float, inputs[0].device())),
            _ => mask.shallow_clone(),
        };
        let like = &inputs[0];
        let (p_rgb, p_depth) = (mask_column(&mask, 0, 4, like), mask_column(&mask, 1, 4, like));
        let (er, ed) = (&self.encoder_rgb, &self.encoder_depth);

        // The branches of the BatchNorm rule (`layers`): RGB's stem (conv1, bn1) is the only
        // part of `encoder_rgb` whose input is RGB alone (its stages take the fused maps); the
        // depth stream never receives RGB, so all of `encoder_depth` is the depth branch.
        let rgb = in_branch(0, || er.forward_first_conv(&inputs[0], train)); // [B, w, H/2, W/2]
        let mut depth = in_branch(1, || ed.forward_first_conv(&inputs[1], train));
        let fuse = self.se_layers[0].forward(&rgb, &depth, &p_rgb, &p_depth);
        let mut rgb = fuse.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false); // /4
        depth = depth.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        let mut skips = Vec::with_capacity(3);
        let mut fuse = rgb.shallow_clone();
        for i in 0..4 {
            rgb = er.forward_layer(i, &rgb, train);
            depth = in_branch(1, || ed.forward_layer(i, &depth, train));
            fuse = self.se_layers[i + 1].forward(&rgb, &depth, &p_rgb, &p_depth);
            if i < 3 {
                skips.push(self.skips[i].forward_t(&fuse, train)); // skip1 /4, skip2 /8, skip3 /16
            }
            rgb = fuse.shallow_clone(); // the RGB stream continues from the fused map
        }
        let context = self.context_module.forward_t(&fuse, train); // [B, c0, H/32, W/32]
        let ordered = [&skips[2], &skips[1], &skips[0]];
        let main = self.decoder.forward_t(&context, ordered, train);
        let aux = self.auxi_decoder.as_ref().map(|d| d.forward_t(&context, ordered, train));
        let fuse_cache = vec![
            context,
            skips[2].shallow_clone(),
            skips[1].shallow_clone(),
            skips[0].shallow_clone(),
        ];
        Ok(EsaOutput { main, fuse_cache, aux })
    }
}

impl MultiModalNet for EsaNet {
    /// `features` = the fuse cache (context /32, skip3 /16, skip2 /8, skip1 /4) followed by the
    /// main decoder's stage features (/16, /8, /4); `side_logits` = /8, /16, /32 in train mode;
    /// `aux_logits` = `auxi_decoder`'s full-resolution logits and `aux_side_logits` its side
    /// outputs (/8, /16, /32, train mode), the four outputs segmentation MAR is summed over.
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> NetOutput {
        let out = self.f_forward_seg(inputs, mask, train).expect("EsaNet inputs");
        let mut features = out.fuse_cache;
        features.extend(out.main.features);
        let (aux_logits, aux_side_logits) = match out.aux {
            Some(a) => (Some(a.logits), a.side_logits),
            None => (None, Vec::new()),
        };
        NetOutput {
            logits: out.main.logits,
            features,
            aux_logits,
            side_logits: out.main.side_logits,
            aux_side_logits,
        }
    }

    fn modalities(&self) -> &ModalitySet {
        &self.modalities
    }
}
