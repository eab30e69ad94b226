#include "io/state_dict.h"

#include <ATen/core/grad_mode.h>
#include <torch/nn/module.h>

#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "util/error.h"
#include "util/text.h"

namespace sd::io {
namespace {

std::string shape_of(const at::Tensor& t) { return c10::str(t.sizes()); }

// At most this many problems are listed in one error; the rest are counted.
constexpr size_t kMaxProblems = 10;

}  // namespace

bool is_persistent_buffer(const std::string& name) { return name != "attention_bias_idxs"; }

StateDict state_dict(const torch::nn::Module& module, const std::string& prefix) {
  StateDict out;
  for (const auto& p : module.named_parameters(/*recurse=*/false))
    if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/false))
    if (b.value().defined() && is_persistent_buffer(b.key()))
      out.emplace_back(prefix + b.key(), b.value());
  for (const auto& child : module.named_children()) {
    StateDict sub = state_dict(*child.value(), prefix + child.key() + ".");
    out.insert(out.end(), sub.begin(), sub.end());
  }
  return out;
}

void load_state_dict(torch::nn::Module& module, const StateDict& entries, const std::string& prefix,
                     const std::string& source) {
  std::unordered_map<std::string, const at::Tensor*> given;
  for (const auto& [key, tensor] : entries)
    if (starts_with(key, prefix)) given.emplace(key, &tensor);

  StateDict expected = state_dict(module, prefix);
  std::unordered_set<std::string> wanted;
  std::vector<std::string> problems;
  for (const auto& [key, target] : expected) {
    wanted.insert(key);
    auto it = given.find(key);
    if (it == given.end()) {
      problems.push_back("missing key '" + key + "' (model shape " + shape_of(target) + ")");
    } else if (it->second->sizes() != target.sizes()) {
      problems.push_back("key '" + key + "' has shape " + shape_of(*it->second) +
                         " in the file but " + shape_of(target) + " in the model");
    }
  }
  for (const auto& [key, tensor] : entries)
    if (given.count(key) && !wanted.count(key))
      problems.push_back("unexpected key '" + key + "' (shape " + shape_of(tensor) + ")");

  if (!problems.empty()) {
    std::ostringstream msg;
    msg << source << ": state dict does not fit the model (" << problems.size() << " problems):";
    for (size_t i = 0; i < problems.size() && i < kMaxProblems; ++i) msg << "\n  " << problems[i];
    if (problems.size() > kMaxProblems)
      msg << "\n  ... and " << problems.size() - kMaxProblems << " more";
    throw Error(msg.str());
  }

  at::NoGradGuard no_grad;
  for (auto& [key, target] : expected) target.copy_(*given.at(key));  // converts dtype and device
}

StateDict strip_prefix(const StateDict& entries, const std::string& prefix) {
  StateDict out;
  for (const auto& [key, tensor] : entries)
    if (starts_with(key, prefix)) out.emplace_back(key.substr(prefix.size()), tensor);
  return out;
}

int64_t count_parameters(const StateDict& entries) {
  int64_t total = 0;
  for (const auto& entry : entries)
    if (at::isFloatingType(entry.second.scalar_type())) total += entry.second.numel();
  return total;
}

StateDict encoder_entries(const StateDict& entries) {
  StateDict encoder = strip_prefix(entries, "image_encoder.");
  return encoder.empty() ? entries : encoder;
}

}  // namespace sd::io
