// Which rank a process is, from the variables of torchrun, Slurm and Open MPI.
#include "distributed/world.h"

#include <gtest/gtest.h>

#include <map>

#include "common/fixtures.h"
#include "util/error.h"

namespace sd::distributed {
namespace {

Environment env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(const Environment& e) {
  try {
    world_from_environment(e);
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

TEST(World, NoLauncherIsOneProcess) {
  const World w = world_from_environment(env({{"HOME", "/root"}}));
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.rank, 0);
  EXPECT_FALSE(w.distributed());
  EXPECT_TRUE(w.writes());
}

TEST(World, Torchrun) {
  const World w = world_from_environment(env({{"RANK", "3"},
                                              {"WORLD_SIZE", "4"},
                                              {"LOCAL_RANK", "1"},
                                              {"LOCAL_WORLD_SIZE", "2"},
                                              {"MASTER_ADDR", "10.0.0.5"},
                                              {"MASTER_PORT", "29400"}}));
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.master_addr, "10.0.0.5");
  EXPECT_EQ(w.master_port, 29400);
  EXPECT_FALSE(w.launcher_serves_store);
  EXPECT_FALSE(w.writes());
  EXPECT_EQ(w.name(), "rank 3 of 4");
}

// Under torchrun's agent the store is the agent's, with a prefix per restart (as
// torch.distributed's env:// rendezvous does).
TEST(World, TorchrunAgentStore) {
  const World w = world_from_environment(env({{"RANK", "0"},
                                              {"WORLD_SIZE", "2"},
                                              {"LOCAL_RANK", "0"},
                                              {"LOCAL_WORLD_SIZE", "2"},
                                              {"MASTER_ADDR", "127.0.0.1"},
                                              {"MASTER_PORT", "29500"},
                                              {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                                              {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_TRUE(w.launcher_serves_store);
  EXPECT_EQ(w.store_prefix, "/worker/attempt_2");
}

TEST(World, TorchrunErrorsNameTheVariable) {
  std::map<std::string, std::string> vars = {
      {"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}};
  auto without = [&](const std::string& name) {
    auto v = vars;
    v.erase(name);
    return env(v);
  };
  auto with = [&](const std::string& name, const std::string& value) {
    auto v = vars;
    v[name] = value;
    return env(v);
  };
  EXPECT_EQ(error_of(without("MASTER_ADDR")),
            "torchrun launch: the environment variable MASTER_ADDR is not set");
  EXPECT_EQ(error_of(without("RANK")), "torchrun launch: the environment variable RANK is not set");
  EXPECT_EQ(error_of(with("WORLD_SIZE", "two")),
            "torchrun launch: WORLD_SIZE='two' is not a whole number in [1, 1048576]");
  EXPECT_EQ(error_of(with("MASTER_PORT", "70000")),
            "torchrun launch: MASTER_PORT='70000' is not a whole number in [1, 65535]");
  EXPECT_EQ(error_of(with("RANK", "2")), "torchrun launch: RANK=2 is not below the world size 2");
  EXPECT_EQ(world_from_environment(env(vars)).local_size, 1) << "LOCAL_* default to one";
}

// `samdistill launch` sets torchrun's variables; its ranks name it, not torchrun.
TEST(World, SamdistillLaunchIsNamedAsItself) {
  std::map<std::string, std::string> vars = {
      {"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"}};
  EXPECT_EQ(world_from_environment(env(vars)).launcher, "torchrun");
  vars["SAMDISTILL_LAUNCH"] = "1";
  EXPECT_EQ(world_from_environment(env(vars)).launcher, "samdistill");
  vars["RANK"] = "2";
  EXPECT_EQ(error_of(env(vars)), "samdistill launch: RANK=2 is not below the world size 2");
}

TEST(World, Slurm) {
  const World w = world_from_environment(env({{"SLURM_PROCID", "5"},
                                              {"SLURM_NTASKS", "7"},
                                              {"SLURM_LOCALID", "1"},
                                              {"SLURM_NODEID", "2"},
                                              {"SLURM_TASKS_PER_NODE", "2(x3),1"},
                                              {"SLURM_JOB_NODELIST", "gpu[07-09],cpu1"},
                                              {"SLURM_JOB_ID", "123456"}}));
  EXPECT_EQ(w.launcher, "Slurm");
  EXPECT_EQ(w.rank, 5);
  EXPECT_EQ(w.size, 7);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.local_size, 2) << "node 2 of 2(x3),1";
  EXPECT_EQ(w.master_addr, "gpu07") << "the first host of the job";
  EXPECT_EQ(w.master_port, 29500 + 456) << "the job id offsets the port";
}

TEST(World, SlurmTakesMasterFromTheEnvironment) {
  const World w = world_from_environment(env({{"SLURM_PROCID", "0"},
                                              {"SLURM_NTASKS", "2"},
                                              {"SLURM_JOB_NODELIST", "gpu[07-09]"},
                                              {"MASTER_ADDR", "login2"},
                                              {"MASTER_PORT", "4000"}}));
  EXPECT_EQ(w.master_addr, "login2");
  EXPECT_EQ(w.master_port, 4000);
  EXPECT_EQ(error_of(env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}})),
            "Slurm launch: the environment variable SLURM_JOB_NODELIST is not set");
}

TEST(World, OpenMpi) {
  const World w = world_from_environment(env({{"OMPI_COMM_WORLD_RANK", "1"},
                                              {"OMPI_COMM_WORLD_SIZE", "2"},
                                              {"OMPI_COMM_WORLD_LOCAL_RANK", "1"},
                                              {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}}));
  EXPECT_EQ(w.launcher, "Open MPI");
  EXPECT_EQ(w.rank, 1);
  EXPECT_EQ(w.local_size, 2);
  EXPECT_EQ(w.master_addr, "127.0.0.1") << "one machine: this one";
  EXPECT_EQ(w.master_port, 29500);
  EXPECT_EQ(error_of(env({{"OMPI_COMM_WORLD_RANK", "1"},
                          {"OMPI_COMM_WORLD_SIZE", "4"},
                          {"OMPI_COMM_WORLD_LOCAL_SIZE", "2"}})),
            "Open MPI launch: the environment variable MASTER_ADDR is not set")
      << "several machines: rank 0's host must be named";
}

TEST(World, TorchrunWinsOverSlurm) {  // srun torchrun ...: torchrun's workers
  const World w = world_from_environment(env({{"RANK", "1"},
                                              {"WORLD_SIZE", "8"},
                                              {"MASTER_ADDR", "a"},
                                              {"MASTER_PORT", "1"},
                                              {"SLURM_PROCID", "0"},
                                              {"SLURM_NTASKS", "2"}}));
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.size, 8);
}

TEST(Nodelist, ExpandsTheCompressedForm) {
  EXPECT_EQ(expand_nodelist("node[01-04,07]"),
            (std::vector<std::string>{"node01", "node02", "node03", "node04", "node07"}));
  EXPECT_EQ(expand_nodelist("a1,b[9-11],c"),
            (std::vector<std::string>{"a1", "b9", "b10", "b11", "c"}));
  EXPECT_EQ(expand_nodelist("gpu-node[008-010]"),
            (std::vector<std::string>{"gpu-node008", "gpu-node009", "gpu-node010"}));
  EXPECT_EQ(expand_nodelist("solo"), (std::vector<std::string>{"solo"}));
}

TEST(Nodelist, RefusesMalformedLists) {
  for (const char* bad : {"", "node[01-", "node[4-2]", "[1-2]", "node[a-b]", "n[1]x", "a,,b"}) {
    try {
      expand_nodelist(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()), "Slurm node list '" + std::string(bad) + "' is malformed");
    }
  }
}

TEST(World, LocalRankPicksTheGpu) {
  World w = world_from_environment(env({{"RANK", "3"},
                                        {"WORLD_SIZE", "4"},
                                        {"LOCAL_RANK", "1"},
                                        {"LOCAL_WORLD_SIZE", "2"},
                                        {"MASTER_ADDR", "node0"},
                                        {"MASTER_PORT", "29500"}}));
  EXPECT_EQ(local_gpu_index(w, 2), 1);
  EXPECT_EQ(local_gpu_index(w, 8), 1);
  // A launcher that shows each process its own GPU (Slurm's binding): device 0 for every rank.
  EXPECT_EQ(local_gpu_index(w, 1), 0);
  w.local_rank = 5;
  EXPECT_EQ(local_gpu_index(w, 4), 1);
  try {
    local_gpu_index(w, 0);
    ADD_FAILURE() << "no error without a device";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "rank 3 of 4: the run is on CUDA but this process sees no CUDA device (torchrun "
              "local rank 5)");
  }
}

TEST(World, ThreadsShareTheCores) {
  EXPECT_EQ(worker_threads(16, 4), 4);
  EXPECT_EQ(worker_threads(2, 2), 1);
  EXPECT_EQ(worker_threads(2, 4), 1) << "at least one";
  EXPECT_EQ(worker_threads(7, 2), 3);
}

}  // namespace
}  // namespace sd::distributed
