#pragma once
#include <CLI/CLI.hpp>

#include "data/dataset.h"

// Options shared by several subcommands, so that flags mean the same everywhere.
namespace sd::cli {

// --subset, --fraction, --seed, --val-fraction, --validation (see data::SubsetSpec).
void add_subset_options(CLI::App* command, data::SubsetSpec& subset);

}  // namespace sd::cli
