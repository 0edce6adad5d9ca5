//! Networks of MMANet in `tch`, with the official PyTorch parameter names.
//!
//! - [`cls`]: CASIA-SURF / CeFA ResNet18-SE fusion nets: [`TeacherNet`], [`DeploymentNet`],
//!   [`StudentNet`] (deployment + regularization head `auxi_bone`), HeMIS mean/variance fusion.
//! - [`generic`]: MLP / small-CNN / 1-D conv branches for other data sets, same masking and fusion.
//! - [`esanet`]: RGB-D segmentation (ESANet with SE-add fusion, student with `auxi_decoder`).
//! - [`factory`]: [`NetConfig`] and [`build_net`] (teacher / deployment / student of any kind).
//! - [`layout`]: channels-last (NHWC) strides for GPU convolutions.
//! - [`checkpoint`]: atomic safetensors saves, strict loads, deployment export, torchvision weights.
//!
//! Every network implements [`MultiModalNet`]: `inputs[m]` per modality, a `[B, M]` 0/1 mask
//! that multiplies each branch's output per sample, and a [`NetOutput`].
//!
//! ```
//! use mmanet_models::{ClsNetConfig, MultiModalNet, StudentNet};
//! use tch::{nn, Device, Kind, Tensor};
//!
//! let vs = nn::VarStore::new(Device::Cpu);
//! let cfg = ClsNetConfig::surf().with_width(4);
//! let student = StudentNet::new(&vs.root(), &cfg);
//! let inputs: Vec<Tensor> =
//!     (0..3).map(|_| Tensor::randn([2, 3, 32, 32], (Kind::Float, Device::Cpu))).collect();
//! let mask = Tensor::from_slice(&[1f32, 0., 1., 0., 1., 1.]).view([2, 3]);
//! let out = student.forward_t(&inputs, &mask, false);
//! assert_eq!(out.logits.size(), [2, 2]);
//! assert_eq!(out.features.len(), 2);
//! assert!(out.aux_logits.is_some());
//! ```

pub mod checkpoint;
pub mod cls;
pub mod error;
pub mod esanet;
pub mod factory;
pub mod generic;
pub mod hemis;
pub mod layers;
pub mod layout;
pub mod net;
pub mod resnet;
pub mod se;

pub use cls::{ClsFusion, ClsNetConfig, DeploymentNet, RegularizationNet, StudentNet, TeacherNet};
pub use error::{ModelError, Result};
pub use esanet::{EsaNet, EsaNetConfig};
pub use factory::{BranchInput, NetConfig, build_net};
pub use generic::{BranchConfig, GenericFusion, GenericNet, GenericNetConfig, NetRole};
pub use net::{MultiModalNet, NetOutput};
