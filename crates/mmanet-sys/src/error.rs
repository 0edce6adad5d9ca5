//! The crate's error type.

use std::fmt;
use std::time::Duration;

/// A collective or set-up step, named in errors and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// The rendezvous: connecting to (or hosting) the TCPStore and building the Gloo mesh.
    Init,
    /// Hosting a TCPStore for clients ([`crate::StoreHost`]).
    HostStore,
    /// [`crate::ProcessGroup::all_reduce`].
    AllReduce,
    /// [`crate::ProcessGroup::broadcast`].
    Broadcast,
    /// [`crate::ProcessGroup::barrier`].
    Barrier,
    /// [`crate::ProcessGroup::all_gather_u64`] / [`crate::ProcessGroup::all_gather_f64`].
    AllGather,
    /// [`crate::SyncBatchNorm::forward`] (its statistics' all-reduce).
    SyncBatchNorm,
}

impl Op {
    /// The name errors and logs use (`all_reduce`, `broadcast`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Op::Init => "init",
            Op::HostStore => "host_store",
            Op::AllReduce => "all_reduce",
            Op::Broadcast => "broadcast",
            Op::Barrier => "barrier",
            Op::AllGather => "all_gather",
            Op::SyncBatchNorm => "sync_batch_norm",
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A launcher variable (`RANK`, `WORLD_SIZE`, ...) is missing or malformed.
    #[error("environment variable {var}: {problem}")]
    Env {
        /// The variable's name.
        var: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// Settings that cannot describe a process group (rank outside the world, zero timeout, ...).
    #[error("invalid process group settings: {0}")]
    Config(String),
    /// A tensor a collective cannot take (device, layout, kind).
    #[error("{op}: {reason}")]
    InvalidTensor {
        /// The collective.
        op: Op,
        /// Why the tensor was refused.
        reason: String,
    },
    /// c10d reported a failure: a peer that did not answer within the timeout, a closed
    /// connection (a dead peer), a refused rendezvous.
    #[error("{op} failed on rank {rank} of {world_size} (timeout {timeout:?}): {message}")]
    Collective {
        /// The step that failed.
        op: Op,
        /// This process's rank.
        rank: usize,
        /// The number of ranks.
        world_size: usize,
        /// The timeout the step ran under.
        timeout: Duration,
        /// c10d's or Gloo's message.
        message: String,
    },
    /// An earlier collective failed; the group's connections are in an unknown state, so it
    /// refuses further calls (make a new group).
    #[error("{op}: the process group is unusable after an earlier failure: {first}")]
    Broken {
        /// The collective that was refused.
        op: Op,
        /// The first failure.
        first: String,
    },
    /// A libtorch call around a collective failed (e.g. the division of a mean).
    #[error("{op}: {source}")]
    Torch {
        /// The collective.
        op: Op,
        /// tch's error.
        source: tch::TchError,
    },
}

impl DistError {
    /// Whether this is a c10d failure whose message says a timeout expired (a hung or absent
    /// peer), as opposed to, e.g., a connection a dead peer closed.
    pub fn is_timeout(&self) -> bool {
        match self {
            DistError::Collective { message, .. } => {
                let m = message.to_ascii_lowercase();
                m.contains("timed out") || m.contains("timeout")
            }
            _ => false,
        }
    }

    /// The step the error belongs to, when it belongs to one.
    pub fn op(&self) -> Option<Op> {
        match self {
            DistError::InvalidTensor { op, .. }
            | DistError::Collective { op, .. }
            | DistError::Broken { op, .. }
            | DistError::Torch { op, .. } => Some(*op),
            DistError::Env { .. } | DistError::Config(_) => None,
        }
    }
}
