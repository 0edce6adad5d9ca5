//! [`ModelSpec`]: which network a run trains, and building it in each role.

use mmanet_core::ModalitySet;
use mmanet_models::{ClsNetConfig, DeploymentNet, MultiModalNet, StudentNet, TeacherNet};
use serde::{Deserialize, Serialize};
use tch::nn;

use crate::TrainError;

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

/// The network of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ModelSpec {
    /// CASIA-SURF / CeFA: ResNet18-SE branches, concatenation (or HeMIS mean/variance) fusion,
    /// ResNet trunk; the student's regularization head is `auxi_bone`.
    ResnetSe(ClsNetConfig),
}

impl ModelSpec {
    /// The modalities the network expects, in input order.
    pub fn modalities(&self) -> &ModalitySet {
        match self {
            ModelSpec::ResnetSe(c) => &c.modalities,
        }
    }

    /// Number of output classes.
    pub fn num_classes(&self) -> usize {
        match self {
            ModelSpec::ResnetSe(c) => c.n_classes as usize,
        }
    }

    /// Whether a regularization head exists for this network.
    pub fn supports_regularizer(&self) -> bool {
        true
    }

    pub(crate) fn check(&self) -> Result<(), TrainError> {
        match self {
            ModelSpec::ResnetSe(c) => {
                c.check().map_err(|e| TrainError::config("model", e.to_string()))
            }
        }
    }

    /// Builds the network under `p` (parameter names as the official code).
    pub fn build(&self, p: &nn::Path<'_>, role: Role) -> Box<dyn MultiModalNet> {
        match (self, role) {
            (ModelSpec::ResnetSe(c), Role::Teacher) => Box::new(TeacherNet::new(p, c)),
            (ModelSpec::ResnetSe(c), Role::Deployment) => Box::new(DeploymentNet::new(p, c)),
            (ModelSpec::ResnetSe(c), Role::StudentWithRegularizer) => {
                Box::new(StudentNet::new(p, c))
            }
        }
    }
}
