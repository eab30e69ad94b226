#include "io/checkpoint_summary.h"

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "io/checkpoint.h"
#include "io/train_checkpoint_file.h"

namespace sd::io {
namespace {

using nlohmann::json;
// Where a training checkpoint stands and how to continue from it.
json training_summary(const TrainCheckpointFile& file, const std::string& path) {
  const TrainProgress& p = file.meta.progress;
  json t = {{"step", p.step},
            {"epoch", p.epoch},
            {"position", p.position},
            {"optimizer_bytes", file.optimizer.numel() * int64_t(file.optimizer.element_size())},
            {"nonfinite_total", p.nonfinite_total},
            {"store_id", file.meta.store_id},
            {"config", file.meta.config}};
  if (std::isfinite(p.best_score)) t["best_score"] = p.best_score;
  // A run folder keeps its checkpoints in RUN/checkpoints/; only fine-tuning has a "student".
  const std::filesystem::path where(path);
  std::string run;
  if (where.parent_path().filename() == "checkpoints") {
    run = where.parent_path().parent_path().string();
    if (run.empty()) run = ".";
  }
  const std::string command = file.meta.config.contains("student") ? "finetune" : "train";
  t["run"] = run;
  t["resume"] = "samdistill " + command + " --out " + (run.empty() ? "RUN" : run) + " --resume " +
                path + " (or --resume auto: the newest valid checkpoint of " +
                (run.empty() ? "its run folder" : run) + ")";
  return t;
}

}  // namespace

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat:
      return "float32";
    case at::kDouble:
      return "float64";
    case at::kHalf:
      return "float16";
    case at::kBFloat16:
      return "bfloat16";
    case at::kLong:
      return "int64";
    case at::kInt:
      return "int32";
    case at::kShort:
      return "int16";
    case at::kChar:
      return "int8";
    case at::kByte:
      return "uint8";
    case at::kBool:
      return "bool";
    default:
      return c10::toString(dtype);
  }
}

json summarize_state_dict(const StateDict& entries, bool with_entries,
                          const DescribeEncoder& describe_encoder) {
  json dtypes = json::object(), listing = json::array();
  std::vector<std::string> prefix_order;
  std::map<std::string, StateDict> by_prefix;
  int64_t bytes = 0;
  for (const auto& [key, t] : entries) {
    std::string name = dtype_name(t.scalar_type());
    dtypes[name] = dtypes.value(name, 0) + 1;
    bytes += t.numel() * static_cast<int64_t>(t.element_size());
    std::string prefix = key.substr(0, key.find('.'));
    if (!by_prefix.count(prefix)) prefix_order.push_back(prefix);
    by_prefix[prefix].emplace_back(key, t);
    if (with_entries) listing.push_back({key, t.sizes().vec(), name});
  }
  json prefixes = json::array();
  for (const auto& prefix : prefix_order)
    prefixes.push_back({{"prefix", prefix},
                        {"keys", by_prefix[prefix].size()},
                        {"parameters", count_parameters(by_prefix[prefix])}});
  json out = {{"keys", entries.size()},
              {"parameters", count_parameters(entries)},
              {"bytes", bytes},
              {"dtypes", dtypes},
              {"prefixes", prefixes}};
  if (describe_encoder) out["encoder"] = describe_encoder(entries);
  if (with_entries) out["entries"] = listing;
  return out;
}

json summarize_checkpoint(const std::string& path, bool with_entries,
                          const DescribeEncoder& describe_encoder) {
  const c10::IValue top = read_torch_file(path);
  json out;
  if (is_train_checkpoint(top)) {
    const TrainCheckpointFile file = train_checkpoint_of(top, path);
    out = summarize_state_dict(file.model, with_entries, describe_encoder);
    out["training"] = training_summary(file, path);
  } else {
    out = summarize_state_dict(state_dict_of(top, path), with_entries, describe_encoder);
  }
  out["file"] = path;
  return out;
}

}  // namespace sd::io
