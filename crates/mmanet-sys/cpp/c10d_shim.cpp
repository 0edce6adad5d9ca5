// The C ABI over libtorch's c10d that mmanet-sys's Rust code calls: a TCPStore rendezvous and a
// ProcessGroupGloo, with in-place all-reduce (sum), broadcast, barrier and all-gather.
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

// The handles the C ABI hands out (opaque to Rust).
struct mmanet_c10d_pg {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::ProcessGroupGloo> pg;
  int rank;
  int world;
};

struct mmanet_c10d_store {
  c10::intrusive_ptr<c10d::TCPStore> store;
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

}  // namespace

extern "C" {


void mmanet_c10d_string_free(char* s) {
  std::free(s);
}

// Connects to (rank 0 with `host_store`: hosts) the TCPStore at addr:port, optionally behind a
// key prefix, and builds a Gloo process group of `world` ranks over it with one Gloo device.
int mmanet_c10d_pg_new(const char* addr, uint16_t port, int rank, int world, int host_store,
                       const char* key_prefix, int64_t timeout_ms, const char* device_kind,
                       const char* device_value, int threads, mmanet_c10d_pg** out,
                       char** err) {
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

// In-place sum of `tensor` (dense, contiguous, CPU) over all ranks.
int mmanet_c10d_allreduce_sum(mmanet_c10d_pg* pg, at::Tensor* tensor, int64_t timeout_ms,
                              char** err) {
  return guarded(err, [&] {
    TORCH_CHECK(pg != nullptr && tensor != nullptr, "null argument");
    std::vector<at::Tensor> tensors{*tensor};
    c10d::AllreduceOptions o;
    o.reduceOp = c10d::ReduceOp::SUM;
    o.timeout = ms(timeout_ms);
    wait_for(pg->pg->allreduce(tensors, o), timeout_ms);
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
    wait_for(pg->pg->broadcast(tensors, o), timeout_ms);
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
    wait_for(pg->pg->allgather(outputs, inputs, o), timeout_ms);
  });
}

}  // extern "C"
