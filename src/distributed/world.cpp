#include "distributed/world.h"

#include <c10/core/impl/DeviceGuardImplInterface.h>

#include <algorithm>
#include <cstdlib>
#include <regex>

#include "util/device.h"
#include "util/error.h"

namespace sd::distributed {
namespace {

// torchrun's default rendezvous port, also ours when a launcher names none.
constexpr int kDefaultPort = 29500;

class Reader {
 public:
  Reader(const Environment& env, std::string launcher)
      : env_(env), launcher_(std::move(launcher)) {}

  bool has(const std::string& name) const { return env_(name).has_value(); }

  std::string text(const std::string& name) const {
    std::optional<std::string> value = env_(name);
    if (!value || value->empty())
      throw Error(launcher_ + " launch: the environment variable " + name + " is not set");
    return *value;
  }
  std::string text(const std::string& name, const std::string& fallback) const {
    return has(name) ? text(name) : fallback;
  }

  int number(const std::string& name, int min, int max) const {
    const std::string value = text(name);
    if (!std::regex_match(value, std::regex("[0-9]{1,9}")) || std::stoi(value) < min ||
        std::stoi(value) > max)
      throw Error(launcher_ + " launch: " + name + "='" + value + "' is not a whole number in [" +
                  std::to_string(min) + ", " + std::to_string(max) + "]");
    return std::stoi(value);
  }
  int number(const std::string& name, int min, int max, int fallback) const {
    return has(name) ? number(name, min, max) : fallback;
  }

  const std::string& launcher() const { return launcher_; }

 private:
  const Environment& env_;
  std::string launcher_;
};

constexpr int kMaxWorld = 1 << 20;

// Rank within size, local rank within local size.
World checked(World w, const std::string& rank_var, const std::string& local_var) {
  if (w.rank >= w.size)
    throw Error(w.launcher + " launch: " + rank_var + "=" + std::to_string(w.rank) +
                " is not below the world size " + std::to_string(w.size));
  if (w.local_rank >= w.local_size)
    throw Error(w.launcher + " launch: " + local_var + "=" + std::to_string(w.local_rank) +
                " is not below the local world size " + std::to_string(w.local_size));
  return w;
}

World torchrun(const Reader& env) {
  World w;
  w.launcher = env.launcher();
  w.size = env.number("WORLD_SIZE", 1, kMaxWorld);
  w.rank = env.number("RANK", 0, kMaxWorld);
  w.local_rank = env.number("LOCAL_RANK", 0, kMaxWorld, 0);
  w.local_size = env.number("LOCAL_WORLD_SIZE", 1, kMaxWorld, 1);
  w.master_addr = env.text("MASTER_ADDR");
  w.master_port = env.number("MASTER_PORT", 1, 65535);
  // As torch.distributed's env:// rendezvous: under torchrun's agent, its store, per attempt.
  if (env.text("TORCHELASTIC_USE_AGENT_STORE", "") == "True") {
    w.launcher_serves_store = true;
    w.store_prefix = "/worker/attempt_" + env.text("TORCHELASTIC_RESTART_COUNT", "0");
  }
  return checked(w, "RANK", "LOCAL_RANK");
}

World open_mpi(const Reader& env) {
  World w;
  w.launcher = env.launcher();
  w.size = env.number("OMPI_COMM_WORLD_SIZE", 1, kMaxWorld);
  w.rank = env.number("OMPI_COMM_WORLD_RANK", 0, kMaxWorld);
  w.local_rank = env.number("OMPI_COMM_WORLD_LOCAL_RANK", 0, kMaxWorld, 0);
  w.local_size = env.number("OMPI_COMM_WORLD_LOCAL_SIZE", 1, kMaxWorld, 1);
  // mpirun names no rendezvous host; on one machine it is this one.
  const bool one_machine = w.local_size == w.size;
  w.master_addr = one_machine ? env.text("MASTER_ADDR", "127.0.0.1") : env.text("MASTER_ADDR");
  w.master_port = env.number("MASTER_PORT", 1, 65535, kDefaultPort);
  return checked(w, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK");
}

// "2(x3),1" -> 2 2 2 1: the tasks on each node of the job's node list.
std::vector<int> tasks_per_node(const std::string& text) {
  std::vector<int> out;
  const std::regex item("([0-9]+)(\\(x([0-9]+)\\))?");
  size_t start = 0;
  while (start <= text.size()) {
    const size_t comma = std::min(text.find(',', start), text.size());
    const std::string part = text.substr(start, comma - start);
    std::smatch m;
    if (!std::regex_match(part, m, item))
      throw Error("Slurm launch: SLURM_TASKS_PER_NODE='" + text + "' is not of the form 2(x3),1");
    const int repeat = m[3].matched ? std::stoi(m[3]) : 1;
    for (int i = 0; i < repeat; ++i) out.push_back(std::stoi(m[1]));
    start = comma + 1;
  }
  return out;
}

World slurm(const Reader& env) {
  World w;
  w.launcher = env.launcher();
  w.size = env.number("SLURM_NTASKS", 1, kMaxWorld);
  w.rank = env.number("SLURM_PROCID", 0, kMaxWorld);
  w.local_rank = env.number("SLURM_LOCALID", 0, kMaxWorld, 0);
  if (env.has("SLURM_TASKS_PER_NODE")) {
    const std::vector<int> tasks = tasks_per_node(env.text("SLURM_TASKS_PER_NODE"));
    const int node = env.number("SLURM_NODEID", 0, kMaxWorld, 0);
    w.local_size = node < static_cast<int>(tasks.size()) ? tasks[static_cast<size_t>(node)] : 1;
  }
  w.master_addr = env.has("MASTER_ADDR") ? env.text("MASTER_ADDR")
                                         : expand_nodelist(env.text("SLURM_JOB_NODELIST")).front();
  // Two jobs sharing a node must not meet on one port: the job id picks it unless given.
  w.master_port = env.number("MASTER_PORT", 1, 65535,
                             kDefaultPort + env.number("SLURM_JOB_ID", 0, 1 << 30, 0) % 1000);
  return checked(w, "SLURM_PROCID", "SLURM_LOCALID");
}

}  // namespace

std::string World::name() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(size);
}

Environment process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* value = std::getenv(name.c_str());
    if (!value) return std::nullopt;
    return std::string(value);
  };
}

World world_from_environment(const Environment& env) {
  // `samdistill launch` sets torchrun's variables and SAMDISTILL_LAUNCH, so its ranks say so.
  if (env("WORLD_SIZE"))
    return torchrun(Reader(env, env("SAMDISTILL_LAUNCH") ? "samdistill" : "torchrun"));
  if (env("OMPI_COMM_WORLD_SIZE")) return open_mpi(Reader(env, "Open MPI"));
  if (env("SLURM_PROCID") && env("SLURM_NTASKS")) return slurm(Reader(env, "Slurm"));
  return World{};
}

std::vector<std::string> expand_nodelist(const std::string& list) {
  auto malformed = [&] { return Error("Slurm node list '" + list + "' is malformed"); };
  // Hosts are separated by commas outside brackets: "a[1-2,5],b".
  std::vector<std::string> hosts;
  const std::regex range("([0-9]+)(-([0-9]+))?");
  size_t i = 0;
  while (i < list.size()) {
    size_t end = i;
    while (end < list.size() && list[end] != ',' && list[end] != '[') ++end;
    const std::string prefix = list.substr(i, end - i);
    if (end < list.size() && list[end] == '[') {
      const size_t close = list.find(']', end);
      if (close == std::string::npos || prefix.empty()) throw malformed();
      const std::string inside = list.substr(end + 1, close - end - 1);
      size_t start = 0;
      while (start <= inside.size()) {
        const size_t comma = std::min(inside.find(',', start), inside.size());
        std::smatch m;
        const std::string part = inside.substr(start, comma - start);
        if (!std::regex_match(part, m, range)) throw malformed();
        const std::string first = m[1];
        const std::string last = m[3].matched ? m[3].str() : first;
        if (std::stoll(last) < std::stoll(first) || std::stoll(last) - std::stoll(first) > 100000)
          throw malformed();
        for (long long n = std::stoll(first); n <= std::stoll(last); ++n) {
          std::string digits = std::to_string(n);  // zero-padded to the width written: 01
          if (digits.size() < first.size()) digits.insert(0, first.size() - digits.size(), '0');
          hosts.push_back(prefix + digits);
        }
        start = comma + 1;
      }
      end = close + 1;
      if (end < list.size() && list[end] != ',') throw malformed();
    } else {
      if (prefix.empty()) throw malformed();
      hosts.push_back(prefix);
    }
    i = end + 1;
  }
  if (hosts.empty()) throw malformed();
  return hosts;
}

int local_gpu_index(const World& world, int devices) {
  if (devices < 1)
    throw Error(world.name() + ": the run is on CUDA but this process sees no CUDA device (" +
                (world.launcher.empty() ? "" : world.launcher + " ") + "local rank " +
                std::to_string(world.local_rank) + ")");
  return world.local_rank % devices;
}

void use_local_gpu(const World& world) {
  const int devices = cuda_device_count();
  if (!world.distributed() || devices == 0) return;
  c10::impl::getDeviceGuardImpl(at::kCUDA)->setDevice(
      at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(local_gpu_index(world, devices))));
}

int worker_threads(int cores, int local_size) {
  return std::max(1, cores / std::max(1, local_size));
}

}  // namespace sd::distributed
