#pragma once
#include <CLI/CLI.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "io/config_table.h"
#include "models/autocast.h"
#include "train/train_loop.h"

// Options shared by several subcommands, so that flags mean the same everywhere.
namespace sd::cli {

// --subset, --fraction, --subset-seed, --val-fraction, --validation (see data::SubsetSpec).
void add_subset_options(CLI::App* command, data::SubsetSpec& subset);

// --amp off|bf16|fp16: the precision of the model's forward passes.
void add_amp_option(CLI::App* command, models::Amp& amp);

// --data (image sources, data::Dataset::open) and --images (the COCO files' images).
CLI::Option* add_data_options(CLI::App* command, std::vector<std::string>& data,
                              std::string& images);

// A config-driven run command (train, finetune): --config, --out, --resume and one flag per
// config key (student_model -> --student-model, shown with its type), whose text takes the
// key's type.
struct RunConfigArgs {
  std::string config, out, resume;
  bool overwrite = false;
  std::map<std::string, std::string> overrides;  // config key -> command-line text
  std::map<std::string, std::string> flags;      // yes/no key -> "true", "false" or "" (not given)
};
void add_run_config_options(CLI::App* command, RunConfigArgs& args,
                            const std::vector<io::KeyInfo>& keys);
// Of those, --config and the flag per key alone (a command with a config but no run folder;
// effective_config reads them).
void add_config_options(CLI::App* command, RunConfigArgs& args,
                        const std::vector<io::KeyInfo>& keys);

// The defaults, merged with --config, else with the run folder's own config.json when
// resuming, then with the command-line overrides; sd::Error naming a bad key or value.
nlohmann::json effective_config(const RunConfigArgs& args, const nlohmann::json& defaults);

// --out, --resume and --overwrite.
train::RunStart run_start(const RunConfigArgs& args);

}  // namespace sd::cli
