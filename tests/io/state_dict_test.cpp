#include "io/state_dict.h"

#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/linear.h>

#include "common/fixtures.h"

namespace sd::io {
namespace {

using sd::testing::contains;
using sd::testing::error_of;

// Registers a child before its own parameter and buffer: Python's order still lists the
// module's own entries first.
struct Net : torch::nn::Module {
  Net() {
    fc = register_module("fc", torch::nn::Linear(3, 2));
    scale = register_parameter("scale", at::ones({1}));
    count = register_buffer("count", at::zeros({1}, at::kLong));
    bn = register_module("bn", torch::nn::BatchNorm1d(2));
  }
  torch::nn::Linear fc{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
  at::Tensor scale, count;
};

std::vector<std::string> keys(const StateDict& sd) {
  std::vector<std::string> out;
  for (const auto& e : sd) out.push_back(e.first);
  return out;
}

// The state dict of a fresh Net under `prefix`, with values different from the model's.
StateDict file_like(const std::string& prefix) {
  Net other;
  StateDict out = state_dict(other, prefix);
  for (auto& e : out) e.second = e.second.detach().clone().fill_(3);
  return out;
}

TEST(StateDict, PythonOrder) {
  Net net;
  EXPECT_EQ(keys(state_dict(net, "m.")),
            (std::vector<std::string>{"m.scale", "m.count", "m.fc.weight", "m.fc.bias",
                                      "m.bn.weight", "m.bn.bias", "m.bn.running_mean",
                                      "m.bn.running_var", "m.bn.num_batches_tracked"}));
}

TEST(StateDict, LoadCopiesInPlaceAndConvertsDtype) {
  Net net;
  at::Tensor weight = net.fc->weight;
  StateDict given = file_like("image_encoder.");
  for (auto& e : given)
    if (e.second.is_floating_point()) e.second = e.second.to(at::kHalf);  // an fp16 file
  given.emplace_back("mask_decoder.other", at::ones({5}));  // outside the prefix: ignored
  load_state_dict(net, given, "image_encoder.", "file.pth");
  EXPECT_TRUE(net.fc->weight.is_same(weight));
  EXPECT_EQ(net.fc->weight.scalar_type(), at::kFloat);
  EXPECT_TRUE(at::equal(net.fc->weight, at::full({2, 3}, 3.0)));
  EXPECT_EQ(net.bn->num_batches_tracked.item<int64_t>(), 3);
  EXPECT_TRUE(net.fc->weight.requires_grad());
}

TEST(StateDict, MissingKeyNamesKeyShapeAndSource) {
  Net net;
  StateDict given = file_like("");
  given.erase(given.begin() + 2);  // fc.weight
  std::string msg = error_of([&] { load_state_dict(net, given, "", "ckpt.pth"); });
  EXPECT_PRED2(contains, msg, "ckpt.pth");
  EXPECT_PRED2(contains, msg, "missing key 'fc.weight' (model shape [2, 3])");
}

TEST(StateDict, UnexpectedKeyIsAnError) {
  Net net;
  StateDict given = file_like("");
  given.emplace_back("fc.extra", at::ones({4}));
  std::string msg = error_of([&] { load_state_dict(net, given, "", "ckpt.pth"); });
  EXPECT_PRED2(contains, msg, "unexpected key 'fc.extra' (shape [4])");
}

TEST(StateDict, WrongShapeNamesBothShapes) {
  Net net;
  StateDict given = file_like("");
  given[2].second = at::zeros({3, 3});
  std::string msg = error_of([&] { load_state_dict(net, given, "", "ckpt.pth"); });
  EXPECT_PRED2(contains, msg, "ckpt.pth");
  EXPECT_PRED2(contains, msg,
               "key 'fc.weight' has shape [3, 3] in the file but [2, 3] in the model");
  EXPECT_TRUE(at::equal(net.bn->weight, at::ones({2})));  // nothing was loaded
}

// A buffer Python registers with persistent=False is neither written nor expected.
TEST(StateDict, NonPersistentBuffersAreNoState) {
  struct WithIndex : torch::nn::Module {
    WithIndex() {
      w = register_parameter("w", at::ones({2}));
      idxs = register_buffer("attention_bias_idxs", at::arange(4));
    }
    at::Tensor w, idxs;
  } m;
  EXPECT_FALSE(is_persistent_buffer("attention_bias_idxs"));
  EXPECT_TRUE(is_persistent_buffer("running_mean"));
  EXPECT_EQ(keys(state_dict(m)), (std::vector<std::string>{"w"}));
  load_state_dict(m, {{"w", at::full({2}, 5.0)}}, "", "ckpt.pth");
  EXPECT_TRUE(at::equal(m.w, at::full({2}, 5.0)));
  EXPECT_PRED2(contains, error_of([&] {
                 load_state_dict(m, {{"w", at::ones({2})}, {"attention_bias_idxs", at::arange(4)}},
                                 "", "ckpt.pth");
               }),
               "unexpected key 'attention_bias_idxs'");
}

TEST(StateDict, StripPrefixAndCountParameters) {
  StateDict sd = {{"image_encoder.a", at::zeros({2, 3})},
                  {"image_encoder.n", at::zeros({}, at::kLong)},
                  {"mask_decoder.b", at::zeros({4}, at::kHalf)}};
  StateDict enc = strip_prefix(sd, "image_encoder.");
  EXPECT_EQ(keys(enc), (std::vector<std::string>{"a", "n"}));
  EXPECT_EQ(count_parameters(sd), 10);
  EXPECT_EQ(count_parameters(enc), 6);
}

}  // namespace
}  // namespace sd::io
