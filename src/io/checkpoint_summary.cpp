#include "io/checkpoint_summary.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "io/checkpoint.h"

namespace sd::io {
namespace {

using nlohmann::json;
using Shapes = std::map<std::string, std::vector<int64_t>>;

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.compare(0, prefix.size(), prefix) == 0;
}

// How many distinct N appear in keys "<prefix>N.<...>": the length of a module list.
int64_t count_indices(const Shapes& shapes, const std::string& prefix) {
  std::set<std::string> seen;
  for (const auto& [key, shape] : shapes) {
    if (!starts_with(key, prefix)) continue;
    std::string index = key.substr(prefix.size(), key.find('.', prefix.size()) - prefix.size());
    if (!index.empty() && std::all_of(index.begin(), index.end(), ::isdigit)) seen.insert(index);
  }
  return static_cast<int64_t>(seen.size());
}

// TinyViT: stage 0 is convolutional (MBConv), the later stages attention blocks.
json tiny_vit(const Shapes& shapes, const std::string& prefix) {
  json dims = json::array(), depths = json::array();
  int64_t stages = count_indices(shapes, prefix + "layers.");
  for (int64_t i = 0; i < stages; ++i) {
    std::string blocks = prefix + "layers." + std::to_string(i) + ".blocks.";
    auto conv = shapes.find(blocks + "0.conv1.c.weight");  // [hidden, dim, 1, 1]
    auto norm = shapes.find(blocks + "0.attn.norm.weight");  // [dim]
    if (conv != shapes.end() && conv->second.size() == 4)
      dims.push_back(conv->second[1]);
    else if (norm != shapes.end() && norm->second.size() == 1)
      dims.push_back(norm->second[0]);
    else
      return nullptr;
    depths.push_back(count_indices(shapes, blocks));
  }
  return {{"family", "TinyViT"}, {"prefix", prefix}, {"embed_dims", dims}, {"depths", depths}};
}

json find_encoder(const Shapes& shapes) {
  for (const std::string prefix : {"image_encoder.", ""}) {
    if (shapes.count(prefix + "patch_embed.seq.0.c.weight")) return tiny_vit(shapes, prefix);
    auto proj = shapes.find(prefix + "patch_embed.proj.weight");  // [embed_dim, 3, 16, 16]
    if (proj != shapes.end() && proj->second.size() == 4)
      return {{"family", "ViT"},
              {"prefix", prefix},
              {"embed_dim", proj->second[0]},
              {"depth", count_indices(shapes, prefix + "blocks.")}};
  }
  return nullptr;
}

}  // namespace

std::string dtype_name(at::ScalarType dtype) {
  switch (dtype) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    default: return c10::toString(dtype);
  }
}

json summarize_state_dict(const StateDict& entries, bool with_entries) {
  Shapes shapes;
  json dtypes = json::object(), listing = json::array();
  std::vector<std::string> prefix_order;
  std::map<std::string, StateDict> by_prefix;
  int64_t bytes = 0;
  for (const auto& [key, t] : entries) {
    shapes[key] = t.sizes().vec();
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
  json out = {{"keys", entries.size()},         {"parameters", count_parameters(entries)},
              {"bytes", bytes},                 {"dtypes", dtypes},
              {"prefixes", prefixes},           {"encoder", find_encoder(shapes)}};
  if (with_entries) out["entries"] = listing;
  return out;
}

json summarize_checkpoint(const std::string& path, bool with_entries) {
  json out = summarize_state_dict(read_state_dict(path), with_entries);
  out["file"] = path;
  return out;
}

}  // namespace sd::io
