// The C ABI over libtorch's c10d that mmanet-sys's Rust code calls: a TCPStore rendezvous and a
// ProcessGroupGloo, with in-place all-reduce (sum), broadcast, barrier and all-gather; built
// against the CUDA libtorch (MMANET_WITH_NCCL), also a ProcessGroupNCCL on the same store
// (keys under "nccl/") that takes every collective on CUDA tensors.
//
// Rules every function here keeps:
// - no C++ exception crosses the boundary: each entry point catches everything and returns
//   MMANET_C10D_ERR with a message written into a malloc'd C string (freed by
//   mmanet_c10d_string_free);
// - tensors cross as `at::Tensor*` (tch's `C_tensor`), borrowed for the call only; the work
//   object keeps its own reference, so a tensor's storage outlives a collective that is still
//   running after a timed-out wait;
// - every collective gets an explicit timeout: the Gloo algorithm's own (it throws when a peer
//   does not answer in time) and, a little later, the wait on the work.
//
// One translation unit on purpose: the c10d headers are heavy (about 25 s to compile).

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include <c10/util/Exception.h>
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#include <torch/csrc/distributed/c10d/Types.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/csrc/autograd/custom_function.h>
#ifdef MMANET_WITH_NCCL
#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif
#ifdef MMANET_WITH_CUDA
#include <optional>

#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

// The handles the C ABI hands out (opaque to Rust).
struct mmanet_c10d_pg {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank;
  int world;
  // CUDA tensors' backend (null without NCCL or without a CUDA device).
  c10::intrusive_ptr<c10d::Backend> nccl;
};

struct mmanet_c10d_store {
  c10::intrusive_ptr<c10d::TCPStore> store;
};

// A CUDA graph captured on its own side stream of `device` (the work queued before the capture
// is waited for first, as torch.cuda.graph does) and replayed on the caller's current stream.
struct mmanet_cuda_graph {
#ifdef MMANET_WITH_CUDA
  explicit mmanet_cuda_graph(c10::DeviceIndex d)
      : device(d), stream(c10::cuda::getStreamFromPool(false, d)) {}
  c10::DeviceIndex device;
  c10::cuda::CUDAStream stream;
  at::cuda::CUDAGraph graph;
  std::optional<c10::cuda::CUDAStreamGuard> guard;  // set while capturing
  bool captured = false;
#endif
};

namespace {

constexpr int kOk = 0;
constexpr int kErr = 1;

char* dup_string(const std::string& s) {
  char* out = static_cast<char*>(std::malloc(s.size() + 1));
  if (out != nullptr) {
    std::memcpy(out, s.c_str(), s.size() + 1);
  }
  return out;
}

void set_error(char** err, const std::string& message) {
  if (err != nullptr) {
    *err = dup_string(message);
  }
}

// Runs `body`, turning any exception into an error code and message.
template <typename F>
int guarded(char** err, F&& body) {
  try {
    body();
    return kOk;
  } catch (const c10::Error& e) {
    set_error(err, e.what_without_backtrace());
  } catch (const std::exception& e) {
    set_error(err, e.what());
  } catch (...) {
    set_error(err, "unknown C++ exception");
  }
  return kErr;
}

std::chrono::milliseconds ms(int64_t v) {
  return std::chrono::milliseconds(v);
}

// The extra time the wait on a work object allows beyond the Gloo algorithm's own timeout, so
// that the algorithm's error (which names what timed out) normally arrives first.
std::chrono::milliseconds wait_limit(int64_t timeout_ms) {
  return ms(timeout_ms + std::max<int64_t>(1000, timeout_ms / 4));
}

void wait_for(const c10::intrusive_ptr<c10d::Work>& work, int64_t timeout_ms) {
  // Work::wait rethrows the algorithm's exception; with a finite limit it throws
  // "Operation timed out!" if the work has not completed by then.
  work->wait(wait_limit(timeout_ms));
}

// The backend of a collective on `t`: NCCL for CUDA tensors, Gloo otherwise.
c10d::Backend& backend_for(mmanet_c10d_pg* pg, const at::Tensor& t) {
  if (t.is_cuda()) {
    TORCH_CHECK(pg->nccl, "a collective on a CUDA tensor needs the NCCL backend, which this "
                "process group does not have (",
#ifdef MMANET_WITH_NCCL
                "it was joined without a CUDA device)");
#else
                "mmanet-sys was built against a CPU libtorch: `cargo xtask setup --cuda`)");
#endif
    return *pg->nccl;
  }
  return *pg->pg;
}

std::shared_ptr<::gloo::transport::Device> make_device(const char* kind, const char* value) {
  const std::string k = kind == nullptr ? "" : kind;
  const std::string v = value == nullptr ? "" : value;
  if (k == "interface") {
    return c10d::ProcessGroupGloo::createDeviceForInterface(v);
  }
  if (k == "hostname") {
    return c10d::ProcessGroupGloo::createDeviceForHostname(v);
  }
  if (k == "default") {
    return c10d::ProcessGroupGloo::createDefaultDevice();
  }
  TORCH_CHECK(false, "unknown Gloo device kind `", k, "` (interface, hostname, default)");
}

// SyncBatchNorm's autograd function: batch statistics summed over the ranks in the forward
// pass, the two gradient sums of the input's gradient summed over the ranks in the backward
// pass (torch.nn.SyncBatchNorm's arithmetic; the statistics in f64). The weight's and bias's
// gradients stay local: the data-parallel gradient mean averages them like every parameter.
// `pg_addr` is a mmanet_c10d_pg* the caller keeps alive until the backward pass has run.
//
// With `rows` defined ([B], 0/1: the BatchNorm rule for placeholders, mmanet-models'
// `BatchNorm::forward_rows`), the statistics are those of the rows with `rows[b] = 1` on every
// rank; every row is normalised with them, and the running statistics stay unchanged when the
// kept values number at most one. Without `masked`, `rows` is an empty placeholder (autograd
// functions take defined tensors only) and every row counts. When no rank passed rows, fewer
// than two values in all is an error, as in PyTorch; the ranks passing rows are counted in the
// same all-reduce, so every rank takes the same decision.
struct SyncBatchNormFn : public torch::autograd::Function<SyncBatchNormFn> {
  static std::vector<int64_t> reduced_dims(const at::Tensor& x) {
    std::vector<int64_t> dims;
    for (int64_t d = 0; d < x.dim(); ++d) {
      if (d != 1) dims.push_back(d);
    }
    return dims;
  }

  static std::vector<int64_t> channel_shape(const at::Tensor& x) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[1] = x.size(1);
    return shape;
  }

  // `rows` [B] as a [B, 1, ..., 1] tensor of `x`'s rank.
  static at::Tensor row_weights(const at::Tensor& rows, const at::Tensor& x) {
    std::vector<int64_t> shape(x.dim(), 1);
    shape[0] = x.size(0);
    return rows.view(shape);
  }

  static void allreduce(int64_t pg_addr, at::Tensor& t, int64_t timeout_ms) {
    auto* pg = reinterpret_cast<mmanet_c10d_pg*>(pg_addr);
    TORCH_CHECK(pg != nullptr, "SyncBatchNorm without a process group");
    std::vector<at::Tensor> tensors{t};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = ms(timeout_ms);
    wait_for(backend_for(pg, t).allreduce(tensors, o), timeout_ms);
  }

  static at::Tensor forward(torch::autograd::AutogradContext* ctx, at::Tensor x,
                            at::Tensor weight, at::Tensor bias, at::Tensor running_mean,
                            at::Tensor running_var, at::Tensor rows, bool masked,
                            double momentum, double eps, int64_t pg_addr, int64_t timeout_ms) {
    TORCH_CHECK(x.dim() >= 2, "SyncBatchNorm input needs [B, C, ...], got ", x.sizes());
    const int64_t c = x.size(1);
    TORCH_CHECK(!masked || (rows.dim() == 1 && rows.size(0) == x.size(0)),
                "SyncBatchNorm rows must be [", x.size(0), "], got ", rows.sizes());
    const auto dims = reduced_dims(x);
    const auto shape = channel_shape(x);
    at::Tensor xd = x.to(at::kDouble);
    // The row weights [B, 1, ..., 1] in f64 (0/1, so exact in every kind).
    const at::Tensor w = masked ? row_weights(rows.detach().to(xd.options()), xd) : at::Tensor();
    at::Tensor stats;
    if (masked) {
      at::Tensor xw = xd * w;
      const double spatial = static_cast<double>(x.numel() / std::max<int64_t>(1, x.size(0) * c));
      stats = at::cat({xw.sum(dims), (xw * xd).sum(dims), (w.sum() * spatial).view({1}),
                       at::ones({1}, xd.options())});
    } else {
      stats = at::cat({xd.sum(dims), (xd * xd).sum(dims),
                       at::full({1}, static_cast<double>(x.numel() / c), xd.options()),
                       at::zeros({1}, xd.options())});
    }
    stats = stats.contiguous();  // [2C + 2]: sums, sums of squares, count, ranks with rows
    allreduce(pg_addr, stats, timeout_ms);
    const at::Tensor tail = stats.slice(0, 2 * c).cpu();
    const double n = tail[0].item<double>();
    const bool any_masked = tail[1].item<double>() > 0;
    TORCH_CHECK(any_masked || n > 1,
                "SyncBatchNorm needs more than one value per channel over all ranks");
    const double denom = std::max(n, 1.0);
    at::Tensor mean = stats.slice(0, 0, c) / denom;
    at::Tensor var = (stats.slice(0, c, 2 * c) / denom - mean * mean).clamp_min(0);
    if (n > 1) {
      at::NoGradGuard no_grad;
      running_mean.mul_(1 - momentum).add_(mean.to(running_mean.scalar_type()) * momentum);
      running_var.mul_(1 - momentum)
          .add_((var * (n / (n - 1))).to(running_var.scalar_type()) * momentum);
    }
    at::Tensor invstd = (var + eps).rsqrt().to(x.scalar_type());
    at::Tensor xhat = (x - mean.to(x.scalar_type()).view(shape)) * invstd.view(shape);
    at::Tensor kept = masked ? w.to(x.scalar_type()) : at::empty({0}, x.options());
    ctx->save_for_backward({xhat, weight, invstd, kept});
    ctx->saved_data["pg"] = pg_addr;
    ctx->saved_data["n"] = denom;
    ctx->saved_data["masked"] = masked;
    ctx->saved_data["timeout"] = timeout_ms;
    return xhat * weight.view(shape) + bias.view(shape);
  }

  // With row weights w (1 without rows) and the statistics' count n, for every row:
  // dx = invstd * weight * (dy - w * mean(dy) - w * xhat * mean(dy * xhat)), where the two
  // means are sums over every row of every rank divided by n (every row is normalised with
  // the kept rows' statistics, so every row's output depends on them).
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    at::Tensor xhat = saved[0], weight = saved[1], invstd = saved[2], kept = saved[3];
    at::Tensor dy = grads[0];
    const int64_t c = xhat.size(1);
    const auto dims = reduced_dims(xhat);
    const auto shape = channel_shape(xhat);
    at::Tensor sum_dy = dy.sum(dims);
    at::Tensor sum_dy_xhat = (dy * xhat).sum(dims);
    at::Tensor both = at::cat({sum_dy, sum_dy_xhat}).contiguous();
    allreduce(ctx->saved_data["pg"].toInt(), both, ctx->saved_data["timeout"].toInt());
    const double n = ctx->saved_data["n"].toDouble();
    at::Tensor mean_dy = (both.slice(0, 0, c) / n).view(shape);
    at::Tensor mean_dy_xhat = (both.slice(0, c, 2 * c) / n).view(shape);
    at::Tensor centred = ctx->saved_data["masked"].toBool()
                             ? dy - kept * (mean_dy + xhat * mean_dy_xhat)
                             : dy - mean_dy - xhat * mean_dy_xhat;
    at::Tensor dx = centred * (invstd * weight).view(shape);
    return {dx,          sum_dy_xhat, sum_dy,      at::Tensor(), at::Tensor(), at::Tensor(),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

}  // namespace

extern "C" {

// A second handle on the same process group (its store and Gloo group shared by reference).
int mmanet_c10d_pg_share(mmanet_c10d_pg* pg, mmanet_c10d_pg** out, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr && out != nullptr, "null argument");
    *out = new mmanet_c10d_pg{pg->store, pg->pg, pg->rank, pg->world, pg->nccl};
  });
}

// SyncBatchNorm in training mode: `*out` gets a new tensor (tch's ownership) with autograd
// through x, weight and bias; the running statistics are updated in place. `rows` may be null
// (every row counts) or [B] 0/1 (the statistics of the kept rows, SyncBatchNormFn).
int mmanet_c10d_sync_batch_norm(mmanet_c10d_pg* pg, at::Tensor* x, at::Tensor* weight,
                                at::Tensor* bias, at::Tensor* running_mean,
                                at::Tensor* running_var, at::Tensor* rows, double momentum,
                                double eps, int64_t timeout_ms, at::Tensor** out, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr && x != nullptr && weight != nullptr && bias != nullptr &&
                    running_mean != nullptr && running_var != nullptr && out != nullptr,
                "null argument");
    const bool masked = rows != nullptr;
    const at::Tensor kept = masked ? *rows : at::empty({0}, x->options());
    at::Tensor y = SyncBatchNormFn::apply(*x, *weight, *bias, *running_mean, *running_var, kept,
                                          masked, momentum, eps, reinterpret_cast<int64_t>(pg),
                                          timeout_ms);
    *out = new at::Tensor(std::move(y));
  });
}


void mmanet_c10d_string_free(char* s) {
  std::free(s);
}

// Connects to (rank 0 with `host_store`: hosts) the TCPStore at addr:port, optionally behind a
// key prefix, and builds a Gloo process group of `world` ranks over it with one Gloo device.
// With `cuda_device >= 0` it also makes that device current and builds a ProcessGroupNCCL
// over the same store (NCCL's communicators are created at its first collective).
int mmanet_c10d_pg_new(const char* addr, uint16_t port, int rank, int world, int host_store,
                       const char* key_prefix, int64_t timeout_ms, const char* device_kind,
                       const char* device_value, int threads, int cuda_device,
                       mmanet_c10d_pg** out, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(out != nullptr, "null output handle");
    *out = nullptr;
    c10d::TCPStoreOptions so;
    so.port = port;
    so.isServer = host_store != 0;
    so.numWorkers = static_cast<std::size_t>(world);
    // Every rank counts itself in (clients return at once; the host blocks until all `world`
    // have, or the timeout expires): a client that skipped this would leave the host waiting.
    so.waitWorkers = true;
    so.timeout = ms(timeout_ms);
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(std::string(addr), so);
    if (key_prefix != nullptr && key_prefix[0] != '\0') {
      store = c10::make_intrusive<c10d::PrefixStore>(std::string(key_prefix), store);
    }
    auto opts = c10d::ProcessGroupGloo::Options::create(ms(timeout_ms));
    opts->devices.push_back(make_device(device_kind, device_value));
    opts->threads = threads;
    auto pg = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, opts);
    auto handle = std::make_unique<mmanet_c10d_pg>();
    handle->store = store;
    handle->pg = pg;
    handle->rank = rank;
    handle->world = world;
    if (cuda_device >= 0) {
#ifdef MMANET_WITH_NCCL
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(cuda_device));
      auto nccl_opts = c10d::ProcessGroupNCCL::Options::create();
      nccl_opts->timeout = ms(timeout_ms);
      auto nccl_store = c10::make_intrusive<c10d::PrefixStore>("nccl", store);
      handle->nccl = c10::make_intrusive<c10d::ProcessGroupNCCL>(nccl_store, rank, world, nccl_opts);
#else
      TORCH_CHECK(false, "NCCL for cuda:", cuda_device, " is not built: mmanet-sys was built "
                  "against a CPU libtorch (`cargo xtask setup --cuda` installs the CUDA one)");
#endif
    }
    *out = handle.release();
  });
}

// Hosts a TCPStore server on `port` of every interface (0: a free port, reported in
// `*bound_port`) without waiting for workers: the role torchrun's agent plays
// (TORCHELASTIC_USE_AGENT_STORE), so that every rank connects as a client.
int mmanet_c10d_store_host_new(uint16_t port, int64_t timeout_ms, mmanet_c10d_store** out,
                               uint16_t* bound_port, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(out != nullptr && bound_port != nullptr, "null output");
    *out = nullptr;
    c10d::TCPStoreOptions so;
    so.port = port;
    so.isServer = true;
    so.waitWorkers = false;
    so.timeout = ms(timeout_ms);
    auto store = c10::make_intrusive<c10d::TCPStore>(std::string("0.0.0.0"), so);
    auto handle = std::make_unique<mmanet_c10d_store>();
    *bound_port = store->getPort();
    handle->store = store;
    *out = handle.release();
  });
}

void mmanet_c10d_store_free(mmanet_c10d_store* store) {
  try {
    delete store;  // stops the server thread
  } catch (...) {
  }
}

void mmanet_c10d_pg_free(mmanet_c10d_pg* pg) {
  try {
    delete pg;  // joins the Gloo worker threads
  } catch (...) {
    // a destructor that throws has nothing left to report to
  }
}

// In-place sum of `tensor` (dense, contiguous; CPU: Gloo, CUDA: NCCL) over all ranks.
int mmanet_c10d_allreduce_sum(mmanet_c10d_pg* pg, at::Tensor* tensor, int64_t timeout_ms,
                              char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr && tensor != nullptr, "null argument");
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = ms(timeout_ms);
    wait_for(backend_for(pg, *tensor).allreduce(tensors, o), timeout_ms);
  });
}

// In-place broadcast of `tensor` from `root` to every rank.
int mmanet_c10d_broadcast(mmanet_c10d_pg* pg, at::Tensor* tensor, int root, int64_t timeout_ms,
                          char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr && tensor != nullptr, "null argument");
    std::vector<at::Tensor> tensors{*tensor};
    c10d::BroadcastOptions o;
    o.rootRank = root;
    o.rootTensor = 0;
    o.timeout = ms(timeout_ms);
    wait_for(backend_for(pg, *tensor).broadcast(tensors, o), timeout_ms);
  });
}

int mmanet_c10d_barrier(mmanet_c10d_pg* pg, int64_t timeout_ms, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr, "null argument");
    c10d::BarrierOptions o;
    o.timeout = ms(timeout_ms);
    wait_for(pg->pg->barrier(o), timeout_ms);
  });
}

// Gathers `input` ([N], contiguous, CPU) from every rank into `output` ([world, N], same kind):
// row r is rank r's input.
int mmanet_c10d_allgather(mmanet_c10d_pg* pg, at::Tensor* input, at::Tensor* output,
                          int64_t timeout_ms, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr && input != nullptr && output != nullptr, "null argument");
    TORCH_CHECK(output->dim() >= 1 && output->size(0) == pg->world,
                "all-gather output needs world size rows");
    std::vector<at::Tensor> inputs{*input};
    std::vector<std::vector<at::Tensor>> outputs(1);
    for (int r = 0; r < pg->world; ++r) {
      outputs[0].push_back(output->select(0, r));
    }
    c10d::AllgatherOptions o;
    o.timeout = ms(timeout_ms);
    wait_for(backend_for(pg, *input).allgather(outputs, inputs, o), timeout_ms);
  });
}

#ifndef MMANET_WITH_CUDA
#define MMANET_NO_CUDA_MESSAGE                                                              \
  "CUDA graphs are not built: mmanet-sys was built against a CPU libtorch (`cargo xtask " \
  "setup --cuda` installs the CUDA one)"
#endif

// A new, empty graph for CUDA device `device`.
int mmanet_cuda_graph_new(int device, mmanet_cuda_graph** out, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(out != nullptr, "null output handle");
    *out = nullptr;
#ifdef MMANET_WITH_CUDA
    auto n = static_cast<int>(c10::cuda::device_count());
    TORCH_CHECK(device >= 0 && device < n, "no CUDA device ", device, " (", n, " visible)");
    *out = new mmanet_cuda_graph(static_cast<c10::DeviceIndex>(device));
#else
    TORCH_CHECK(false, MMANET_NO_CUDA_MESSAGE, " (device ", device, ")");
#endif
  });
}

// Starts recording: the side stream waits for the caller's current stream, becomes current,
// and the graph starts capturing what is queued on it.
int mmanet_cuda_graph_capture_begin(mmanet_cuda_graph* g, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(g != nullptr, "null graph");
#ifdef MMANET_WITH_CUDA
    TORCH_CHECK(!g->captured && !g->guard, "a graph is captured once");
    at::cuda::CUDAEvent queued;
    queued.record(c10::cuda::getCurrentCUDAStream(g->device));
    queued.block(g->stream);
    g->guard.emplace(g->stream);
    try {
      // Thread-local error mode: the data loader's threads may pin host memory while a
      // training step is captured (global mode would fail their cudaHostAlloc); work that
      // other threads queue on the capturing stream (autograd's device thread) is captured.
      g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
    } catch (...) {
      g->guard.reset();
      throw;
    }
#else
    TORCH_CHECK(false, MMANET_NO_CUDA_MESSAGE);
#endif
  });
}

// Ends recording (restoring the caller's current stream even when the capture failed).
int mmanet_cuda_graph_capture_end(mmanet_cuda_graph* g, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(g != nullptr, "null graph");
#ifdef MMANET_WITH_CUDA
    TORCH_CHECK(g->guard.has_value(), "capture_end without capture_begin");
    try {
      g->graph.capture_end();
    } catch (...) {
      g->guard.reset();
      throw;
    }
    g->guard.reset();
    g->captured = true;
#else
    TORCH_CHECK(false, MMANET_NO_CUDA_MESSAGE);
#endif
  });
}

// Replays the captured work on the caller's current stream.
int mmanet_cuda_graph_replay(mmanet_cuda_graph* g, char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(g != nullptr, "null graph");
#ifdef MMANET_WITH_CUDA
    TORCH_CHECK(g->captured, "replay before a capture");
    g->graph.replay();
#else
    TORCH_CHECK(false, MMANET_NO_CUDA_MESSAGE);
#endif
  });
}

void mmanet_cuda_graph_free(mmanet_cuda_graph* g) {
  try {
    delete g;  // frees the graph and its memory pool's hold
  } catch (...) {
  }
}

// 1 when the shim was built with the NCCL backend (against the CUDA libtorch), else 0.
int mmanet_c10d_nccl_built(void) {
#ifdef MMANET_WITH_NCCL
  return 1;
#else
  return 0;
#endif
}

}  // extern "C"
