#pragma once
#include <CLI/CLI.hpp>

#include "train/train_loop.h"

// Each subcommand lives in its own cmd_<name>.cpp and registers itself on the app.
// The callback it installs does the work; errors are thrown as sd::Error.
namespace sd::cli {

struct Globals {
  int threads = 0;  // 0: all cores
  bool verbose = false;
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
void add_finetune_command(CLI::App& app, const Globals& globals);

// The closing lines of train and finetune: steps, loss, speed, weights.
void print_train_summary(const train::TrainSummary& summary);

}  // namespace sd::cli
