#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>
#include <vector>

namespace torch::nn {
class Module;
}

namespace sd::io {

// An ordered flat state dict, as Python's `module.state_dict()` / `torch.save` hold it.
using StateDict = std::vector<std::pair<std::string, at::Tensor>>;

// Python's order: for each module its own parameters, then its own persistent buffers, then
// each child in registration order, recursively; names joined with '.'.
StateDict state_dict(const torch::nn::Module& module, const std::string& prefix = "");

// Whether a buffer of this name is state. LibTorch has no `persistent=False`; the buffers
// Python registers that way (derived from the configuration, in no official checkpoint:
// TinyViT's `attention_bias_idxs`) are listed here by name, and state_dict and
// load_state_dict pass over them.
bool is_persistent_buffer(const std::string& name);

// Strict loading: every key of `module` (under `prefix`) must be present with the same
// shape and no extra key may exist under `prefix`; otherwise sd::Error naming the key,
// both shapes and `source` (usually the file name). Values are copied in place, keeping
// the module's device and dtype.
void load_state_dict(torch::nn::Module& module, const StateDict& entries, const std::string& prefix,
                     const std::string& source);

// The entries whose key starts with `prefix`, with the prefix removed.
StateDict strip_prefix(const StateDict& entries, const std::string& prefix);

// The image encoder's entries of a full SAM / MobileSAM state dict (its `image_encoder.*`,
// prefix removed), or `entries` unchanged when it holds an encoder alone.
StateDict encoder_entries(const StateDict& entries);

// Sum of the element counts of the floating-point entries.
int64_t count_parameters(const StateDict& entries);

}  // namespace sd::io
