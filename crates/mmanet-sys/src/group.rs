//! [`ProcessGroup`] and [`StoreHost`]: the safe face of the shim. This module, [`crate::graph`]
//! and [`crate::ffi`] are the only places with `unsafe` in the crate.
#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_int};
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use tch::{Device, Kind, Tensor};

use crate::env::{Config, GlooDevice, StoreRole};
use crate::error::{DistError, Op};
use crate::ffi;

/// How [`ProcessGroup::all_reduce`] combines the ranks' tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// Element-wise sum.
    Sum,
    /// Element-wise sum divided by the world size (a sum, then one division on every rank;
    /// floating-point tensors only). Gloo has no average of its own.
    Mean,
}

/// A Gloo process group over a TCPStore rendezvous: collectives on CPU tensors with a timeout
/// on every call.
///
/// Collectives must be called in the same order on every rank (c10d's rule). A failed
/// collective (timeout, dead peer) leaves the group unusable: later calls return
/// [`DistError::Broken`]. The group is `Send` (c10d's group is not tied to a thread) but not
/// `Sync`: two threads issuing collectives at once would break the call order.
pub struct ProcessGroup {
    raw: NonNull<ffi::RawProcessGroup>,
    config: Config,
    broken: Option<String>,
}

// SAFETY: the handle owns a c10d ProcessGroupGloo and its store, which synchronise their own
// worker threads and keep no thread-local state of the creating thread, so the handle may be
// used and dropped on another thread. Not `Sync`: every method takes `&mut self` or only reads
// the Rust-side config, and concurrent collectives would break c10d's ordering rule.
unsafe impl Send for ProcessGroup {}

/// Calls a shim function with an error out-parameter; turns a failure into its message.
pub(crate) fn call(f: impl FnOnce(*mut *mut c_char) -> c_int) -> Result<(), String> {
    let mut err: *mut c_char = ptr::null_mut();
    let code = f(&mut err);
    if code == ffi::OK {
        return Ok(());
    }
    if err.is_null() {
        return Err(format!("c10d shim error {code} without a message (out of memory?)"));
    }
    // SAFETY: on failure the shim stores a NUL-terminated string from malloc in `err` (checked
    // non-null above); we copy it before freeing it with the shim's own free, exactly once.
    let message = unsafe { CStr::from_ptr(err) }.to_string_lossy().into_owned();
    // SAFETY: `err` came from the shim's malloc and is not used after this.
    unsafe { ffi::mmanet_c10d_string_free(err) };
    Err(message)
}

fn timeout_ms(t: Duration) -> i64 {
    i64::try_from(t.as_millis()).unwrap_or(i64::MAX / 4).max(1)
}

fn c_string(what: &str, s: &str) -> Result<CString, DistError> {
    CString::new(s).map_err(|_| DistError::Config(format!("{what} {s:?} contains a NUL byte")))
}

/// The element kinds Gloo reduces and moves.
fn gloo_kind(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Float
            | Kind::Double
            | Kind::Half
            | Kind::BFloat16
            | Kind::Int8
            | Kind::Uint8
            | Kind::Int
            | Kind::Int64
    )
}

/// Whether the shim was compiled with the NCCL backend (against the CUDA libtorch).
pub fn nccl_built() -> bool {
    // SAFETY: a function of no arguments that returns a constant.
    unsafe { ffi::mmanet_c10d_nccl_built() == 1 }
}

/// Refuses what the shim must not see: the checks every `unsafe` call below rests on.
/// `cuda`: the group's CUDA device when it has an NCCL backend.
fn check_tensor(op: Op, t: &Tensor, cuda: Option<usize>) -> Result<Kind, DistError> {
    let bad = |reason: String| DistError::InvalidTensor { op, reason };
    if !t.defined() {
        return Err(bad("the tensor is undefined".into()));
    }
    match (t.device(), cuda) {
        (Device::Cpu, _) => {}
        (Device::Cuda(d), Some(c)) if d == c => {}
        (device, Some(c)) => {
            return Err(bad(format!(
                "the tensor is on {device:?}: this rank's NCCL backend is on cuda:{c}"
            )));
        }
        (device, None) => {
            let why = if nccl_built() {
                "the group was joined without a CUDA device (Config::cuda_device)"
            } else {
                "NCCL is not built: mmanet-sys was compiled against a CPU libtorch"
            };
            return Err(bad(format!(
                "the tensor is on {device:?}: the Gloo backend takes CPU tensors ({why})"
            )));
        }
    }
    if t.is_sparse() {
        return Err(bad("sparse tensors are not supported".into()));
    }
    if !t.is_contiguous() {
        return Err(bad(format!("the tensor (shape {:?}) is not contiguous", t.size())));
    }
    let kind = t.f_kind().map_err(|e| DistError::Torch { op, source: e })?;
    if !gloo_kind(kind) {
        return Err(bad(format!("Gloo cannot reduce or move {kind:?} tensors")));
    }
    Ok(kind)
}

impl ProcessGroup {
    /// Joins a group of `world_size` ranks on `master_addr:master_port`, rank 0 hosting the
    /// store (see [`Config::new`]); `timeout` bounds the rendezvous and every collective.
    pub fn new(
        rank: usize,
        world_size: usize,
        master_addr: &str,
        master_port: u16,
        timeout: Duration,
    ) -> Result<Self, DistError> {
        Self::with_config(Config::new(rank, world_size, master_addr, master_port, timeout))
    }

    /// Joins the group a launcher (torchrun) describes in the environment
    /// ([`Config::from_env`]).
    pub fn from_env(timeout: Duration) -> Result<Self, DistError> {
        Self::with_config(Config::from_env(timeout)?)
    }

    /// Joins a group described by `config`. Blocks until every rank has joined: at most about
    /// twice the timeout (the store's wait for its clients, then Gloo's connections).
    pub fn with_config(config: Config) -> Result<Self, DistError> {
        config.validate()?;
        if nccl_built() {
            // Without NCCL the shim refuses any CUDA device, naming the CPU libtorch.
            config.check_cuda_device(usize::try_from(tch::Cuda::device_count()).unwrap_or(0))?;
        }
        let (host, prefix) = match &config.store {
            StoreRole::Host => (1, None),
            StoreRole::Client { prefix } => (0, prefix.clone()),
        };
        let addr = c_string("master address", &config.master_addr)?;
        let prefix = c_string("key prefix", prefix.as_deref().unwrap_or(""))?;
        let (kind, value) = match &config.device {
            GlooDevice::Default => ("default", String::new()),
            GlooDevice::Interface(i) => ("interface", i.clone()),
            GlooDevice::Hostname(h) => ("hostname", h.clone()),
        };
        let kind = c_string("Gloo device kind", kind)?;
        let value = c_string("Gloo device", &value)?;
        tracing::info!(
            rank = config.rank,
            world_size = config.world_size,
            addr = %config.master_addr,
            port = config.master_port,
            store = ?config.store,
            device = ?config.device,
            timeout = ?config.timeout,
            "joining the Gloo process group"
        );
        let started = Instant::now();
        let mut raw: *mut ffi::RawProcessGroup = ptr::null_mut();
        // SAFETY: every pointer argument is a live CString of this frame (NUL-terminated,
        // outliving the call) or `&mut raw`; rank < world <= i32::MAX and threads in 1..=64
        // were checked by `validate`. The shim writes `raw` only on success.
        let result = call(|err| unsafe {
            ffi::mmanet_c10d_pg_new(
                addr.as_ptr(),
                config.master_port,
                config.rank as c_int,
                config.world_size as c_int,
                host,
                prefix.as_ptr(),
                timeout_ms(config.timeout),
                kind.as_ptr(),
                value.as_ptr(),
                config.gloo_threads as c_int,
                config.cuda_device.map_or(-1, |d| d as c_int),
                &mut raw,
                err,
            )
        });
        match result.map(|()| NonNull::new(raw)) {
            Ok(Some(raw)) => {
                tracing::info!(rank = config.rank, elapsed = ?started.elapsed(), "joined");
                Ok(ProcessGroup { raw, config, broken: None })
            }
            Ok(None) => Err(init_error(&config, "the shim returned no handle".into())),
            Err(message) => {
                tracing::warn!(rank = config.rank, %message, "rendezvous failed");
                Err(init_error(&config, message))
            }
        }
    }

    /// This process's rank.
    pub fn rank(&self) -> usize {
        self.config.rank
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.config.world_size
    }

    /// The rank within this machine.
    pub fn local_rank(&self) -> usize {
        self.config.local_rank
    }

    /// The timeout every collective runs under.
    pub fn timeout(&self) -> Duration {
        self.config.timeout
    }

    /// Changes the timeout of later collectives (on every rank alike, or the ranks disagree on
    /// when a peer counts as hung).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), DistError> {
        if timeout.as_millis() == 0 {
            return Err(DistError::Config("the timeout must be at least 1 ms".into()));
        }
        self.config.timeout = timeout;
        Ok(())
    }

    /// The settings the group was made with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs one shim collective: refuses a broken group, and marks it broken on failure.
    fn collective(
        &mut self,
        op: Op,
        f: impl FnOnce(*mut ffi::RawProcessGroup, i64, *mut *mut c_char) -> c_int,
    ) -> Result<(), DistError> {
        if let Some(first) = &self.broken {
            return Err(DistError::Broken { op, first: first.clone() });
        }
        let timeout = self.config.timeout;
        let started = Instant::now();
        let raw = self.raw.as_ptr();
        match call(|err| f(raw, timeout_ms(timeout), err)) {
            Ok(()) => {
                tracing::trace!(rank = self.config.rank, %op, elapsed = ?started.elapsed());
                Ok(())
            }
            Err(message) => {
                let e = DistError::Collective {
                    op,
                    rank: self.config.rank,
                    world_size: self.config.world_size,
                    timeout,
                    message,
                };
                tracing::error!(rank = self.config.rank, %op, elapsed = ?started.elapsed(), "{e}");
                self.broken = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Replaces `tensor` (any shape, contiguous, on the CPU; f32, f64, f16, bf16 or an integer
    /// kind) with the element-wise sum, or mean, of every rank's tensor of the same shape and
    /// kind. On error the tensor's content is unspecified.
    pub fn all_reduce(&mut self, tensor: &mut Tensor, op: ReduceOp) -> Result<(), DistError> {
        let kind = check_tensor(Op::AllReduce, tensor, self.config.cuda_device)?;
        if op == ReduceOp::Mean
            && !matches!(kind, Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16)
        {
            return Err(DistError::InvalidTensor {
                op: Op::AllReduce,
                reason: format!("a mean needs a floating-point tensor, not {kind:?}"),
            });
        }
        let t = tensor.as_mut_ptr();
        // SAFETY: `t` is the live at::Tensor of `tensor`, borrowed mutably for this call and
        // checked above to be defined, dense, contiguous, on the CPU and of a kind Gloo
        // handles; `raw` is this group's live handle. The shim keeps its own reference to the
        // storage for as long as Gloo uses it.
        self.collective(Op::AllReduce, |raw, ms, err| unsafe {
            ffi::mmanet_c10d_allreduce_sum(raw, t, ms, err)
        })?;
        if op == ReduceOp::Mean {
            let world = self.config.world_size as f64;
            let _ = tensor
                .f_div_scalar_(world)
                .map_err(|e| DistError::Torch { op: Op::AllReduce, source: e })?;
        }
        Ok(())
    }

    /// Replaces `tensor` on every rank with rank `root`'s (same shape and kind everywhere,
    /// contiguous, on the CPU).
    pub fn broadcast(&mut self, tensor: &mut Tensor, root: usize) -> Result<(), DistError> {
        check_tensor(Op::Broadcast, tensor, self.config.cuda_device)?;
        if root >= self.config.world_size {
            return Err(DistError::Config(format!(
                "broadcast root {root} is not below the world size {}",
                self.config.world_size
            )));
        }
        let t = tensor.as_mut_ptr();
        // SAFETY: as in `all_reduce`; `root` < world size <= i32::MAX.
        self.collective(Op::Broadcast, |raw, ms, err| unsafe {
            ffi::mmanet_c10d_broadcast(raw, t, root as c_int, ms, err)
        })
    }

    /// Returns when every rank has called it, or fails after the timeout.
    pub fn barrier(&mut self) -> Result<(), DistError> {
        // SAFETY: `raw` is this group's live handle; the shim takes nothing else.
        self.collective(Op::Barrier, |raw, ms, err| unsafe {
            ffi::mmanet_c10d_barrier(raw, ms, err)
        })
    }

    /// Every rank's `value`, indexed by rank.
    pub fn all_gather_u64(&mut self, value: u64) -> Result<Vec<u64>, DistError> {
        // Moved as the bits of an i64 (libtorch has no u64 kind).
        let got = self.all_gather(Tensor::from_slice(&[value as i64]), Kind::Int64)?;
        let out = Vec::<i64>::try_from(&got).map_err(|e| torch(Op::AllGather, e))?;
        Ok(out.into_iter().map(|v| v as u64).collect())
    }

    /// Every rank's `value`, indexed by rank (bit for bit: NaN payloads and -0.0 survive).
    pub fn all_gather_f64(&mut self, value: f64) -> Result<Vec<f64>, DistError> {
        let got = self.all_gather(Tensor::from_slice(&[value]), Kind::Double)?;
        Vec::<f64>::try_from(&got).map_err(|e| torch(Op::AllGather, e))
    }

    /// Gathers a one-element tensor `[1]` from every rank into `[world]`.
    fn all_gather(&mut self, mut input: Tensor, kind: Kind) -> Result<Tensor, DistError> {
        let world = self.config.world_size as i64;
        let mut output = Tensor::f_zeros([world, 1], (kind, Device::Cpu))
            .map_err(|e| torch(Op::AllGather, e))?;
        check_tensor(Op::AllGather, &input, self.config.cuda_device)?;
        check_tensor(Op::AllGather, &output, self.config.cuda_device)?;
        let i = input.as_mut_ptr();
        let o = output.as_mut_ptr();
        // SAFETY: `i` and `o` are live, distinct, contiguous CPU tensors of this frame with the
        // same kind; `o` has `world` rows of `i`'s shape (the shim checks the row count again).
        self.collective(Op::AllGather, |raw, ms, err| unsafe {
            ffi::mmanet_c10d_allgather(raw, i, o, ms, err)
        })?;
        Ok(output.reshape([world]))
    }
}

impl ProcessGroup {
    /// A [`SyncBatchNorm`] over this group (a second handle on the same c10d group).
    pub fn sync_batch_norm(&self) -> Result<SyncBatchNorm, DistError> {
        let mut raw: *mut ffi::RawProcessGroup = ptr::null_mut();
        let this = self.raw.as_ptr();
        // SAFETY: `this` is this group's live handle; `raw` is a live local the shim writes
        // only on success (a new handle sharing the group by reference count).
        call(|err| unsafe { ffi::mmanet_c10d_pg_share(this, &mut raw, err) })
            .map_err(|message| self.sync_error(message))?;
        let raw = NonNull::new(raw).ok_or_else(|| self.sync_error("no handle".into()))?;
        Ok(SyncBatchNorm {
            raw,
            cuda: self.config.cuda_device,
            timeout: self.config.timeout,
            rank: self.config.rank,
            world_size: self.config.world_size,
        })
    }

    fn sync_error(&self, message: String) -> DistError {
        DistError::Collective {
            op: Op::SyncBatchNorm,
            rank: self.config.rank,
            world_size: self.config.world_size,
            timeout: self.config.timeout,
            message,
        }
    }
}

/// SyncBatchNorm's training-mode forward (`torch.nn.SyncBatchNorm`): the batch statistics of
/// every rank's batch together, through a C++ autograd function whose backward pass all-reduces
/// the input gradient's two sums. Every rank must call it for the same layers in the same order
/// (the forward and backward passes of identical networks do). CPU tensors go through Gloo,
/// CUDA tensors (on the group's CUDA device) through NCCL.
///
/// A collective failing in the backward pass surfaces as libtorch's backward error (tch's
/// `f_run_backward` returns it; `run_backward` panics); one failing in the forward pass is an
/// error here.
pub struct SyncBatchNorm {
    raw: NonNull<ffi::RawProcessGroup>,
    /// The group's NCCL device, if any (CUDA tensors must be on it).
    cuda: Option<usize>,
    timeout: Duration,
    rank: usize,
    world_size: usize,
}

// SAFETY: the handle shares a c10d group, which serialises its own work queue; nothing is tied
// to the creating thread. Concurrent forwards from two threads would be memory-safe but break
// the collective order, which the docs forbid as for `ProcessGroup`.
unsafe impl Send for SyncBatchNorm {}
// SAFETY: as above: `forward` only reads the Rust fields and enqueues c10d work.
unsafe impl Sync for SyncBatchNorm {}

impl SyncBatchNorm {
    /// Normalises `x` with the statistics over all ranks and updates the running statistics
    /// in place (PyTorch's rule: unbiased variance, `momentum`).
    ///
    /// With `rows`, the statistics are those of the rows with `rows[b] = 1` on every rank (the
    /// BatchNorm rule for placeholders, mmanet-models' `BatchNorm::forward_rows`): every row
    /// is normalised with them, and the running statistics stay unchanged when the kept values
    /// over all ranks number at most one. A rank may pass `None` (all its rows kept) while
    /// another passes rows. Without rows on any rank, fewer than two values per channel in all
    /// is an error, as in PyTorch.
    ///
    /// The autograd graph of the result refers to this handle's group: keep the handle alive
    /// until the backward pass of that graph has run (the trainer holds it for the run).
    ///
    /// # Shapes
    /// - `x`: `[B, C, ...]` (CPU, or the group's CUDA device) -> same shape;
    /// - `weight`, `bias`, `running_mean`, `running_var`: `[C]` on `x`'s device;
    /// - `rows`: `[B]`, 0/1, any float kind and device.
    #[allow(clippy::too_many_arguments)]
    pub fn forward(
        &self,
        x: &Tensor,
        weight: &Tensor,
        bias: &Tensor,
        running_mean: &Tensor,
        running_var: &Tensor,
        rows: Option<&Tensor>,
        momentum: f64,
        eps: f64,
    ) -> Result<Tensor, DistError> {
        let op = Op::SyncBatchNorm;
        check_tensor(op, &x.contiguous(), self.cuda)?;
        let size = x.size();
        let (b, c) = (size.first().copied().unwrap_or(0), size.get(1).copied().unwrap_or(0));
        for (name, t) in [("weight", weight), ("bias", bias), ("running_mean", running_mean)]
            .into_iter()
            .chain([("running_var", running_var)])
        {
            if t.size() != [c] || t.device() != x.device() {
                return Err(DistError::InvalidTensor {
                    op,
                    reason: format!(
                        "{name} must be [{c}] on {:?}, got {:?} on {:?}",
                        x.device(),
                        t.size(),
                        t.device()
                    ),
                });
            }
        }
        if let Some(r) = rows {
            if r.size() != [b] {
                return Err(DistError::InvalidTensor {
                    op,
                    reason: format!(
                        "rows must be [{b}] for a batch of {size:?}, got {:?}",
                        r.size()
                    ),
                });
            }
        }
        let mut out: *mut torch_sys::C_tensor = ptr::null_mut();
        let raw = self.raw.as_ptr();
        let ptrs = [x, weight, bias, running_mean, running_var].map(Tensor::as_ptr);
        let rows = rows.map_or(ptr::null_mut(), |r| r.as_ptr() as *mut torch_sys::C_tensor);
        // SAFETY: every pointer is a live at::Tensor borrowed for this call, or null for
        // `rows` (checked shapes and device above; the shim only reads them and updates the
        // running statistics in place, as `Tensor::batch_norm` does); `raw` is this handle's
        // live group; on success `out` holds a new at::Tensor the Rust side now owns.
        call(|err| unsafe {
            ffi::mmanet_c10d_sync_batch_norm(
                raw,
                ptrs[0] as *mut _,
                ptrs[1] as *mut _,
                ptrs[2] as *mut _,
                ptrs[3] as *mut _,
                ptrs[4] as *mut _,
                rows,
                momentum,
                eps,
                timeout_ms(self.timeout),
                &mut out,
                err,
            )
        })
        .map_err(|message| DistError::Collective {
            op,
            rank: self.rank,
            world_size: self.world_size,
            timeout: self.timeout,
            message,
        })?;
        if out.is_null() {
            return Err(DistError::InvalidTensor {
                op,
                reason: "the shim returned no tensor".into(),
            });
        }
        // SAFETY: `out` is a heap at::Tensor the shim allocated with `new` for us, as tch's own
        // wrappers hand them out; `from_ptr` takes ownership exactly once.
        Ok(unsafe { Tensor::from_ptr(out) })
    }
}

impl Drop for SyncBatchNorm {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `mmanet_c10d_pg_share` and is freed exactly once, here (the
        // group itself lives on while another handle holds it).
        unsafe { ffi::mmanet_c10d_pg_free(self.raw.as_ptr()) };
    }
}

impl std::fmt::Debug for SyncBatchNorm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncBatchNorm").field("rank", &self.rank).finish()
    }
}

fn torch(op: Op, source: tch::TchError) -> DistError {
    DistError::Torch { op, source }
}

fn init_error(config: &Config, message: String) -> DistError {
    DistError::Collective {
        op: Op::Init,
        rank: config.rank,
        world_size: config.world_size,
        timeout: config.timeout,
        message: format!(
            "rendezvous at {}:{} ({:?}): {message}",
            config.master_addr, config.master_port, config.store
        ),
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `mmanet_c10d_pg_new` and is freed exactly once, here; no
        // collective is running (they all take `&mut self` and finish before returning).
        unsafe { ffi::mmanet_c10d_pg_free(self.raw.as_ptr()) };
    }
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("rank", &self.config.rank)
            .field("world_size", &self.config.world_size)
            .field("broken", &self.broken.is_some())
            .finish()
    }
}

/// A TCPStore server that waits for no worker: what torchrun's agent hosts
/// (`TORCHELASTIC_USE_AGENT_STORE=True`), for a launcher that spawns its own workers, which then
/// all join as clients. Dropping it stops the server.
pub struct StoreHost {
    raw: NonNull<ffi::RawStore>,
    port: u16,
}

// SAFETY: the handle owns a c10d TCPStore whose server runs on its own thread; nothing is tied
// to the creating thread, and the Rust side only reads `port`.
unsafe impl Send for StoreHost {}

impl StoreHost {
    /// Listens on `port` of every interface (0: a free port, see [`StoreHost::port`]).
    pub fn bind(port: u16, timeout: Duration) -> Result<Self, DistError> {
        let mut raw: *mut ffi::RawStore = ptr::null_mut();
        let mut bound: u16 = 0;
        // SAFETY: the out-pointers are live locals; the shim writes them only on success.
        let result = call(|err| unsafe {
            ffi::mmanet_c10d_store_host_new(port, timeout_ms(timeout), &mut raw, &mut bound, err)
        });
        let host_error = |message: String| DistError::Collective {
            op: Op::HostStore,
            rank: 0,
            world_size: 0,
            timeout,
            message: format!("port {port}: {message}"),
        };
        match result.map(|()| NonNull::new(raw)) {
            Ok(Some(raw)) => {
                tracing::info!(port = bound, "hosting a TCPStore");
                Ok(StoreHost { raw, port: bound })
            }
            Ok(None) => Err(host_error("the shim returned no handle".into())),
            Err(message) => Err(host_error(message)),
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for StoreHost {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `mmanet_c10d_store_host_new` and is freed exactly once, here.
        unsafe { ffi::mmanet_c10d_store_free(self.raw.as_ptr()) };
    }
}

impl std::fmt::Debug for StoreHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHost").field("port", &self.port).finish()
    }
}
