#pragma once
#include <ATen/core/Tensor.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "distributed/world.h"
#include "util/error.h"

// The processes of a run, connected through LibTorch's c10d: collectives on a process group
// (Gloo for CPU tensors, NCCL for CUDA ones) and the rendezvous key-value store (TCPStore).
// Every rank calls the same collectives in the same order.
namespace sd::distributed {

// A peer rank stopped or could not be reached within the timeout.
class PeerLost : public Error {
 public:
  using Error::Error;
};

// A collective launched in the background; wait() before reading its tensors.
class Pending {
 public:
  using Clock = std::chrono::steady_clock;
  Pending() = default;
  explicit Pending(std::function<void()> wait,
                   std::shared_ptr<std::atomic<Clock::rep>> done = nullptr)
      : wait_(std::move(wait)), done_(std::move(done)) {}
  void wait();  // PeerLost when a peer failed; a second call does nothing
  // When the collective completed (in the backend's thread), once waited for; the end of
  // wait() where the backend does not say.
  Clock::time_point done_at() const;

 private:
  std::function<void()> wait_;
  std::shared_ptr<std::atomic<Clock::rep>> done_;  // ticks of Clock; 0 until done
  Clock::time_point waited_{};
};

enum class Reduce { sum, max };

class Group {
 public:
  virtual ~Group() = default;
  virtual const World& world() const = 0;
  // Where the collectives' tensors live: the CPU (Gloo) or this rank's GPU (NCCL).
  virtual at::Device device() const = 0;
  // Reduces `tensor` over every rank, in place, in the background.
  virtual Pending all_reduce(at::Tensor tensor, Reduce op = Reduce::sum) = 0;
  // Rank 0's values into every rank's `tensors` (same shapes everywhere).
  virtual void broadcast(std::vector<at::Tensor> tensors) = 0;
  // The rendezvous store: small values by key; get waits for a key up to the timeout.
  virtual void set(const std::string& key, const std::string& value) = 0;
  virtual std::string get(const std::string& key) = 0;
  virtual void erase(const std::string& key) = 0;
};

struct GroupOptions {
  std::chrono::seconds timeout{300};  // a peer silent this long is lost
  bool cuda = false;                  // NCCL on this rank's GPU (LOCAL_RANK), else Gloo
};

// Where the collectives of a run go, given the CUDA devices this process sees: this rank's GPU
// (local_gpu_index; NCCL) when options.cuda, else the CPU (Gloo). sd::Error naming the rank when
// the run is on CUDA and no device is seen.
at::Device group_device(const World& world, const GroupOptions& options, int cuda_devices);

// Whether this build has c10d's process groups (Gloo; NCCL where LibTorch has CUDA).
bool supported();
bool nccl_supported();

// Meets the other ranks at world.master_addr:master_port and connects the process group.
// sd::Error before any work when the port is in use, the master is not reached within the
// timeout, or this build has no distributed support.
std::unique_ptr<Group> connect(const World& world, const GroupOptions& options);

// Every rank's `value` (a digest of what must agree) is rank 0's; else every rank stops with
// the same message, naming `what` and the first rank that differs.
void check_same_everywhere(Group& group, const std::string& what, const std::string& value);
// What a run's ranks compare before any work: its `config` (the digest of its JSON, which
// leaves out the folders that may sit elsewhere on each machine) and its store (`store_id`,
// store::manifest_digest; "" for none).
void check_same_run(Group& group, const nlohmann::json& config, const std::string& store_id);

// A TCP port free on this machine now (the kernel's pick), for a local rendezvous.
int free_port();

// The largest of the ranks' values.
int64_t max_over_ranks(Group& group, int64_t value);

// Every rank's `mine` on rank 0, in rank order, through the rendezvous store; the other ranks
// get none. `name` tells this gathering from others. PeerLost when a rank stopped first.
std::vector<std::string> gather_to_rank0(Group& group, const std::string& name,
                                         const std::string& mine);

}  // namespace sd::distributed
