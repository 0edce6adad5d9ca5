//! CASIA-SURF / CeFA classification networks (official `SURF_Multi`, `SURF_MMANet`, `SURF_MV`):
//! per-modality ResNet18-SE branches, feature-level masking, fusion, a shared ResNet trunk and,
//! for the student, the regularization head `auxi_bone`.
//!
//! Parameter names (X = `special_bone_<modality name>`, e.g. `special_bone_rgb`):
//! `X.0` conv1 3x3/2, `X.1` bn1, `X.4` layer1, `X.5` layer2, `X.6.fc.{0,2}` SE;
//! `shared_bone.{0,1,4}` = layer3, layer4, fc; `auxi_bone.{0,1,4}` the same for R.

use mmanet_core::{Fidelity, ModalitySet};
use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::hemis::mean_var_fusion;
use crate::layers::{BN_EPS, BatchNorm, Conv2d, ConvSpec, batch_norm, conv2d, in_branch, linear};
use crate::net::{MultiModalNet, NetOutput, check_inputs, mask_column};
use crate::resnet::{BlockKind, ResLayer};
use crate::se::SeLayer;
use crate::{ModelError, Result};

/// How the branch outputs are fused before the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", from = "ClsFusionRepr")]
pub enum ClsFusion {
    /// Channel concatenation in modality order (`SURF_Multi`, `SURF_MMANet`): `M * 2w` channels.
    Concat,
    /// Mean and variance over present modalities (`SURF_MV`, HeMIS): `2 * 2w` channels.
    MeanVar {
        /// Variance over present modalities only (paper) or with absent ones as zeros (code).
        fidelity: Fidelity,
    },
}

/// How [`ClsFusion`] is read: `Concat` as a struct variant, so that a key beside `kind =
/// "concat"` is refused (serde ignores extra keys of an internally tagged unit variant).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
enum ClsFusionRepr {
    Concat {},
    MeanVar { fidelity: Fidelity },
}

impl From<ClsFusionRepr> for ClsFusion {
    fn from(r: ClsFusionRepr) -> Self {
        match r {
            ClsFusionRepr::Concat {} => ClsFusion::Concat,
            ClsFusionRepr::MeanVar { fidelity } => ClsFusion::MeanVar { fidelity },
        }
    }
}

/// Configuration of the classification networks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClsNetConfig {
    /// Modalities, one branch each, in input and fusion order.
    pub modalities: ModalitySet,
    /// Input channels of every branch (3 for CASIA-SURF: depth and IR are read as 3-channel).
    pub in_channels: i64,
    /// Number of classes (2: attack / bona fide).
    pub n_classes: i64,
    /// Base width `w` (64): branch layers `w`, `2w`; trunk `4w`, `8w`.
    pub base_width: i64,
    /// SE reduction (16): SE hidden width `2w / r`.
    pub se_reduction: i64,
    /// Fusion of the branch outputs.
    pub fusion: ClsFusion,
}

impl ClsNetConfig {
    /// The CASIA-SURF networks: R, D, I; 3-channel inputs; 2 classes; width 64; SE 16; concat.
    pub fn surf() -> Self {
        ClsNetConfig {
            modalities: ModalitySet::from_names(["rgb", "depth", "ir"]).expect("valid set"),
            in_channels: 3,
            n_classes: 2,
            base_width: 64,
            se_reduction: 16,
            fusion: ClsFusion::Concat,
        }
    }

    /// CeFA: the same architecture as [`ClsNetConfig::surf`].
    pub fn cefa() -> Self {
        Self::surf()
    }

    /// The same config with base width `w` (small test nets).
    pub fn with_width(mut self, w: i64) -> Self {
        self.base_width = w;
        self
    }

    /// Channels of one branch's output (`2w`).
    pub fn branch_channels(&self) -> i64 {
        2 * self.base_width
    }

    /// Channels of the fused tensor fed to the trunk (384 for SURF concat).
    pub fn fused_channels(&self) -> i64 {
        match self.fusion {
            ClsFusion::Concat => self.modalities.len() as i64 * self.branch_channels(),
            ClsFusion::MeanVar { .. } => 2 * self.branch_channels(),
        }
    }

    /// [`crate::NetConfig::sizes`] (every field named, so a new one needs a decision here).
    pub fn sizes(&self) -> Vec<(String, i64)> {
        let ClsNetConfig {
            modalities: _,
            in_channels,
            n_classes,
            base_width,
            se_reduction,
            fusion: _,
        } = self;
        [
            ("in_channels", *in_channels),
            ("n_classes", *n_classes),
            ("base_width", *base_width),
            ("se_reduction", *se_reduction),
        ]
        .into_iter()
        .map(|(name, v)| (name.to_string(), v))
        .collect()
    }

    /// Rejects non-positive sizes.
    pub fn check(&self) -> Result<()> {
        if self.in_channels < 1
            || self.n_classes < 1
            || self.base_width < 1
            || self.se_reduction < 1
        {
            return Err(ModelError::Config(format!("sizes must be positive: {self:?}")));
        }
        Ok(())
    }
}

/// One modality branch: conv1 -> bn1 -> relu -> maxpool -> layer1 -> layer2 -> SE.
#[derive(Debug)]
pub struct ClsBranch {
    conv1: Conv2d,
    bn1: BatchNorm,
    layer1: ResLayer,
    layer2: ResLayer,
    se: SeLayer,
}

impl ClsBranch {
    /// A branch under `p` (e.g. `special_bone_rgb`), Sequential indices 0, 1, 4, 5, 6.
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        let w = cfg.base_width;
        ClsBranch {
            conv1: conv2d(p / "0", cfg.in_channels, w, ConvSpec::square(3, 2, 1)),
            bn1: batch_norm(p / "1", w, BN_EPS),
            layer1: ResLayer::new(&(p / "4"), BlockKind::Basic, w, w, 2, 1),
            layer2: ResLayer::new(&(p / "5"), BlockKind::Basic, w, 2 * w, 2, 2),
            se: SeLayer::new(&(p / "6"), 2 * w, cfg.se_reduction),
        }
    }
}

impl ModuleT for ClsBranch {
    /// # Shapes
    /// - `xs`: `[B, C_in, H, W]` -> `[B, 2w, H/8, W/8]` (112 -> 14).
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let x = self.bn1.forward_t(&self.conv1.forward(xs), train).relu_(); // [B, w, H/2, W/2]
        let x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false); // [B, w, H/4, W/4]
        let x = self.layer1.forward_t(&x, train);
        let x = self.layer2.forward_t(&x, train); // [B, 2w, H/8, W/8]
        self.se.forward(&x)
    }
}

/// The per-modality branches and the fusion: produces the trunk's input.
#[derive(Debug)]
pub struct ClsEncoder {
    branches: Vec<ClsBranch>,
    fusion: ClsFusion,
}

impl ClsEncoder {
    /// Branches under `p / "special_bone_<name>"` for each modality.
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        let branches = cfg
            .modalities
            .modalities()
            .iter()
            .map(|m| ClsBranch::new(&(p / format!("special_bone_{}", m.name())), cfg))
            .collect();
        ClsEncoder { branches, fusion: cfg.fusion }
    }

    /// Runs every branch and fuses; `mask = None` means all present (teacher). Branch `m` runs
    /// inside [`in_branch`]`(m, ..)`, so under an installed availability its training-mode
    /// BatchNorms use the rows that have modality `m` only.
    ///
    /// # Shapes
    /// - `inputs[m]`: `[B, C_in, H, W]`; `mask`: `[B, M]`.
    /// - returns `[B, C_fused, H/8, W/8]`.
    pub fn forward_t(&self, inputs: &[Tensor], mask: Option<&Tensor>, train: bool) -> Tensor {
        // Each `special_bone_*` is modality m's branch (the BatchNorm rule, `layers`).
        let feats: Vec<Tensor> = self
            .branches
            .iter()
            .zip(inputs)
            .enumerate()
            .map(|(m, (b, x))| in_branch(m, || b.forward_t(x, train))) // [B, 2w, H/8, W/8]
            .collect();
        match (self.fusion, mask) {
            (ClsFusion::Concat, None) => Tensor::cat(&feats, 1),
            (ClsFusion::Concat, Some(mask)) => {
                let masked: Vec<Tensor> = feats
                    .iter()
                    .enumerate()
                    .map(|(m, x)| x * mask_column(mask, m, 4, x)) // [B, 2w, h, w]
                    .collect();
                Tensor::cat(&masked, 1)
            }
            (ClsFusion::MeanVar { fidelity }, mask) => {
                let ones;
                let mask = match mask {
                    Some(m) => m,
                    None => {
                        let b = feats[0].size()[0];
                        ones = Tensor::ones(
                            [b, feats.len() as i64],
                            (tch::Kind::Float, feats[0].device()),
                        );
                        &ones
                    }
                };
                mean_var_fusion(&feats, mask, fidelity)
            }
        }
    }
}

/// Output of a [`ClsTrunk`].
#[derive(Debug)]
pub struct TrunkOutput {
    /// `[B, K]`.
    pub logits: Tensor,
    /// layer3 output `[B, 4w, h/2, w/2]`.
    pub layer3: Tensor,
    /// layer4 output `[B, 8w, h/4, w/4]`.
    pub layer4: Tensor,
}

/// `shared_bone` / `auxi_bone`: layer3 (`0`) -> layer4 (`1`) -> avgpool -> flatten -> fc (`4`).
/// The official `Dropout(0.5)` at index 5 is never applied and has no parameters.
#[derive(Debug)]
pub struct ClsTrunk {
    layer3: ResLayer,
    layer4: ResLayer,
    fc: nn::Linear,
}

impl ClsTrunk {
    /// A trunk under `p` taking the fused channels of `cfg`.
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        let w = cfg.base_width;
        ClsTrunk {
            layer3: ResLayer::new(&(p / "0"), BlockKind::Basic, cfg.fused_channels(), 4 * w, 2, 2),
            layer4: ResLayer::new(&(p / "1"), BlockKind::Basic, 4 * w, 8 * w, 2, 2),
            fc: linear(p / "4", 8 * w, cfg.n_classes),
        }
    }

    /// # Shapes
    /// - `x`: `[B, C_fused, h, w]` (14x14 for 112 inputs) -> logits `[B, K]`,
    ///   layer3 `[B, 4w, 7, 7]`, layer4 `[B, 8w, 4, 4]`.
    pub fn forward_t(&self, x: &Tensor, train: bool) -> TrunkOutput {
        let layer3 = self.layer3.forward_t(x, train);
        let layer4 = self.layer4.forward_t(&layer3, train);
        let pooled = layer4.adaptive_avg_pool2d([1, 1]).flatten(1, -1); // [B, 8w]
        TrunkOutput { logits: self.fc.forward(&pooled), layer3, layer4 }
    }
}

fn net_output(t: TrunkOutput, aux_logits: Option<Tensor>) -> NetOutput {
    NetOutput {
        logits: t.logits,
        features: vec![t.layer3, t.layer4],
        aux_logits,
        side_logits: Vec::new(),
        aux_side_logits: Vec::new(),
    }
}

/// The teacher T (`SURF_Multi`): branches + fusion + trunk, **no mask** (the mask argument of
/// [`MultiModalNet::forward_t`] is ignored).
///
/// It has exactly the variables of [`DeploymentNet`], so a teacher that must be trained with
/// modality dropout (CeFA's) can be trained as a `DeploymentNet` and loaded here.
#[derive(Debug)]
pub struct TeacherNet {
    cfg: ClsNetConfig,
    encoder: ClsEncoder,
    trunk: ClsTrunk,
}

impl TeacherNet {
    /// Built on `p` itself (names `special_bone_*`, `shared_bone.*`).
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        TeacherNet {
            cfg: cfg.clone(),
            encoder: ClsEncoder::new(p, cfg),
            trunk: ClsTrunk::new(&(p / "shared_bone"), cfg),
        }
    }

    /// Checked forward.
    ///
    /// # Shapes
    /// - `inputs[m]`: `[B, C_in, H, W]` -> logits `[B, K]`, features `[layer3, layer4]`.
    pub fn f_forward(&self, inputs: &[Tensor], train: bool) -> Result<NetOutput> {
        let m = self.cfg.modalities.len();
        let b = inputs.first().map(|x| x.size()[0]).unwrap_or(0);
        let dev = inputs.first().map(|x| x.device()).unwrap_or(tch::Device::Cpu);
        check_inputs(inputs, &Tensor::ones([b, m as i64], (tch::Kind::Float, dev)), m)?;
        let fused = self.encoder.forward_t(&inputs[..m], None, train);
        Ok(net_output(self.trunk.forward_t(&fused, train), None))
    }
}

impl MultiModalNet for TeacherNet {
    fn forward_t(&self, inputs: &[Tensor], _mask: &Tensor, train: bool) -> NetOutput {
        self.f_forward(inputs, train).expect("TeacherNet inputs")
    }

    fn modalities(&self) -> &ModalitySet {
        &self.cfg.modalities
    }
}

/// The deployment network S (`SURF_MMANet` without `auxi_bone`): branch outputs are masked per
/// sample before fusion.
#[derive(Debug)]
pub struct DeploymentNet {
    cfg: ClsNetConfig,
    encoder: ClsEncoder,
    trunk: ClsTrunk,
}

impl DeploymentNet {
    /// Built on `p` itself (names `special_bone_*`, `shared_bone.*`).
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        DeploymentNet {
            cfg: cfg.clone(),
            encoder: ClsEncoder::new(p, cfg),
            trunk: ClsTrunk::new(&(p / "shared_bone"), cfg),
        }
    }

    /// The masked, fused branch features: the input of both trunks.
    ///
    /// # Shapes
    /// - `inputs[m]`: `[B, C_in, H, W]`; `mask`: `[B, M]` -> `[B, C_fused, H/8, W/8]`.
    pub fn f_fused(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> Result<Tensor> {
        let m = self.cfg.modalities.len();
        check_inputs(inputs, mask, m)?;
        Ok(self.encoder.forward_t(&inputs[..m], Some(mask), train))
    }

    /// Checked forward.
    ///
    /// # Shapes
    /// - `inputs[m]`: `[B, C_in, H, W]`; `mask`: `[B, M]` -> logits `[B, K]`.
    pub fn f_forward(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> Result<NetOutput> {
        let fused = self.f_fused(inputs, mask, train)?;
        Ok(net_output(self.trunk.forward_t(&fused, train), None))
    }

    /// The configuration.
    pub fn config(&self) -> &ClsNetConfig {
        &self.cfg
    }
}

impl MultiModalNet for DeploymentNet {
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> NetOutput {
        self.f_forward(inputs, mask, train).expect("DeploymentNet inputs")
    }

    fn modalities(&self) -> &ModalitySet {
        &self.cfg.modalities
    }
}

/// The regularization network R: its own trunk (`auxi_bone`) on the student's fused tensor.
#[derive(Debug)]
pub struct RegularizationNet {
    trunk: ClsTrunk,
}

impl RegularizationNet {
    /// Built on `p` (the student passes `root / "auxi_bone"`).
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        RegularizationNet { trunk: ClsTrunk::new(p, cfg) }
    }

    /// # Shapes
    /// - `fused`: `[B, C_fused, h, w]` -> `[B, K]`.
    pub fn forward_t(&self, fused: &Tensor, train: bool) -> Tensor {
        self.trunk.forward_t(fused, train).logits
    }
}

/// The student: the deployment net plus R on the same fused tensor (computed once, R run once).
#[derive(Debug)]
pub struct StudentNet {
    deploy: DeploymentNet,
    reg: RegularizationNet,
}

impl StudentNet {
    /// The deployment net on `p` itself and R on `p / "auxi_bone"`.
    pub fn new(p: &nn::Path<'_>, cfg: &ClsNetConfig) -> Self {
        StudentNet {
            deploy: DeploymentNet::new(p, cfg),
            reg: RegularizationNet::new(&(p / "auxi_bone"), cfg),
        }
    }

    /// The deployment part.
    pub fn deployment(&self) -> &DeploymentNet {
        &self.deploy
    }

    /// The regularization network R.
    pub fn regularizer(&self) -> &RegularizationNet {
        &self.reg
    }

    /// Checked forward: logits, `[layer3, layer4]` and R's logits.
    ///
    /// # Shapes
    /// - `inputs[m]`: `[B, C_in, H, W]`; `mask`: `[B, M]` -> logits and aux logits `[B, K]`.
    pub fn f_forward(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> Result<NetOutput> {
        let fused = self.deploy.f_fused(inputs, mask, train)?;
        let aux = self.reg.forward_t(&fused, train);
        Ok(net_output(self.deploy.trunk.forward_t(&fused, train), Some(aux)))
    }
}

impl MultiModalNet for StudentNet {
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> NetOutput {
        self.f_forward(inputs, mask, train).expect("StudentNet inputs")
    }

    fn modalities(&self) -> &ModalitySet {
        &self.deploy.cfg.modalities
    }
}
