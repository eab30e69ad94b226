#include "train/param_groups.h"

#include <torch/optim/adamw.h>

#include <cmath>
#include <map>

namespace sd::train {
bool decays(const std::string& name, const at::Tensor& param) {
  const std::string tail = "attention_biases";
  bool attention_bias =
      name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  return param.dim() > 1 && !attention_bias;
}

double layer_lr_scale(const std::string& name, const models::EncoderConfig& config, double decay) {
  const int block = config.family().block_of(name, config);
  if (block < 0) return 1.0;
  return std::pow(decay, config.family().blocks(config) - block - 1);
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
