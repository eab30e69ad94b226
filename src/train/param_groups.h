#pragma once
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include <functional>
#include <string>
#include <vector>

#include "models/config.h"

namespace sd::train {

struct GroupOptions {
  double lr = 1e-3;
  double weight_decay = 0.01;
  double layer_decay = 1.0;  // TinyViT fine-tunes with 0.8; 1.0 turns it off
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

// One AdamW group per (learning-rate scale, decayed or not), with the parameter names of
// each, in the module's parameter order.
struct ParamGroup {
  double lr_scale = 1.0;
  bool weight_decay = true;
  std::vector<std::string> names;
  std::vector<at::Tensor> params;
};

// Norms, biases (every 1-D parameter) and TinyViT's attention biases get no weight decay.
bool decays(const std::string& name, const at::Tensor& param);

// Layer-wise learning-rate scale of an encoder parameter (names relative to the encoder),
// as TinyViT's set_layer_lr_decay assigns it: block i of n (EncoderFamily::block_of) gets
// decay^(n-i-1), everything after the blocks (neck, heads) 1.
double layer_lr_scale(const std::string& name, const models::EncoderConfig& config, double decay);

std::vector<ParamGroup> make_param_groups(const torch::nn::Module& encoder,
                                          const models::EncoderConfig& config, double layer_decay);
// The groups of a module's trainable parameters (frozen ones are left out) with a learning-rate
// scale per parameter name.
std::vector<ParamGroup> make_param_groups(
    const torch::nn::Module& module, const std::function<double(const std::string&)>& lr_scale);

// AdamW groups for torch::optim::AdamW, lr = options.lr * scale.
std::vector<torch::optim::OptimizerParamGroup> adamw_groups(const std::vector<ParamGroup>& groups,
                                                            const GroupOptions& options);

}  // namespace sd::train
