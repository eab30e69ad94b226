#include "train/param_groups.h"

#include <torch/optim/adamw.h>

#include <cmath>
#include <map>
#include <numeric>

namespace sd::train {
namespace {

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// The number after `prefix` in `name` ("layers.2.blocks.3.x", "layers." -> 2), or -1.
int index_after(const std::string& name, const std::string& prefix) {
  if (!starts_with(name, prefix)) return -1;
  size_t end = name.find('.', prefix.size());
  return std::stoi(name.substr(prefix.size(), end - prefix.size()));
}

// Global block index of a TinyViT parameter, or -1 after the blocks.
int tiny_vit_block(const std::string& name, const models::TinyViTConfig& c) {
  if (starts_with(name, "patch_embed.")) return 0;
  int layer = index_after(name, "layers.");
  if (layer < 0) return -1;
  int first = std::accumulate(c.depths.begin(), c.depths.begin() + layer, 0);
  std::string rest = name.substr(name.find('.', 7) + 1);
  int block = index_after(rest, "blocks.");
  if (block >= 0) return first + block;
  return first + c.depths[layer] - 1;  // downsample: its layer's last block
}

int vit_block(const std::string& name, const models::ViTConfig&) {
  if (starts_with(name, "patch_embed.") || name == "pos_embed") return 0;
  return index_after(name, "blocks.");
}

}  // namespace

bool decays(const std::string& name, const at::Tensor& param) {
  const std::string tail = "attention_biases";
  bool attention_bias =
      name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  return param.dim() > 1 && !attention_bias;
}

double layer_lr_scale(const std::string& name, const models::EncoderConfig& config, double decay) {
  int depth = 0, block = -1;
  if (auto* t = std::get_if<models::TinyViTConfig>(&config)) {
    depth = std::accumulate(t->depths.begin(), t->depths.end(), 0);
    block = tiny_vit_block(name, *t);
  } else {
    const auto& v = std::get<models::ViTConfig>(config);
    depth = v.depth;
    block = vit_block(name, v);
  }
  if (block < 0) return 1.0;
  return std::pow(decay, depth - block - 1);
}

std::vector<ParamGroup> make_param_groups(const torch::nn::Module& encoder,
                                          const models::EncoderConfig& config, double layer_decay) {
  return make_param_groups(
      encoder, [&](const std::string& name) { return layer_lr_scale(name, config, layer_decay); });
}

std::vector<ParamGroup> make_param_groups(
    const torch::nn::Module& module, const std::function<double(const std::string&)>& lr_scale) {
  std::vector<ParamGroup> groups;
  std::map<std::pair<double, bool>, size_t> index;
  for (const auto& item : module.named_parameters()) {
    if (!item.value().requires_grad()) continue;
    double scale = lr_scale(item.key());
    bool decay = decays(item.key(), item.value());
    auto key = std::make_pair(scale, decay);
    auto found = index.find(key);
    if (found == index.end()) {
      found = index.emplace(key, groups.size()).first;
      groups.push_back(ParamGroup{scale, decay, {}, {}});
    }
    groups[found->second].names.push_back(item.key());
    groups[found->second].params.push_back(item.value());
  }
  return groups;
}

std::vector<torch::optim::OptimizerParamGroup> adamw_groups(const std::vector<ParamGroup>& groups,
                                                            const GroupOptions& options) {
  std::vector<torch::optim::OptimizerParamGroup> out;
  for (const auto& g : groups) {
    auto opts = std::make_unique<torch::optim::AdamWOptions>(options.lr * g.lr_scale);
    opts->betas({options.beta1, options.beta2})
        .eps(options.eps)
        .weight_decay(g.weight_decay ? options.weight_decay : 0.0);
    out.emplace_back(g.params, std::move(opts));
  }
  return out;
}

}  // namespace sd::train
