//! [`CudaGraph`]: libtorch's `at::cuda::CUDAGraph` from Rust (tch exposes none): capture the
//! CUDA work a closure queues once, on a side stream, then replay it with one launch.
//!
//! Available when mmanet-sys is built against the full CUDA install ([`cuda_graphs_built`]);
//! elsewhere [`CudaGraph::new`] returns an error saying so.
#![allow(unsafe_code)]

use std::ptr::{self, NonNull};

use crate::ffi;
use crate::group::call;

/// A failed graph call: the step and libtorch's message.
#[derive(Debug, thiserror::Error)]
#[error("CUDA graph {step}: {message}")]
pub struct GraphError {
    /// `new`, `capture` or `replay`.
    pub step: &'static str,
    /// What libtorch (or the shim) said.
    pub message: String,
}

/// Whether the shim was built with CUDA graphs (against the full CUDA install).
pub fn cuda_graphs_built() -> bool {
    crate::nccl_built() // one build: the full CUDA install brings both
}

/// The CUDA device index of `device` (what [`CudaGraph::new`] takes); `None` off CUDA, where
/// nothing is captured.
pub fn cuda_index(device: tch::Device) -> Option<usize> {
    match device {
        tch::Device::Cuda(i) => Some(i),
        tch::Device::Cpu | tch::Device::Mps | tch::Device::Vulkan => None,
    }
}

/// A CUDA graph of one device: captured once, replayed any number of times.
///
/// What the capture records are kernel launches on fixed memory: tensors the captured work
/// reads must be refilled in place (`copy_`) between replays, and tensors it writes are
/// overwritten in place by each replay. Work that needs the host (`.item()`, a
/// synchronisation, a new allocation outside the graph's memory pool) fails the capture.
pub struct CudaGraph {
    raw: NonNull<ffi::RawCudaGraph>,
    captured: bool,
}

// SAFETY: the handle owns an `at::cuda::CUDAGraph` and a stream object, neither tied to the
// creating thread; not `Sync`, since capture and replay change the thread's current stream.
unsafe impl Send for CudaGraph {}

impl CudaGraph {
    /// An empty graph for CUDA device `device`.
    pub fn new(device: usize) -> Result<Self, GraphError> {
        let device = i32::try_from(device).map_err(|_| GraphError {
            step: "new",
            message: format!("device index {device} out of range"),
        })?;
        let mut raw: *mut ffi::RawCudaGraph = ptr::null_mut();
        // SAFETY: `&mut raw` outlives the call; the shim writes it only on success.
        call(|err| unsafe { ffi::mmanet_cuda_graph_new(device, &mut raw, err) })
            .map_err(|message| GraphError { step: "new", message })?;
        let raw = NonNull::new(raw)
            .ok_or_else(|| GraphError { step: "new", message: "no handle".into() })?;
        Ok(CudaGraph { raw, captured: false })
    }

    /// Records the CUDA work `work` queues (it runs once, on the graph's side stream; its
    /// kernels are recorded, not executed). A graph is captured once. A panic in `work`
    /// ends the capture before it unwinds further.
    pub fn capture<R>(&mut self, work: impl FnOnce() -> R) -> Result<R, GraphError> {
        if self.captured {
            return Err(GraphError { step: "capture", message: "a graph is captured once".into() });
        }
        let raw = self.raw.as_ptr();
        // SAFETY: `raw` is this handle's live graph.
        call(|err| unsafe { ffi::mmanet_cuda_graph_capture_begin(raw, err) })
            .map_err(|message| GraphError { step: "capture", message })?;
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work));
        // SAFETY: as above; ends the capture begun above, whatever `work` did.
        let ended = call(|err| unsafe { ffi::mmanet_cuda_graph_capture_end(raw, err) });
        let value = match result {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        ended.map_err(|message| GraphError { step: "capture", message })?;
        self.captured = true;
        Ok(value)
    }

    /// Launches the captured work on the current stream.
    pub fn replay(&self) -> Result<(), GraphError> {
        let raw = self.raw.as_ptr();
        // SAFETY: `raw` is this handle's live graph.
        call(|err| unsafe { ffi::mmanet_cuda_graph_replay(raw, err) })
            .map_err(|message| GraphError { step: "replay", message })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        // SAFETY: `raw` came from `mmanet_cuda_graph_new` and is freed exactly once, here.
        unsafe { ffi::mmanet_cuda_graph_free(self.raw.as_ptr()) };
    }
}

impl std::fmt::Debug for CudaGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaGraph").field("captured", &self.captured).finish()
    }
}
