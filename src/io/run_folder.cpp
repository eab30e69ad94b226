#include "io/run_folder.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "io/tensorboard.h"
#include "io/train_checkpoint_file.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

bool is_checkpoint_name(const std::string& name) {
  return name.rfind("step-", 0) == 0 && name.size() > 9 &&
         name.compare(name.size() - 4, 4, ".pth") == 0;
}

}  // namespace

std::string checkpoint_name(int64_t step) {
  char name[64];
  std::snprintf(name, sizeof(name), "step-%08lld.pth", static_cast<long long>(step));
  return name;
}

std::vector<std::string> list_checkpoints(const RunPaths& run) {
  std::vector<std::string> out;
  if (!fs::is_directory(run.checkpoints())) return out;
  for (const auto& entry : fs::directory_iterator(run.checkpoints()))
    if (entry.is_regular_file() && is_checkpoint_name(entry.path().filename().string()))
      out.push_back(entry.path().string());
  // Zero-padded step numbers: the name order is the step order.
  std::sort(out.rbegin(), out.rend());
  return out;
}

std::vector<std::string> run_files(const RunPaths& run) {
  std::vector<std::string> out;
  for (const std::string& file :
       {run.config(), run.metrics(), run.final_weights(), run.loss_curve(), run.best()})
    if (fs::exists(file)) out.push_back(file);
  for (const std::string& file : event_files(run.dir)) out.push_back(file);
  for (const std::string& file : list_checkpoints(run)) out.push_back(file);
  return out;
}

std::optional<std::string> newest_valid_checkpoint(const RunPaths& run) {
  for (const auto& path : list_checkpoints(run)) {
    try {
      peek_train_checkpoint(path);
      return path;
    } catch (const Error& e) {
      log::warn("passing over damaged checkpoint: " + std::string(e.what()));
    }
  }
  return std::nullopt;
}

}  // namespace sd::io
