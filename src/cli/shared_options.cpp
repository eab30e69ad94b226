#include "cli/shared_options.h"

namespace sd::cli {

void add_subset_options(CLI::App* command, data::SubsetSpec& subset) {
  command->add_option("--subset", subset.list_file, "File listing image ids or folder (tar) names to keep");
  command->add_option("--fraction", subset.fraction, "Keep this fraction of images, chosen by hashing their ids")
      ->capture_default_str();
  command->add_option("--seed", subset.seed, "Seed of the hashed selection")->capture_default_str();
  command->add_option("--val-fraction", subset.val_fraction, "Fraction set aside as the validation split")
      ->capture_default_str();
  command->add_flag("--validation", subset.validation, "Use the validation split instead");
}

}  // namespace sd::cli
