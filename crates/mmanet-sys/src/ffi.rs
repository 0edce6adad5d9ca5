//! Declarations of `cpp/c10d_shim.cpp`'s C ABI. Nothing here is public: [`crate::ProcessGroup`],
//! [`crate::StoreHost`] and [`crate::CudaGraph`] are the only callers.
//!
//! Every function that can fail returns [`OK`] or an error code and then writes a `malloc`'d,
//! NUL-terminated message to `*err`, which the caller frees with [`mmanet_c10d_string_free`].
//! No C++ exception crosses this boundary (the shim catches everything).

use std::ffi::{c_char, c_int};

use torch_sys::C_tensor;

/// The status of a successful call.
pub(crate) const OK: c_int = 0;

/// Opaque: a TCPStore client (or server, on the hosting rank) and a `ProcessGroupGloo`.
#[repr(C)]
pub(crate) struct RawProcessGroup {
    _private: [u8; 0],
}

/// Opaque: a hosted TCPStore server.
#[repr(C)]
pub(crate) struct RawStore {
    _private: [u8; 0],
}

/// Opaque: an `at::cuda::CUDAGraph` with its capture stream.
#[repr(C)]
pub(crate) struct RawCudaGraph {
    _private: [u8; 0],
}

unsafe extern "C" {
    pub(crate) fn mmanet_c10d_string_free(s: *mut c_char);

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mmanet_c10d_pg_new(
        addr: *const c_char,
        port: u16,
        rank: c_int,
        world: c_int,
        host_store: c_int,
        key_prefix: *const c_char,
        timeout_ms: i64,
        device_kind: *const c_char,
        device_value: *const c_char,
        threads: c_int,
        cuda_device: c_int,
        out: *mut *mut RawProcessGroup,
        err: *mut *mut c_char,
    ) -> c_int;

    /// 1 when the shim was compiled with the NCCL backend.
    pub(crate) fn mmanet_c10d_nccl_built() -> c_int;

    pub(crate) fn mmanet_cuda_graph_new(
        device: c_int,
        out: *mut *mut RawCudaGraph,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn mmanet_cuda_graph_capture_begin(
        g: *mut RawCudaGraph,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn mmanet_cuda_graph_capture_end(
        g: *mut RawCudaGraph,
        err: *mut *mut c_char,
    ) -> c_int;
    pub(crate) fn mmanet_cuda_graph_replay(g: *mut RawCudaGraph, err: *mut *mut c_char) -> c_int;
    pub(crate) fn mmanet_cuda_graph_free(g: *mut RawCudaGraph);

    pub(crate) fn mmanet_c10d_pg_free(pg: *mut RawProcessGroup);

    pub(crate) fn mmanet_c10d_store_host_new(
        port: u16,
        timeout_ms: i64,
        out: *mut *mut RawStore,
        bound_port: *mut u16,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn mmanet_c10d_store_free(store: *mut RawStore);

    pub(crate) fn mmanet_c10d_allreduce_sum(
        pg: *mut RawProcessGroup,
        tensor: *mut C_tensor,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn mmanet_c10d_broadcast(
        pg: *mut RawProcessGroup,
        tensor: *mut C_tensor,
        root: c_int,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn mmanet_c10d_barrier(
        pg: *mut RawProcessGroup,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn mmanet_c10d_allgather(
        pg: *mut RawProcessGroup,
        input: *mut C_tensor,
        output: *mut C_tensor,
        timeout_ms: i64,
        err: *mut *mut c_char,
    ) -> c_int;

    pub(crate) fn mmanet_c10d_pg_share(
        pg: *mut RawProcessGroup,
        out: *mut *mut RawProcessGroup,
        err: *mut *mut c_char,
    ) -> c_int;

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn mmanet_c10d_sync_batch_norm(
        pg: *mut RawProcessGroup,
        x: *mut C_tensor,
        weight: *mut C_tensor,
        bias: *mut C_tensor,
        running_mean: *mut C_tensor,
        running_var: *mut C_tensor,
        rows: *mut C_tensor,
        momentum: f64,
        eps: f64,
        timeout_ms: i64,
        out: *mut *mut C_tensor,
        err: *mut *mut c_char,
    ) -> c_int;
}
