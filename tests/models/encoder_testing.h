#pragma once
// Shared by the encoder reference tests: a fixture folder's encoder and its input image.
#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <memory>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "models/image_encoder.h"
#include "models/preprocess.h"

namespace sd::models::encoder_testing {

// The folder's encoder (from its config.json), with weights.pth's `image_encoder.` entries
// loaded strictly, in eval mode.
inline std::shared_ptr<ImageEncoder> load_encoder(const sd::testing::ModelFolder& folder) {
  auto encoder =
      make_image_encoder(encoder_config_from_json(folder.config, folder.file("config.json")));
  io::load_state_dict(*encoder, io::read_state_dict(folder.file("weights.pth")), "image_encoder.",
                      folder.file("weights.pth"));
  encoder->eval();
  encoder->to(sd::testing::test_device());
  return encoder;
}

// The folder's `image_resized` (cases.pth), normalised and padded: 1x3x1024x1024.
inline at::Tensor encoder_input(const sd::testing::ModelFolder& folder) {
  return normalize_and_pad(sd::testing::load_tensors(folder.file("cases.pth")).at("image_resized"))
      .to(sd::testing::test_device());
}

inline double relative_error(const at::Tensor& ours, const at::Tensor& reference) {
  return (ours.cpu().to(at::kDouble) - reference.to(at::kDouble)).norm().item<double>() /
         reference.to(at::kDouble).norm().item<double>();
}

// The largest relative error of a stage output against its [sum, norm, first 256] summary.
// Sums and norms are taken in fp32 like the reference's: a sum of millions of values
// with cancellation differs by more than the tolerance between fp32 and fp64.
inline double trace_error(const at::Tensor& output, const at::Tensor& summary) {
  at::Tensor flat = output.contiguous().view(-1);
  double sum = flat.sum().item<double>(), ref_sum = summary[0].item<double>();
  double norm = flat.norm().item<double>(), ref_norm = summary[1].item<double>();
  int64_t n = std::min<int64_t>(256, flat.numel());
  return std::max({std::abs(sum - ref_sum) / std::abs(ref_sum),
                   std::abs(norm - ref_norm) / ref_norm,
                   relative_error(flat.slice(0, 0, n), summary.slice(0, 2, 2 + n))});
}

}  // namespace sd::models::encoder_testing
