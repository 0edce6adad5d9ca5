//! [`ModelSpec`]: which network a run trains (the models crate's [`NetConfig`]: `arch = "cls"`,
//! `"generic"` or `"esanet"`), and building it in each role.

use std::path::PathBuf;

use mmanet_core::ModalitySet;
use mmanet_models::factory::{NetConfig, build_net};
use mmanet_models::{MultiModalNet, NetRole};
use tch::nn;

use crate::TrainError;

/// The network of a run, as written in a config's `[model]` table.
pub type ModelSpec = NetConfig;

/// What a network is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// The teacher: no mask.
    Teacher,
    /// The deployment network alone (baselines without MAR, and deployment).
    Deployment,
    /// The deployment network plus the regularization head (MAR).
    StudentWithRegularizer,
}

impl From<Role> for NetRole {
    fn from(r: Role) -> NetRole {
        match r {
            Role::Teacher => NetRole::Teacher,
            Role::Deployment => NetRole::Deployment,
            Role::StudentWithRegularizer => NetRole::Student,
        }
    }
}

/// What the trainer needs to know about a [`ModelSpec`].
pub trait ModelSpecExt {
    /// The modalities the network expects, in input order.
    fn set(&self) -> ModalitySet;
    /// Number of output classes (void excluded for segmentation).
    fn num_classes(&self) -> usize;
    /// Whether this is a segmentation network.
    fn is_segmentation(&self) -> bool;
    /// Checks the configuration, naming the `model` field on error.
    fn validate(&self) -> Result<(), TrainError>;
    /// Builds the network under `p` (parameter names as the official code).
    fn build(&self, p: &nn::Path<'_>, role: Role) -> Result<Box<dyn MultiModalNet>, TrainError>;
    /// Loads `model.pretrained` (ESANet's torchvision-named encoder weights) into a network
    /// built on `vs.root()`; nothing for networks without the setting. Errors name the field.
    fn load_pretrained(&self, vs: &nn::VarStore) -> Result<(), TrainError>;
    /// The paths the model section names (`model.pretrained.*`), for resolving them.
    fn paths_mut(&mut self) -> Vec<&mut PathBuf>;
}

impl ModelSpecExt for NetConfig {
    fn set(&self) -> ModalitySet {
        self.modalities()
    }

    fn num_classes(&self) -> usize {
        match self {
            NetConfig::Cls(c) => c.n_classes as usize,
            NetConfig::Generic(c) => c.n_classes as usize,
            NetConfig::Esanet(c) => c.n_classes as usize,
        }
    }

    fn is_segmentation(&self) -> bool {
        matches!(self, NetConfig::Esanet(_))
    }

    fn validate(&self) -> Result<(), TrainError> {
        self.check().map_err(|e| TrainError::config("model", e.to_string()))
    }

    fn build(&self, p: &nn::Path<'_>, role: Role) -> Result<Box<dyn MultiModalNet>, TrainError> {
        Ok(build_net(p, self, role.into())?)
    }

    fn load_pretrained(&self, vs: &nn::VarStore) -> Result<(), TrainError> {
        let pretrained = match self {
            NetConfig::Esanet(c) => c.pretrained.as_ref(),
            NetConfig::Cls(_) | NetConfig::Generic(_) => None,
        };
        let Some(p) = pretrained else { return Ok(()) };
        let [rgb, depth] =
            p.load(vs).map_err(|e| TrainError::config("model.pretrained", e.to_string()))?;
        tracing::info!(
            rgb = %p.rgb.display(),
            depth = %p.depth.display(),
            loaded = rgb.loaded.len() + depth.loaded.len(),
            "encoders initialised from ImageNet weights"
        );
        Ok(())
    }

    fn paths_mut(&mut self) -> Vec<&mut PathBuf> {
        match self {
            NetConfig::Esanet(c) => {
                c.pretrained.as_mut().map_or(Vec::new(), |p| p.paths_mut().into())
            }
            NetConfig::Cls(_) | NetConfig::Generic(_) => Vec::new(),
        }
    }
}
