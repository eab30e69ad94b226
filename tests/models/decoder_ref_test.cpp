// SAM's prompt side (prompt encoder, two-way transformer, mask decoder, postprocessing,
// predictor) against what the Python reference computed for every case of every model
// folder: first from the stored embedding (the decoder alone), then from the image
// through the whole model.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "models/predictor.h"

namespace sd::models {
namespace {

using namespace sd::testing;
using Tensors = std::map<std::string, at::Tensor>;

// Tolerances of the fixtures README; traces and sparse embeddings use the embedding's.
constexpr double kRelTol = 1e-4;
constexpr double kLogitTol = 1e-2;
constexpr double kIouTol = 1e-3;
constexpr double kMaskAgreement = 0.999;

Sam load_sam(const ModelFolder& folder) {
  Sam sam = build_sam(encoder_config_from_json(folder.config, folder.file("config.json")));
  io::load_state_dict(*sam, io::read_state_dict(folder.file("weights.pth")), "",
                      folder.file("weights.pth"));
  sam->eval();
  sam->to(test_device());
  return sam;
}

nlohmann::json read_cases_json(const ModelFolder& folder) {
  std::ifstream in(folder.file("cases.json"));
  return nlohmann::json::parse(in);
}

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.cpu().to(at::kDouble) - b.cpu().to(at::kDouble)).abs().max().item<double>();
}

// numpy.packbits (MSB first) of a C-order boolean array, unpacked to `numel` bools.
at::Tensor unpack_bits(const at::Tensor& packed, int64_t numel) {
  at::Tensor shifts = at::arange(7, -1, -1, packed.options());
  return packed.unsqueeze(-1)
      .bitwise_right_shift(shifts)
      .bitwise_and(1)
      .flatten()
      .slice(0, 0, numel)
      .to(at::kBool);
}

// A trace is [sum, L2 norm, first 256 values in C order]. The sum and norm are taken in
// float32 over the contiguous tensor, as the reference took them: for 3M equal values (case
// 5's dense embedding) that float32 norm is 3e-4 off the exact one.
void expect_trace(const std::string& what, const at::Tensor& mine, const at::Tensor& ref) {
  at::Tensor x = mine.cpu().contiguous().flatten().to(at::kFloat);
  double l2 = x.norm().item<double>(), ref_l2 = ref[1].item<double>();
  EXPECT_LE(std::abs(l2 - ref_l2), kRelTol * ref_l2) << what << " L2";
  EXPECT_LE(std::abs(x.sum().item<double>() - ref[0].item<double>()),
            kRelTol * x.abs().sum().item<double>())
      << what << " sum";
  at::Tensor first = ref.slice(0, 2).to(at::kDouble);
  double scale = std::max(1.0, first.abs().max().item<double>());
  EXPECT_LE(max_abs_diff(x.slice(0, 0, first.numel()), first), kRelTol * scale)
      << what << " first values";
}

// Runs every case of cases.json on the predictor's current image and compares.
void check_cases(SamPredictor& predictor, const Tensors& cases, const nlohmann::json& cases_json,
                 const std::string& label) {
  for (const auto& spec : cases_json) {
    std::string k = "case" + std::to_string(spec.at("case").get<int>()) + ".";
    SCOPED_TRACE(label + " " + k);
    auto get = [&](const std::string& name) { return cases.at(k + name); };
    bool multimask = spec.at("multimask").get<bool>();
    Prompts prompts;
    if (spec.contains("point_coords")) {
      prompts.point_coords = get("point_coords");
      prompts.point_labels = get("point_labels");
    }
    if (spec.contains("box")) prompts.box = get("box");
    if (spec.contains("mask_input")) prompts.mask_input = get("mask_input");
    Trace trace;
    Prediction out;
    if (spec.value("batched", false)) {
      prompts.box = predictor.transform()
                        .apply_boxes(get("boxes"), predictor.original_size())
                        .to(test_device());
      out = predictor.predict_torch(prompts, multimask, false, &trace);
    } else {
      out = predictor.predict(prompts, multimask, false, &trace);
    }

    for (const auto& [name, tensor] : trace) {
      if (name == "sparse_embeddings") {
        ASSERT_EQ(tensor.sizes(), get(name).sizes());
        EXPECT_LE(max_abs_diff(tensor, get(name)), kRelTol * get(name).abs().max().item<double>());
      } else {
        expect_trace(name, tensor, get("trace." + name));
      }
    }
    ASSERT_EQ(out.low_res_logits.sizes(), get("low_res_masks").sizes());
    ASSERT_EQ(out.iou_predictions.sizes(), get("iou_predictions").sizes());
    std::vector<int64_t> masks_shape = spec.at("masks_shape").get<std::vector<int64_t>>();
    ASSERT_EQ(out.masks.sizes(), at::IntArrayRef(masks_shape));
    double logit_err = max_abs_diff(out.low_res_logits, get("low_res_masks"));
    double iou_err = max_abs_diff(out.iou_predictions, get("iou_predictions"));
    at::Tensor expected = unpack_bits(get("masks_packed"), out.masks.numel());
    double agreement = out.masks.cpu().flatten().eq(expected).to(at::kDouble).mean().item<double>();
    EXPECT_LE(logit_err, kLogitTol);
    EXPECT_LE(iou_err, kIouTol);
    EXPECT_GE(agreement, kMaskAgreement);
    std::printf("[ %s %s ] low-res logits max abs %.2e, IoU max abs %.2e, masks agree %.6f\n",
                label.c_str(), k.c_str(), logit_err, iou_err, agreement);
  }
}

Size2 original_size(const Tensors& cases) {
  at::Tensor s = cases.at("original_size");
  return {s[0].item<int64_t>(), s[1].item<int64_t>()};
}

TEST(DecoderRef, EveryCaseFromTheStoredEmbedding) {
  SD_REQUIRE_FIXTURES();
  ASSERT_FALSE(model_folders().empty());
  for (const auto& folder : model_folders()) {
    Sam sam = load_sam(folder);
    Tensors cases = load_tensors(folder.file("cases.pth"));
    SamPredictor predictor(sam);
    predictor.set_image_embedding(cases.at("embedding"), original_size(cases));
    at::NoGradGuard no_grad;
    expect_trace(folder.name + " image_pe", sam->prompt_encoder->get_dense_pe(),
                 cases.at("trace.image_pe"));
    check_cases(predictor, cases, read_cases_json(folder), folder.name);
  }
}

TEST(DecoderRef, EveryCaseFromTheImageThroughTheWholeModel) {
  SD_REQUIRE_FIXTURES();
  ASSERT_FALSE(model_folders().empty());
  for (const auto& folder : model_folders()) {
    Sam sam = load_sam(folder);
    Tensors cases = load_tensors(folder.file("cases.pth"));
    SamPredictor predictor(sam);
    predictor.set_image(cases.at("image_resized"), original_size(cases));
    at::Tensor embedding = cases.at("embedding");
    double rel = (predictor.get_image_embedding() - embedding).norm().item<double>() /
                 embedding.norm().item<double>();
    EXPECT_LE(rel, kRelTol) << folder.name << " embedding relative L2 error";
    std::printf("[ %s ] embedding relative L2 error %.2e\n", folder.name.c_str(), rel);
    check_cases(predictor, cases, read_cases_json(folder), folder.name + " end-to-end");
  }
}

}  // namespace
}  // namespace sd::models
