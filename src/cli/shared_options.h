#pragma once
#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>
#include <map>
#include <string>

#include "data/dataset.h"

// Options shared by several subcommands, so that flags mean the same everywhere.
namespace sd::cli {

// --subset, --fraction, --seed, --val-fraction, --validation (see data::SubsetSpec).
void add_subset_options(CLI::App* command, data::SubsetSpec& subset);

// A config-driven run command (train, finetune): --config, --out, --resume and one flag per
// config key (student_model -> --student-model), whose text takes the default's type.
struct RunConfigArgs {
  std::string config, out, resume;
  std::map<std::string, std::string> overrides;  // config key -> command-line text
};
void add_run_config_options(CLI::App* command, RunConfigArgs& args, const nlohmann::json& defaults,
                            const std::map<std::string, std::string>& help);

// The defaults, merged with --config, else with the run folder's own config.json when
// resuming, then with the command-line overrides; sd::Error naming a bad key or value.
nlohmann::json effective_config(const RunConfigArgs& args, const nlohmann::json& defaults);

}  // namespace sd::cli
