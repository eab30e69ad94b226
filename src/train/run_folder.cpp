#include "train/run_folder.h"

#include <algorithm>
#include <filesystem>

#include "train/train_checkpoint.h"
#include "io/checkpoint.h"
#include "util/error.h"
#include "util/log.h"

namespace fs = std::filesystem;

namespace sd::train {
namespace {

bool is_checkpoint_name(const std::string& name) {
  return name.rfind("step-", 0) == 0 && name.size() > 9 &&
         name.compare(name.size() - 4, 4, ".pth") == 0;
}

}  // namespace

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

std::string resolve_weights(const std::string& file_or_run) {
  if (!fs::is_directory(file_or_run)) {
    if (!fs::exists(file_or_run)) throw Error("weights '" + file_or_run + "' do not exist");
    return file_or_run;
  }
  RunPaths run{file_or_run};
  if (fs::exists(run.final_weights())) return run.final_weights();
  if (auto newest = newest_valid_checkpoint(run)) return *newest;
  throw Error("run folder '" + file_or_run + "' has neither final.pth nor a valid checkpoint");
}

io::StateDict read_encoder_weights(const std::string& file_or_run) {
  // read_state_dict takes a training checkpoint's weights from its "model" entry.
  return io::encoder_entries(io::read_state_dict(resolve_weights(file_or_run)));
}

}  // namespace sd::train
