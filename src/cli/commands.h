#pragma once
#include <CLI/CLI.hpp>

#include "distributed/group.h"
#include "distributed/world.h"
#include "train/loop.h"
#include "util/device.h"

// Each subcommand lives in its own cmd_<name>.cpp and registers itself on the app.
// The callback it installs does the work; errors are thrown as sd::Error.
namespace sd::cli {

struct Globals {
  int threads = 0;  // 0: all cores (a launched worker: its share of them)
  bool verbose = false;
  int dist_timeout_s = 300;  // seconds a rank waits for the others before giving up
  distributed::World world;  // from the launcher's variables (one process without them)
};

void add_checkpoint_command(CLI::App& app, const Globals& globals);
void add_embed_command(CLI::App& app, const Globals& globals);
void add_store_command(CLI::App& app, const Globals& globals);
void add_data_command(CLI::App& app, const Globals& globals);
void add_train_command(CLI::App& app, const Globals& globals);
void add_export_command(CLI::App& app, const Globals& globals);
void add_bench_command(CLI::App& app, const Globals& globals);
void add_eval_command(CLI::App& app, const Globals& globals);
void add_demo_command(CLI::App& app, const Globals& globals);
void add_predict_command(CLI::App& app, const Globals& globals);
void add_segment_command(CLI::App& app, const Globals& globals);
void add_finetune_command(CLI::App& app, const Globals& globals);
void add_launch_command(CLI::App& app, const Globals& globals);

// Thrown by a command whose exit status the log already explains (launch: a worker's).
struct ExitStatus {
  int status = 1;
};

// The process group of a multi-process launch (null for one process): Gloo on the CPU, NCCL
// on this rank's GPU (LOCAL_RANK) when `device` is CUDA. sd::Error before any work when the
// rendezvous fails or this build has no distributed support.
std::unique_ptr<distributed::Group> join_ranks(const Globals& globals, DeviceChoice device);

// The closing lines of train and finetune: steps, loss, speed, weights.
void print_train_summary(const train::TrainSummary& summary);

}  // namespace sd::cli
