//! One entry point for the trainer: [`NetConfig`] (any architecture, serde-tagged) and
//! [`build_net`], which builds the teacher, deployment net or student as a boxed
//! [`MultiModalNet`].

use mmanet_core::ModalitySet;
use serde::{Deserialize, Serialize};
use tch::nn;

use crate::{
    ClsNetConfig, DeploymentNet, EsaNet, EsaNetConfig, GenericNet, GenericNetConfig, MultiModalNet,
    NetRole, Result, StudentNet, TeacherNet,
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

impl NetConfig {
    /// The modalities the network expects, in input order.
    pub fn modalities(&self) -> ModalitySet {
        match self {
            NetConfig::Cls(c) => c.modalities.clone(),
            NetConfig::Generic(c) => c.modalities.clone(),
            NetConfig::Esanet(_) => ModalitySet::from_names(["rgb", "depth"]).expect("valid set"),
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
