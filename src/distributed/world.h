#pragma once
#include <functional>
#include <optional>
#include <string>
#include <vector>

// Which process of a multi-process run this is, as the launcher that started it says:
// torchrun's variables, Slurm's (srun) or Open MPI's (mpirun). One process without them.
namespace sd::distributed {

struct World {
  int rank = 0, size = 1;              // this process among all of the run's
  int local_rank = 0, local_size = 1;  // ... among those of this machine (LOCAL_RANK picks the GPU)
  std::string master_addr;             // host of rank 0's rendezvous store (c10d TCPStore)
  int master_port = 0;
  std::string launcher;  // "torchrun", "samdistill" (launch), "Slurm", "Open MPI"; "" for one
  // torchrun's agent already serves the store at master_addr:master_port (every rank connects
  // to it as a client); else rank 0 serves it.
  bool launcher_serves_store = false;
  std::string store_prefix;  // keys of this attempt (torchrun restarts a failed group)

  bool distributed() const { return size > 1; }
  bool writes() const { return rank == 0; }  // rank 0 alone writes a run's files
  std::string name() const;                  // "rank 1 of 4"
};

// A variable's value, or nullopt when it is not set.
using Environment = std::function<std::optional<std::string>(const std::string&)>;
Environment process_environment();

// The world the environment describes (torchrun first, then Open MPI, then Slurm); one
// process when none of them is set. sd::Error naming the variable and its value when one is
// missing, not a number, or out of range.
World world_from_environment(const Environment& env = process_environment());

// The hosts of a Slurm node list, compressed form expanded in order:
// "node[01-03,07],gpu5" -> node01 node02 node03 node07 gpu5. sd::Error naming the list when
// it is malformed.
std::vector<std::string> expand_nodelist(const std::string& list);

// The CUDA device of this rank among the `devices` the process sees: LOCAL_RANK's, or, where a
// launcher shows each process fewer devices than it has local ranks (Slurm's GPU binding, a
// CUDA_VISIBLE_DEVICES per rank), LOCAL_RANK modulo their number. sd::Error without any.
int local_gpu_index(const World& world, int devices);

// LOCAL_RANK's GPU becomes the current CUDA device (where "cuda" tensors go), as torchrun's
// workers choose theirs; nothing without CUDA or for one process.
void use_local_gpu(const World& world);

// The CPU threads of one worker: the machine's cores shared by its local workers, at least 1.
int worker_threads(int cores, int local_size);

}  // namespace sd::distributed
