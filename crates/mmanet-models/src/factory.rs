//! One entry point for the trainer: [`NetConfig`] (any architecture, serde-tagged) and
//! [`build_net`], which builds the teacher, deployment net or student as a boxed
//! [`MultiModalNet`].

use mmanet_core::ModalitySet;
use serde::{Deserialize, Serialize};
use tch::nn;

use crate::{
    BranchConfig, ClsNetConfig, DeploymentNet, EsaNet, EsaNetConfig, GenericNet, GenericNetConfig,
    MultiModalNet, NetRole, Result, StudentNet, TeacherNet,
};

/// Any network configuration (`arch = "cls" | "generic" | "esanet"` in TOML/JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", rename_all = "snake_case")]
pub enum NetConfig {
    /// CASIA-SURF / CeFA ResNet18-SE nets.
    Cls(ClsNetConfig),
    /// Generic branches + MLP trunk.
    Generic(GenericNetConfig),
    /// ESANet RGB-D segmentation.
    Esanet(EsaNetConfig),
}

/// What a network takes for one modality, per sample (after the batch dimension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BranchInput {
    /// `[C, H, W]` with `channels` channels, any height and width.
    Image {
        /// `C`.
        channels: i64,
    },
    /// `[D]`.
    Vector {
        /// `D`.
        len: i64,
    },
    /// `[T, F]`, any `T`.
    Sequence {
        /// `F`.
        features: i64,
    },
}

impl BranchInput {
    /// Whether a per-sample input of `shape` fits.
    pub fn accepts(&self, shape: &[i64]) -> bool {
        match (*self, shape) {
            (BranchInput::Image { channels }, [c, _, _]) => *c == channels,
            (BranchInput::Vector { len }, [d]) => *d == len,
            (BranchInput::Sequence { features }, [_, f]) => *f == features,
            (
                BranchInput::Image { .. }
                | BranchInput::Vector { .. }
                | BranchInput::Sequence { .. },
                _,
            ) => false,
        }
    }
}

impl std::fmt::Display for BranchInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BranchInput::Image { channels } => write!(f, "[{channels}, H, W]"),
            BranchInput::Vector { len } => write!(f, "[{len}]"),
            BranchInput::Sequence { features } => write!(f, "[T, {features}]"),
        }
    }
}

impl NetConfig {
    /// What the network takes for each modality, in input order.
    pub fn inputs(&self) -> Vec<BranchInput> {
        match self {
            NetConfig::Cls(c) => {
                vec![BranchInput::Image { channels: c.in_channels }; c.modalities.len()]
            }
            NetConfig::Generic(c) => c
                .branches
                .iter()
                .map(|b| match b {
                    BranchConfig::Mlp { in_dim, .. } => BranchInput::Vector { len: *in_dim },
                    BranchConfig::SmallCnn { in_channels, .. } => {
                        BranchInput::Image { channels: *in_channels }
                    }
                    BranchConfig::Conv1d { in_features, .. } => {
                        BranchInput::Sequence { features: *in_features }
                    }
                })
                .collect(),
            NetConfig::Esanet(c) => vec![
                BranchInput::Image { channels: c.encoder.in_channels },
                BranchInput::Image { channels: c.depth_channels },
            ],
        }
    }

    /// The modalities the network expects, in input order.
    pub fn modalities(&self) -> ModalitySet {
        match self {
            NetConfig::Cls(c) => c.modalities.clone(),
            NetConfig::Generic(c) => c.modalities.clone(),
            NetConfig::Esanet(_) => ModalitySet::from_names(["rgb", "depth"]).expect("valid set"),
        }
    }

    /// Every count and width the architecture reads (channels, hidden widths, classes, block
    /// counts, kernel and pooling sizes), named by its field (`branches[1].hidden[0]`). In a
    /// network that matches its weights each is at most the number of weight values, so a
    /// model file bounds them by its tensors before anything is allocated.
    pub fn sizes(&self) -> Vec<(String, i64)> {
        match self {
            NetConfig::Cls(c) => c.sizes(),
            NetConfig::Generic(c) => c.sizes(),
            NetConfig::Esanet(c) => c.sizes(),
        }
    }

    /// Checks the configuration.
    pub fn check(&self) -> Result<()> {
        match self {
            NetConfig::Cls(c) => c.check(),
            NetConfig::Generic(c) => c.check(),
            NetConfig::Esanet(c) => c.check(),
        }
    }
}

/// Builds the network of `role` on `p` (names as the official `state_dict`, the student's
/// regularizer under `auxi_bone` / `auxi_decoder`).
pub fn build_net(
    p: &nn::Path<'_>,
    cfg: &NetConfig,
    role: NetRole,
) -> Result<Box<dyn MultiModalNet>> {
    cfg.check()?;
    Ok(match cfg {
        NetConfig::Cls(c) => match role {
            NetRole::Teacher => Box::new(TeacherNet::new(p, c)),
            NetRole::Deployment => Box::new(DeploymentNet::new(p, c)),
            NetRole::Student => Box::new(StudentNet::new(p, c)),
        },
        NetConfig::Generic(c) => Box::new(GenericNet::new(p, c, role)?),
        NetConfig::Esanet(c) => Box::new(EsaNet::new(p, c, role)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GenericFusion;
    use crate::resnet::BlockKind;

    fn configs() -> Vec<NetConfig> {
        let set = ModalitySet::from_names(["a", "b", "c"]).unwrap();
        let generic = GenericNetConfig {
            modalities: set,
            branches: vec![
                BranchConfig::Mlp { in_dim: 7, hidden: vec![5, 3], out_dim: 4 },
                BranchConfig::SmallCnn { in_channels: 2, channels: vec![3, 6], out_dim: 4 },
                BranchConfig::Conv1d { in_features: 3, channels: vec![5], kernel: 3, out_dim: 4 },
            ],
            trunk_hidden: vec![9],
            n_classes: 2,
            fusion: GenericFusion::Concat,
        };
        let esanet = EsaNetConfig::tiny(BlockKind::Basic);
        vec![
            NetConfig::Cls(ClsNetConfig::surf()),
            NetConfig::Generic(generic),
            NetConfig::Esanet(esanet),
        ]
    }

    #[test]
    fn every_size_is_named_once_and_bounded_by_the_weights_it_builds() {
        let expected_counts = [4, 14, 15];
        for (cfg, expected) in configs().iter().zip(expected_counts) {
            let sizes = cfg.sizes();
            assert_eq!(sizes.len(), expected, "{sizes:?}");
            let mut names: Vec<&str> = sizes.iter().map(|(n, _)| n.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), sizes.len(), "a size named twice: {sizes:?}");
            for role in [NetRole::Teacher, NetRole::Deployment, NetRole::Student] {
                let vs = nn::VarStore::new(tch::Device::Cpu);
                build_net(&vs.root(), cfg, role).unwrap();
                let values: i64 = vs.variables().values().map(|t| t.numel() as i64).sum();
                for (name, v) in &sizes {
                    assert!(*v >= 1 && *v <= values, "{name} = {v}, the net holds {values} values");
                }
            }
        }
    }

    #[test]
    fn a_non_positive_size_is_refused_by_check() {
        for cfg in configs() {
            assert!(cfg.check().is_ok());
            let NetConfig::Esanet(mut e) = cfg else { continue };
            e.context_bins[1] = 0;
            assert!(NetConfig::Esanet(e.clone()).check().is_err(), "a pooling bin of 0");
            e.context_bins[1] = 5;
            e.se_reduction = 0;
            assert!(NetConfig::Esanet(e).check().is_err(), "an SE reduction of 0");
        }
    }
}
