#include "distributed/group.h"

#include <ATen/ATen.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <regex>

#include "util/device.h"
#include "util/sha256.h"

#ifdef SAMDISTILL_WITH_GLOO
#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#ifdef SAMDISTILL_WITH_NCCL
#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

namespace sd::distributed {

void Pending::wait() {
  if (!wait_) return;
  std::function<void()> wait = std::move(wait_);
  wait_ = nullptr;
  wait();
  waited_ = Clock::now();
}

Pending::Clock::time_point Pending::done_at() const {
  const Clock::rep done = done_ ? done_->load() : 0;
  return done != 0 ? Clock::time_point(Clock::duration(done)) : waited_;
}

bool supported() {
#ifdef SAMDISTILL_WITH_GLOO
  return true;
#else
  return false;
#endif
}

bool nccl_supported() {
#ifdef SAMDISTILL_WITH_NCCL
  return true;
#else
  return false;
#endif
}

#ifdef SAMDISTILL_WITH_GLOO
namespace {

std::string endpoint(const World& w) { return w.master_addr + ":" + std::to_string(w.master_port); }

// A c10d failure (a peer's socket closed, a timeout) as one message naming this rank.
[[noreturn]] void peer_lost(const World& w, const std::string& what, const std::exception& e) {
  throw PeerLost(w.name() + ": " + what +
                 " failed: another rank stopped or was not heard from within the timeout "
                 "(--dist-timeout) (c10d: " +
                 std::string(e.what()).substr(0, 300) + ")");
}

// LibTorch 2.4 and later ask for the libuv TCPStore by default, which a LibTorch built
// without libuv (Debian's 2.6) refuses; 1.13 has only the other. True when there was a
// request to take back.
template <typename Options>
auto stop_asking_for_libuv(Options& o, int) -> decltype(o.useLibUV, bool()) {
  const bool asked = o.useLibUV;
  o.useLibUV = false;
  return asked;
}
template <typename Options>
bool stop_asking_for_libuv(Options&, long) {
  return false;
}

c10::intrusive_ptr<c10d::Store> tcp_store(const std::string& host, c10d::TCPStoreOptions o) {
  try {
    return c10::make_intrusive<c10d::TCPStore>(host, o);
  } catch (const c10::Error& e) {
    const bool libuv_missing = std::string(e.what()).find("without libuv") != std::string::npos;
    if (libuv_missing && stop_asking_for_libuv(o, 0))
      return c10::make_intrusive<c10d::TCPStore>(host, o);
    throw;
  }
}

c10::intrusive_ptr<c10d::Store> rendezvous(const World& w, std::chrono::seconds timeout) {
  c10d::TCPStoreOptions o;
  o.port = static_cast<uint16_t>(w.master_port);
  o.isServer = w.rank == 0 && !w.launcher_serves_store;
  o.numWorkers = w.launcher_serves_store ? c10::nullopt : c10::optional<size_t>(w.size);
  o.waitWorkers = false;  // the process group's own rendezvous waits for every rank
  o.timeout = timeout;
  c10::intrusive_ptr<c10d::Store> store;
  try {
    store = tcp_store(w.master_addr, o);
  } catch (const std::exception& e) {
    const std::string why = e.what();
    if (o.isServer && why.find("in use") != std::string::npos)
      throw Error(w.name() + ": port " + std::to_string(w.master_port) +
                  " is in use: the rendezvous cannot listen there (choose another MASTER_PORT)");
    throw Error(w.name() + ": could not reach the rendezvous at " + endpoint(w) + " within " +
                std::to_string(timeout.count()) +
                " s (is rank 0 running there? MASTER_ADDR, MASTER_PORT, --dist-timeout) (c10d: " +
                why.substr(0, 300) + ")");
  }
  return c10::make_intrusive<c10d::PrefixStore>(w.store_prefix + "/samdistill", store);
}

bool loopback(const std::string& host) {
  return host == "localhost" || std::regex_match(host, std::regex("127\\.[0-9.]+"));
}

c10::intrusive_ptr<c10d::ProcessGroupGloo> gloo_group(const World& w,
                                                      const c10::intrusive_ptr<c10d::Store>& store,
                                                      std::chrono::seconds timeout) {
  auto options = c10d::ProcessGroupGloo::Options::create(timeout);
  if (const char* interface = std::getenv("GLOO_SOCKET_IFNAME"))
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(interface));
  else if (loopback(w.master_addr))
    options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
  else
    options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, w.rank, w.size, options);
}

#ifdef SAMDISTILL_WITH_NCCL
c10::intrusive_ptr<c10d::ProcessGroupNCCL> nccl_group(const World& w,
                                                      const c10::intrusive_ptr<c10d::Store>& store,
                                                      std::chrono::seconds timeout) {
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, w.rank, w.size, options);
}
#endif

c10d::ReduceOp reduce_op(Reduce op) {
  return op == Reduce::max ? c10d::ReduceOp::MAX : c10d::ReduceOp::SUM;
}

std::string as_text(const std::vector<uint8_t>& bytes) { return {bytes.begin(), bytes.end()}; }

// The group over one c10d backend: Gloo and NCCL share the calls used here in LibTorch 1.13
// (ProcessGroup subclasses) and 2.x (Backend subclasses).
template <typename Backend>
class C10dGroup : public Group {
 public:
  C10dGroup(World world, at::Device device, c10::intrusive_ptr<c10d::Store> store,
            c10::intrusive_ptr<Backend> pg)
      : world_(std::move(world)),
        device_(device),
        kv_(c10::make_intrusive<c10d::PrefixStore>("kv", store)),
        pg_(std::move(pg)) {}

  const World& world() const override { return world_; }
  at::Device device() const override { return device_; }

  Pending all_reduce(at::Tensor tensor, Reduce op) override {
    std::vector<at::Tensor> tensors{tensor};
    c10d::AllreduceOptions options;
    options.reduceOp = reduce_op(op);
    try {
      auto work = pg_->allreduce(tensors, options);
      auto done = std::make_shared<std::atomic<Pending::Clock::rep>>(0);
      work->getFuture()->addCallback([done](c10::ivalue::Future&) {
        done->store(Pending::Clock::now().time_since_epoch().count());
      });
      return Pending(
          [work, this] {
            try {
              work->wait();
            } catch (const std::exception& e) {
              peer_lost(world_, "an all-reduce", e);
            }
          },
          done);
    } catch (const PeerLost&) {
      throw;
    } catch (const std::exception& e) {
      peer_lost(world_, "an all-reduce", e);
    }
  }

  void broadcast(std::vector<at::Tensor> tensors) override {
    try {
      for (at::Tensor& t : tensors) {
        std::vector<at::Tensor> one{t};
        pg_->broadcast(one)->wait();
      }
    } catch (const std::exception& e) {
      peer_lost(world_, "the broadcast from rank 0", e);
    }
  }

  void set(const std::string& key, const std::string& value) override {
    try {
      kv_->set(key, std::vector<uint8_t>(value.begin(), value.end()));
    } catch (const std::exception& e) {
      peer_lost(world_, "writing '" + key + "' to the rendezvous store", e);
    }
  }
  std::string get(const std::string& key) override {
    try {
      return as_text(kv_->get(key));
    } catch (const std::exception& e) {
      peer_lost(world_, "reading '" + key + "' from the rendezvous store", e);
    }
  }
  void erase(const std::string& key) override {
    try {
      kv_->deleteKey(key);
    } catch (const std::exception& e) {
      peer_lost(world_, "deleting '" + key + "' from the rendezvous store", e);
    }
  }

 private:
  World world_;
  at::Device device_;
  c10::intrusive_ptr<c10d::Store> kv_;
  c10::intrusive_ptr<Backend> pg_;
};

}  // namespace
#endif

at::Device group_device(const World& world, const GroupOptions& options, int cuda_devices) {
  if (!options.cuda) return at::kCPU;
  return {at::kCUDA, static_cast<c10::DeviceIndex>(local_gpu_index(world, cuda_devices))};
}

std::unique_ptr<Group> connect(const World& world, const GroupOptions& options) {
#ifdef SAMDISTILL_WITH_GLOO
  if (options.cuda && !nccl_supported())
    throw Error("this build has no NCCL support: a run on CUDA devices cannot have " +
                std::to_string(world.size) +
                " processes (LibTorch without CUDA, or nccl.h not found when it was built)");
  const at::Device device = group_device(world, options, cuda_device_count());
  c10::intrusive_ptr<c10d::Store> store = rendezvous(world, options.timeout);
  try {
    if (device.is_cuda()) {
#ifdef SAMDISTILL_WITH_NCCL
      return std::make_unique<C10dGroup<c10d::ProcessGroupNCCL>>(
          world, device, store,
          nccl_group(world, c10::make_intrusive<c10d::PrefixStore>("pg", store), options.timeout));
#endif
    }
    return std::make_unique<C10dGroup<c10d::ProcessGroupGloo>>(
        world, device, store,
        gloo_group(world, c10::make_intrusive<c10d::PrefixStore>("pg", store), options.timeout));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error(world.name() + ": the process group did not form within " +
                std::to_string(options.timeout.count()) +
                " s: every rank must start (WORLD_SIZE ranks) (c10d: " +
                std::string(e.what()).substr(0, 300) + ")");
  }
#else
  throw Error("this build has no distributed support: " + world.launcher + " asks for " +
              std::to_string(world.size) +
              " processes (rebuild with LibTorch's c10d and gloo's headers, libgloo-dev)");
#endif
}

void check_same_everywhere(Group& group, const std::string& what, const std::string& value) {
  const World& w = group.world();
  const std::string key = "same/" + what + "/";
  group.set(key + std::to_string(w.rank), value);
  const std::string reference = group.get(key + "0");
  for (int r = 1; r < w.size; ++r)
    if (group.get(key + std::to_string(r)) != reference)
      throw Error("rank " + std::to_string(r) + " has another " + what + " than rank 0 (" +
                  group.get(key + std::to_string(r)).substr(0, 16) + "... vs " +
                  reference.substr(0, 16) + "...): every rank must run the same command on the " +
                  "same data");
}

void check_same_run(Group& group, const nlohmann::json& config, const std::string& store_id) {
  const std::string text = config.dump();
  check_same_everywhere(group, "config", sha256_hex(text.data(), text.size()));
  check_same_everywhere(group, "store (manifest digest)", store_id);
}

int free_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw Error("cannot open a socket to find a free port");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof(address);
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0 &&
                  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0;
  close(fd);
  if (!ok) throw Error("cannot bind a socket on 127.0.0.1 to find a free port");
  return ntohs(address.sin_port);
}

int64_t max_over_ranks(Group& group, int64_t value) {
  at::Tensor t = at::full({1}, value, at::TensorOptions(at::kLong).device(group.device()));
  group.all_reduce(t, Reduce::max).wait();
  return t.cpu().item<int64_t>();
}

std::vector<std::string> gather_to_rank0(Group& group, const std::string& name,
                                         const std::string& mine) {
  const World& w = group.world();
  const std::string key = "gather/" + name + "/";
  group.set(key + std::to_string(w.rank), mine);
  max_over_ranks(group, 0);  // every part is in the store; a rank that stopped fails this
  std::vector<std::string> parts;
  if (w.rank != 0) return parts;
  for (int r = 0; r < w.size; ++r) {
    parts.push_back(group.get(key + std::to_string(r)));
    group.erase(key + std::to_string(r));
  }
  return parts;
}

}  // namespace sd::distributed
