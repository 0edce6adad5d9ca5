//! libtorch's c10d from Rust: the collectives of PyTorch's DistributedDataParallel for
//! data-parallel training over many processes.
//!
//! tch exposes none of c10d, so `cpp/c10d_shim.cpp` (one C++ translation unit, compiled by the
//! build script against the libtorch tch links) wraps a TCPStore rendezvous and a
//! `ProcessGroupGloo` in a small C ABI, and [`ProcessGroup`] is its safe face:
//!
//! - [`ProcessGroup::from_env`] joins the group torchrun describes (`RANK`, `WORLD_SIZE`,
//!   `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`; torchrun's agent store and restart prefix),
//!   [`ProcessGroup::new`] an explicit one (rank 0 hosts the store);
//! - [`ProcessGroup::all_reduce`] (sum or mean, in place), [`ProcessGroup::broadcast`],
//!   [`ProcessGroup::barrier`], [`ProcessGroup::all_gather_u64`] and
//!   [`ProcessGroup::all_gather_f64`], each bounded by the group's timeout: a hung or absent peer
//!   gives a [`DistError::Collective`] naming the operation and the timeout, a dead one an error
//!   as soon as its connection closes;
//! - [`StoreHost`] hosts a store that waits for nobody, as torchrun's agent does, for a launcher
//!   that spawns its workers itself.
//!
//! Gloo moves CPU tensors. Built against the full CUDA install (`cargo xtask setup --cuda`:
//! NCCL's header present), the shim also has `ProcessGroupNCCL` ([`nccl_built`]): a group
//! joined with [`Config::cuda_device`] takes the collectives on CUDA tensors through NCCL, the
//! host values through Gloo. Elsewhere [`ProcessGroup`] refuses CUDA tensors with a typed error
//! saying why. docs/distributed.md has the build, the semantics and the measured costs.
//!
//! The same CUDA build also wraps `at::cuda::CUDAGraph` ([`CudaGraph`]: capture once on a side
//! stream, replay), the base of a captured training step.
//!
//! ```no_run
//! use std::time::Duration;
//! use mmanet_sys::{ProcessGroup, ReduceOp};
//!
//! # fn main() -> Result<(), mmanet_sys::DistError> {
//! let mut pg = ProcessGroup::from_env(Duration::from_secs(300))?;
//! let mut grads = tch::Tensor::ones([1024], (tch::Kind::Float, tch::Device::Cpu));
//! pg.all_reduce(&mut grads, ReduceOp::Mean)?;
//! let steps = pg.all_gather_u64(42)?; // one value per rank
//! assert_eq!(steps.len(), pg.world_size());
//! # Ok(()) }
//! ```

mod env;
mod error;
#[allow(unsafe_code)]
mod ffi;
mod graph;
mod group;

pub use env::{Config, GlooDevice, StoreRole};
pub use error::{DistError, Op};
pub use graph::{CudaGraph, GraphError, cuda_graphs_built, cuda_index};
pub use group::{ProcessGroup, ReduceOp, StoreHost, SyncBatchNorm, nccl_built};
