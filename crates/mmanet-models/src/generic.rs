//! Generic multimodal networks for the registry data sets: one small branch per modality
//! (MLP for vectors, CNN for small images, 1-D conv for sequences), the same per-sample
//! feature masking and fusion as the paper's nets, an MLP trunk and, for the student, an
//! `auxi_bone` copy of the trunk (R) on the same fused tensor. MAD and MAR work unchanged.
//!
//! Names: branch `m` under `special_bone_<modality name>`, trunk `shared_bone`, R `auxi_bone`;
//! trunk hidden layer `i` is `<trunk>.<i>.fc` (Linear) and `<trunk>.<i>.bn` (BatchNorm1d), the
//! classifier `<trunk>.out`.
//!
//! **Sequence lengths.** A [`BranchConfig::Conv1d`] branch takes `[B, T, F]` padded sequences.
//! By default every step is valid. To give true lengths, append one `[B]` i64 tensor per
//! sequence branch to the inputs, in branch order: `inputs = [x_0, .., x_{M-1}, len_a, len_b]`.
//! Padded steps are zeroed before every conv and excluded from the mean pooling, so padding
//! never changes the output.

use mmanet_core::{Fidelity, ModalitySet};
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Kind, Tensor};

use crate::hemis::mean_var_fusion;
use crate::layers::{BN_EPS, BatchNorm, Conv2d, ConvSpec, batch_norm, conv2d, in_branch, linear};
use crate::net::{MultiModalNet, NetOutput, check_inputs, mask_column};
use crate::{ModelError, Result};

/// One modality's branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum BranchConfig {
    /// Feature vectors `[B, in_dim]`: (Linear -> BN -> ReLU) per hidden width, then
    /// Linear -> ReLU to `out_dim`.
    Mlp {
        /// Input width.
        in_dim: i64,
        /// Hidden widths.
        hidden: Vec<i64>,
        /// Output width.
        out_dim: i64,
    },
    /// Small images `[B, C, H, W]` (e.g. 1x28x28, 1x16x15): per entry of `channels`, conv 3x3
    /// (pad 1) -> BN -> ReLU -> max-pool 2 (floor); then global average pool -> Linear -> ReLU.
    SmallCnn {
        /// Input channels.
        in_channels: i64,
        /// Conv widths (one stage each).
        channels: Vec<i64>,
        /// Output width.
        out_dim: i64,
    },
    /// Sequences `[B, T, F]`: per entry of `channels`, conv1d (kernel `kernel`, same padding)
    /// -> BN -> ReLU over time; masked mean over the valid steps -> Linear -> ReLU.
    Conv1d {
        /// Features per step `F`.
        in_features: i64,
        /// Conv widths.
        channels: Vec<i64>,
        /// Odd kernel size.
        kernel: i64,
        /// Output width.
        out_dim: i64,
    },
}

impl BranchConfig {
    /// Width of the branch's output vector.
    pub fn out_dim(&self) -> i64 {
        match self {
            BranchConfig::Mlp { out_dim, .. }
            | BranchConfig::SmallCnn { out_dim, .. }
            | BranchConfig::Conv1d { out_dim, .. } => *out_dim,
        }
    }

    fn is_sequence(&self) -> bool {
        matches!(self, BranchConfig::Conv1d { .. })
    }
}

/// How branch outputs are fused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", from = "GenericFusionRepr")]
pub enum GenericFusion {
    /// Concatenation `[B, Σ out_dim]` (masked branches are zeros).
    Concat,
    /// HeMIS mean and variance over present modalities `[B, 2 D]` (all `out_dim` equal).
    MeanVar {
        /// See [`mean_var_fusion`].
        fidelity: Fidelity,
    },
}

/// How [`GenericFusion`] is read: `Concat` as a struct variant, so that a key beside `kind =
/// "concat"` is refused (serde ignores extra keys of an internally tagged unit variant).
#[derive(Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
enum GenericFusionRepr {
    Concat {},
    MeanVar { fidelity: Fidelity },
}

impl From<GenericFusionRepr> for GenericFusion {
    fn from(r: GenericFusionRepr) -> Self {
        match r {
            GenericFusionRepr::Concat {} => GenericFusion::Concat,
            GenericFusionRepr::MeanVar { fidelity } => GenericFusion::MeanVar { fidelity },
        }
    }
}

/// Which of the three MMANet networks to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetRole {
    /// T: ignores the mask.
    Teacher,
    /// S: masks branch outputs.
    Deployment,
    /// S + R (`auxi_bone`).
    Student,
}

/// Configuration of a [`GenericNet`]; teacher, deployment and student share it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericNetConfig {
    /// Modalities in input order.
    pub modalities: ModalitySet,
    /// One branch per modality, same order.
    pub branches: Vec<BranchConfig>,
    /// Trunk hidden widths (Linear -> BN -> ReLU each); their activations are the MAD features.
    pub trunk_hidden: Vec<i64>,
    /// Number of classes.
    pub n_classes: i64,
    /// Fusion of branch outputs.
    pub fusion: GenericFusion,
}

impl GenericNetConfig {
    /// Width of the fused vector.
    pub fn fused_dim(&self) -> i64 {
        match self.fusion {
            GenericFusion::Concat => self.branches.iter().map(BranchConfig::out_dim).sum(),
            GenericFusion::MeanVar { .. } => 2 * self.branches.first().map_or(0, |b| b.out_dim()),
        }
    }

    /// [`crate::NetConfig::sizes`] (every field named, so a new one needs a decision here).
    pub fn sizes(&self) -> Vec<(String, i64)> {
        let GenericNetConfig { modalities: _, branches, trunk_hidden, n_classes, fusion: _ } = self;
        let mut out = Vec::new();
        let listed = |out: &mut Vec<(String, i64)>, prefix: &str, values: &[i64]| {
            out.extend(values.iter().enumerate().map(|(k, &v)| (format!("{prefix}[{k}]"), v)));
        };
        for (i, b) in branches.iter().enumerate() {
            let p = format!("branches[{i}]");
            match b {
                BranchConfig::Mlp { in_dim, hidden, out_dim } => {
                    out.push((format!("{p}.in_dim"), *in_dim));
                    listed(&mut out, &format!("{p}.hidden"), hidden);
                    out.push((format!("{p}.out_dim"), *out_dim));
                }
                BranchConfig::SmallCnn { in_channels, channels, out_dim } => {
                    out.push((format!("{p}.in_channels"), *in_channels));
                    listed(&mut out, &format!("{p}.channels"), channels);
                    out.push((format!("{p}.out_dim"), *out_dim));
                }
                BranchConfig::Conv1d { in_features, channels, kernel, out_dim } => {
                    out.push((format!("{p}.in_features"), *in_features));
                    listed(&mut out, &format!("{p}.channels"), channels);
                    out.push((format!("{p}.kernel"), *kernel));
                    out.push((format!("{p}.out_dim"), *out_dim));
                }
            }
        }
        listed(&mut out, "trunk_hidden", trunk_hidden);
        out.push(("n_classes".into(), *n_classes));
        out
    }

    /// Checks branch count, positive widths and, for mean/variance fusion, equal widths.
    pub fn check(&self) -> Result<()> {
        if self.branches.len() != self.modalities.len() {
            return Err(ModelError::Config(format!(
                "{} branches for {} modalities",
                self.branches.len(),
                self.modalities.len()
            )));
        }
        if self.n_classes < 1 || self.trunk_hidden.iter().any(|&h| h < 1) {
            return Err(ModelError::Config("widths and n_classes must be positive".into()));
        }
        for b in &self.branches {
            let ok = match b {
                BranchConfig::Mlp { in_dim, hidden, out_dim } => {
                    *in_dim > 0 && *out_dim > 0 && hidden.iter().all(|&h| h > 0)
                }
                BranchConfig::SmallCnn { in_channels, channels, out_dim } => {
                    *in_channels > 0 && *out_dim > 0 && channels.iter().all(|&c| c > 0)
                }
                BranchConfig::Conv1d { in_features, channels, kernel, out_dim } => {
                    *in_features > 0
                        && *out_dim > 0
                        && *kernel > 0
                        && kernel % 2 == 1
                        && channels.iter().all(|&c| c > 0)
                }
            };
            if !ok {
                return Err(ModelError::Config(format!("invalid branch {b:?}")));
            }
        }
        if let GenericFusion::MeanVar { .. } = self.fusion {
            let d = self.branches[0].out_dim();
            if self.branches.iter().any(|b| b.out_dim() != d) {
                return Err(ModelError::Config("mean/variance fusion needs equal out_dim".into()));
            }
        }
        Ok(())
    }

    /// Number of sequence branches (= number of optional length inputs).
    pub fn n_sequence_branches(&self) -> usize {
        self.branches.iter().filter(|b| b.is_sequence()).count()
    }
}

#[derive(Debug)]
struct DenseBnRelu {
    fc: nn::Linear,
    bn: BatchNorm,
}

impl DenseBnRelu {
    fn new(p: &nn::Path<'_>, d_in: i64, d_out: i64) -> Self {
        DenseBnRelu { fc: linear(p / "fc", d_in, d_out), bn: batch_norm(p / "bn", d_out, BN_EPS) }
    }

    /// `[B, d_in]` -> `[B, d_out]`.
    fn forward_t(&self, x: &Tensor, train: bool) -> Tensor {
        self.bn.forward_t(&self.fc.forward(x), train).relu()
    }
}

#[derive(Debug)]
struct ConvStage {
    conv: Conv2d,
    bn: BatchNorm,
}

#[derive(Debug)]
struct Conv1dStage {
    weight: Tensor,
    bias: Tensor,
    bn: BatchNorm,
    pad: i64,
}

#[derive(Debug)]
enum Branch {
    Mlp { layers: Vec<DenseBnRelu>, out: nn::Linear },
    SmallCnn { stages: Vec<ConvStage>, out: nn::Linear },
    Conv1d { stages: Vec<Conv1dStage>, out: nn::Linear },
}

impl Branch {
    fn new(p: &nn::Path<'_>, cfg: &BranchConfig) -> Self {
        match cfg {
            BranchConfig::Mlp { in_dim, hidden, out_dim } => {
                let mut d = *in_dim;
                let mut layers = Vec::new();
                for (i, &h) in hidden.iter().enumerate() {
                    layers.push(DenseBnRelu::new(&(p / i), d, h));
                    d = h;
                }
                Branch::Mlp { layers, out: linear(p / "out", d, *out_dim) }
            }
            BranchConfig::SmallCnn { in_channels, channels, out_dim } => {
                let mut c = *in_channels;
                let mut stages = Vec::new();
                for (i, &w) in channels.iter().enumerate() {
                    let q = p / i;
                    stages.push(ConvStage {
                        conv: conv2d(&q / "conv", c, w, ConvSpec::square(3, 1, 1)),
                        bn: batch_norm(&q / "bn", w, BN_EPS),
                    });
                    c = w;
                }
                Branch::SmallCnn { stages, out: linear(p / "out", c, *out_dim) }
            }
            BranchConfig::Conv1d { in_features, channels, kernel, out_dim } => {
                let mut c = *in_features;
                let mut stages = Vec::new();
                for (i, &w) in channels.iter().enumerate() {
                    let q = p / i;
                    let std = (2.0 / (w * kernel) as f64).sqrt(); // Kaiming fan_out
                    let conv = &q / "conv";
                    stages.push(Conv1dStage {
                        weight: conv.randn("weight", &[w, c, *kernel], 0.0, std),
                        bias: conv.zeros("bias", &[w]),
                        bn: batch_norm(&q / "bn", w, BN_EPS),
                        pad: kernel / 2,
                    });
                    c = w;
                }
                Branch::Conv1d { stages, out: linear(p / "out", c, *out_dim) }
            }
        }
    }

    /// `x`: `[B, D]`, `[B, C, H, W]` or `[B, T, F]` (+ lengths `[B]`) -> `[B, out_dim]`.
    fn forward_t(&self, x: &Tensor, lengths: Option<&Tensor>, train: bool) -> Tensor {
        match self {
            Branch::Mlp { layers, out } => {
                let mut h = x.to_kind(Kind::Float);
                for l in layers {
                    h = l.forward_t(&h, train);
                }
                out.forward(&h).relu()
            }
            Branch::SmallCnn { stages, out } => {
                let mut h = x.to_kind(Kind::Float);
                for s in stages {
                    h = s.bn.forward_t(&s.conv.forward(&h), train).relu();
                    h = h.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false); // floor
                }
                out.forward(&h.mean_dim(&[2i64, 3][..], false, None)).relu() // [B, C] -> [B, out]
            }
            Branch::Conv1d { stages, out } => {
                let (b, t) = (x.size()[0], x.size()[1]);
                let valid = match lengths {
                    // [B, T]: step s of sample i is valid iff s < len_i
                    Some(len) => Tensor::arange(t, (Kind::Int64, x.device()))
                        .view([1, t])
                        .lt_tensor(&len.to_kind(Kind::Int64).view([b, 1]))
                        .to_kind(Kind::Float),
                    None => Tensor::ones([b, t], (Kind::Float, x.device())),
                };
                let v = valid.view([b, 1, t]);
                let mut h = x.to_kind(Kind::Float).transpose(1, 2) * &v; // [B, F, T]
                for s in stages {
                    let c = h.conv1d(&s.weight, Some(&s.bias), [1], [s.pad], [1], 1);
                    h = s.bn.forward_t(&c, train).relu() * &v; // [B, C, T]
                }
                let n = valid.sum_dim_intlist(1, true, None).clamp_min(1.0); // [B, 1]
                let pooled = h.sum_dim_intlist(2, false, None) / n; // [B, C]
                out.forward(&pooled).relu()
            }
        }
    }
}

#[derive(Debug)]
struct MlpTrunk {
    hidden: Vec<DenseBnRelu>,
    out: nn::Linear,
}

impl MlpTrunk {
    fn new(p: &nn::Path<'_>, cfg: &GenericNetConfig) -> Self {
        let mut d = cfg.fused_dim();
        let mut hidden = Vec::new();
        for (i, &h) in cfg.trunk_hidden.iter().enumerate() {
            hidden.push(DenseBnRelu::new(&(p / i), d, h));
            d = h;
        }
        MlpTrunk { hidden, out: linear(p / "out", d, cfg.n_classes) }
    }

    /// `[B, fused]` -> (logits `[B, K]`, hidden activations; `[fused]` if there are none).
    fn forward_t(&self, x: &Tensor, train: bool) -> (Tensor, Vec<Tensor>) {
        let mut h = x.shallow_clone();
        let mut feats = Vec::new();
        for l in &self.hidden {
            h = l.forward_t(&h, train);
            feats.push(h.shallow_clone());
        }
        if feats.is_empty() {
            feats.push(h.shallow_clone());
        }
        (self.out.forward(&h), feats)
    }
}

/// Teacher, deployment or student over generic branches (see the module docs).
#[derive(Debug)]
pub struct GenericNet {
    cfg: GenericNetConfig,
    role: NetRole,
    branches: Vec<Branch>,
    trunk: MlpTrunk,
    aux: Option<MlpTrunk>,
}

impl GenericNet {
    /// Builds the network on `p` itself; fails on an invalid config.
    pub fn new(p: &nn::Path<'_>, cfg: &GenericNetConfig, role: NetRole) -> Result<Self> {
        cfg.check()?;
        let branches = cfg
            .modalities
            .modalities()
            .iter()
            .zip(&cfg.branches)
            .map(|(m, b)| Branch::new(&(p / format!("special_bone_{}", m.name())), b))
            .collect();
        Ok(GenericNet {
            cfg: cfg.clone(),
            role,
            branches,
            trunk: MlpTrunk::new(&(p / "shared_bone"), cfg),
            aux: (role == NetRole::Student).then(|| MlpTrunk::new(&(p / "auxi_bone"), cfg)),
        })
    }

    /// The role.
    pub fn role(&self) -> NetRole {
        self.role
    }

    /// The configuration.
    pub fn config(&self) -> &GenericNetConfig {
        &self.cfg
    }

    /// Masked, fused branch outputs (the trunks' input); the teacher uses an all-ones mask.
    /// Branch `i` runs inside [`in_branch`]`(i, ..)` (the BatchNorm rule for placeholders,
    /// [`crate::layers`]).
    ///
    /// # Shapes
    /// - `inputs`: `M` modality tensors, then optionally one `[B]` length per sequence branch.
    /// - `mask`: `[B, M]` -> `[B, fused_dim]`.
    pub fn f_fused(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> Result<Tensor> {
        let m = self.cfg.modalities.len();
        let b = check_inputs(inputs, mask, m)?;
        let n_seq = self.cfg.n_sequence_branches();
        let lengths: Vec<Option<&Tensor>> = if inputs.len() == m {
            vec![None; n_seq]
        } else if inputs.len() == m + n_seq {
            inputs[m..].iter().map(Some).collect()
        } else {
            return Err(ModelError::Inputs(format!(
                "expected {m} inputs or {} (with sequence lengths), got {}",
                m + n_seq,
                inputs.len()
            )));
        };
        let mut seq = 0;
        let mut feats = Vec::with_capacity(m);
        for (i, (br, (cfg, x))) in
            self.branches.iter().zip(self.cfg.branches.iter().zip(inputs)).enumerate()
        {
            let len = if cfg.is_sequence() {
                seq += 1;
                lengths[seq - 1]
            } else {
                None
            };
            // Modality i's branch: the BatchNorm rule for placeholders (`layers`).
            feats.push(in_branch(i, || br.forward_t(x, len, train))); // [B, D_m]
        }
        let mask = match self.role {
            NetRole::Teacher => Tensor::ones([b, m as i64], (Kind::Float, mask.device())),
            _ => mask.shallow_clone(),
        };
        Ok(match self.cfg.fusion {
            GenericFusion::Concat => {
                let masked: Vec<Tensor> = feats
                    .iter()
                    .enumerate()
                    .map(|(i, f)| f * mask_column(&mask, i, 2, f))
                    .collect();
                Tensor::cat(&masked, 1)
            }
            GenericFusion::MeanVar { fidelity } => mean_var_fusion(&feats, &mask, fidelity),
        })
    }

    /// Checked forward: logits, trunk hidden activations as features, R's logits for students.
    ///
    /// # Shapes
    /// - as [`GenericNet::f_fused`]; logits `[B, K]`, features `[B, h_i]`.
    pub fn f_forward(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> Result<NetOutput> {
        let fused = self.f_fused(inputs, mask, train)?;
        let (logits, features) = self.trunk.forward_t(&fused, train);
        let aux_logits = self.aux.as_ref().map(|a| a.forward_t(&fused, train).0);
        Ok(NetOutput {
            logits,
            features,
            aux_logits,
            side_logits: Vec::new(),
            aux_side_logits: Vec::new(),
        })
    }
}

impl MultiModalNet for GenericNet {
    fn forward_t(&self, inputs: &[Tensor], mask: &Tensor, train: bool) -> NetOutput {
        self.f_forward(inputs, mask, train).expect("GenericNet inputs")
    }

    fn modalities(&self) -> &ModalitySet {
        &self.cfg.modalities
    }
}
