#include "io/weights.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "io/checkpoint.h"
#include "io/config.h"
#include "io/run_folder.h"
#include "util/error.h"

namespace fs = std::filesystem;

namespace sd::io {
namespace {

using nlohmann::json;
using Shapes = std::map<std::string, std::vector<int64_t>>;

// The shape of `key` when it is there with `dims` dimensions.
const std::vector<int64_t>* shape(const Shapes& shapes, const std::string& key, size_t dims) {
  auto it = shapes.find(key);
  return it != shapes.end() && it->second.size() == dims ? &it->second : nullptr;
}

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// How many distinct N appear in keys "<prefix>N.<...>": the length of a module list.
int64_t count_indices(const Shapes& shapes, const std::string& prefix) {
  std::set<std::string> seen;
  for (const auto& [key, dims] : shapes) {
    if (!starts_with(key, prefix)) continue;
    std::string index = key.substr(prefix.size(), key.find('.', prefix.size()) - prefix.size());
    if (!index.empty() && std::all_of(index.begin(), index.end(), ::isdigit)) seen.insert(index);
  }
  return static_cast<int64_t>(seen.size());
}

// hidden / width, nudged where rounding would make int(width * ratio) miss `hidden`.
double ratio(int64_t hidden, int64_t width) {
  const double r = double(hidden) / double(width);
  return int64_t(double(width) * r) == hidden ? r : (double(hidden) + 0.5) / double(width);
}

// SAM's ImageEncoderViT: a windowed block's relative position tables have 2 * window - 1
// rows, a global block's 2 * grid - 1.
json vit(const Shapes& shapes, const std::string& prefix, const std::vector<int64_t>& proj) {
  const int64_t dim = proj[0], patch = proj[2];
  json j = {{"family", "ViT"},
            {"prefix", prefix},
            {"embed_dim", dim},
            {"in_chans", proj[1]},
            {"patch_size", patch},
            {"depth", count_indices(shapes, prefix + "blocks.")},
            {"qkv_bias", shapes.count(prefix + "blocks.0.attn.qkv.bias") > 0}};
  int64_t grid = 1024 / patch;  // SAM's img_size, unless the position embedding says otherwise
  const auto* pos = shape(shapes, prefix + "pos_embed", 4);  // [1, grid, grid, dim]
  j["use_abs_pos"] = pos != nullptr;
  if (pos) {
    grid = (*pos)[1];
    j["img_size"] = grid * patch;
  }
  if (const auto* lin1 = shape(shapes, prefix + "blocks.0.mlp.lin1.weight", 2))
    j["mlp_ratio"] = ratio((*lin1)[0], dim);
  if (const auto* neck = shape(shapes, prefix + "neck.0.weight", 4)) j["out_chans"] = (*neck)[0];
  const auto* table =
      shape(shapes, prefix + "blocks.0.attn.rel_pos_h", 2);  // [2 * size - 1, head_dim]
  j["use_rel_pos"] = table != nullptr;
  if (!table) return j;
  j["num_heads"] = dim / (*table)[1];
  json global = json::array();
  for (int64_t i = 0; i < j["depth"].get<int64_t>(); ++i) {
    const auto* rows = shape(shapes, prefix + "blocks." + std::to_string(i) + ".attn.rel_pos_h", 2);
    if (!rows) continue;
    const int64_t size = ((*rows)[0] + 1) / 2;
    if (size == grid)
      global.push_back(i);
    else
      j["window_size"] = size;
  }
  j["global_attn_indexes"] = global;
  return j;
}

// MobileSAM's TinyViT: stage 0 is convolutional (MBConv), the later stages attention
// blocks with a [num_heads, window * window] table of attention biases.
json tiny_vit(const Shapes& shapes, const std::string& prefix) {
  json dims = json::array(), depths = json::array(), heads = json::array(), windows = json::array();
  const int64_t stages = count_indices(shapes, prefix + "layers.");
  for (int64_t i = 0; i < stages; ++i) {
    const std::string blocks = prefix + "layers." + std::to_string(i) + ".blocks.";
    const auto* conv = shape(shapes, blocks + "0.conv1.c.weight", 4);    // [hidden, dim, 1, 1]
    const auto* norm = shape(shapes, blocks + "0.attn.norm.weight", 1);  // [dim]
    if (conv)
      dims.push_back((*conv)[1]);
    else if (norm)
      dims.push_back((*norm)[0]);
    else
      return nullptr;
    depths.push_back(count_indices(shapes, blocks));
    const auto* biases = shape(shapes, blocks + "0.attn.attention_biases", 2);
    const int64_t window = biases ? std::lround(std::sqrt(double((*biases)[1]))) : 0;
    const bool square = biases && window * window == (*biases)[1];
    heads.push_back(square ? json((*biases)[0]) : json());
    windows.push_back(square ? json(window) : json());
  }
  json j = {{"family", "TinyViT"}, {"prefix", prefix}, {"embed_dims", dims}, {"depths", depths}};
  if (std::any_of(heads.begin(), heads.end(), [](const json& h) { return !h.is_null(); })) {
    j["num_heads"] = heads;
    j["window_sizes"] = windows;
  }
  if (const auto* stem = shape(shapes, prefix + "patch_embed.seq.0.c.weight", 4))
    j["in_chans"] = (*stem)[1];
  if (const auto* conv = shape(shapes, prefix + "layers.0.blocks.0.conv1.c.weight", 4))
    j["mbconv_expand_ratio"] = ratio((*conv)[0], (*conv)[1]);
  if (const auto* fc1 = shape(shapes, prefix + "layers.1.blocks.0.mlp.fc1.weight", 2))
    j["mlp_ratio"] = ratio((*fc1)[0], (*fc1)[1]);
  if (const auto* local = shape(shapes, prefix + "layers.1.blocks.0.local_conv.c.weight", 4))
    j["local_conv_size"] = (*local)[2];
  if (const auto* neck = shape(shapes, prefix + "neck.0.weight", 4)) j["out_chans"] = (*neck)[0];
  const auto* head = shape(shapes, prefix + "head.weight", 2);
  j["num_classes"] = head ? (*head)[0] : 0;
  return j;
}

// The `student_model` of the run config in `dir`, when there is one; a relative path there is
// relative to the run folder.
std::optional<std::string> student_model_in(const fs::path& dir) {
  const fs::path config = dir / "config.json";
  if (dir.empty() || !fs::is_regular_file(config)) return std::nullopt;
  const json j = read_json_file(config.string());
  if (!j.contains("student_model") || !j["student_model"].is_string()) return std::nullopt;
  return absolute_paths(j["student_model"], PathKind::file_or_name, dir.string());
}

}  // namespace

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

Weights read_weights(const std::string& file_or_run) {
  Weights w;
  w.file = resolve_weights(file_or_run);
  w.entries = read_state_dict(w.file);  // a training checkpoint's weights: its "model" entry
  const fs::path p(file_or_run);
  for (const fs::path& dir : {p, p.parent_path(), p.parent_path().parent_path()}) {
    if (auto model = student_model_in(dir)) {
      w.run_model = *model;
      w.run_config = fs::absolute(dir / "config.json").lexically_normal().string();
      break;
    }
  }
  return w;
}

json observe_encoder(const StateDict& entries) {
  Shapes shapes;
  for (const auto& [key, t] : entries) shapes[key] = t.sizes().vec();
  for (const std::string prefix : {"image_encoder.", ""}) {
    if (shapes.count(prefix + "patch_embed.seq.0.c.weight")) return tiny_vit(shapes, prefix);
    if (const auto* proj = shape(shapes, prefix + "patch_embed.proj.weight", 4))
      return vit(shapes, prefix, *proj);
  }
  return nullptr;
}

}  // namespace sd::io
