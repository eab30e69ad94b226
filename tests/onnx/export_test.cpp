// The ONNX export of a TinyViT of another size than the fixtures' (tests/common/pipeline.h's
// small student) with seeded weights, batch-norm statistics and attention biases: the checker
// accepts it, the graph is the inference graph, and ONNX Runtime computes what samdistill does.
#include "onnx/export.h"

#include <ATen/ATen.h>
#include <torch/types.h>

#include <cstdio>

#include "common/pipeline.h"
#include "models/predictor.h"
#include "models/tiny_vit.h"
#include "onnx/graph.h"
#include "onnx/onnx_testing.h"

namespace sd::onnx {
namespace {

using namespace sd::testing;

// The small student with every weight seeded, its batch norms' running statistics and its
// attention bias tables included (they start as 1 / 0 / 0, which folding or a wrong gather
// would leave unchanged).
models::EncoderConfig small_config() {
  return models::encoder_config_from_json(nlohmann::json::parse(kSmallStudent), "kSmallStudent");
}

models::Sam small_sam() {
  torch::manual_seed(7);
  models::Sam sam = models::build_sam(small_config());
  torch::NoGradGuard no_grad;
  for (auto& p : sam->named_parameters()) p.value().copy_(at::randn_like(p.value()) * 0.2);
  for (auto& b : sam->named_buffers())
    if (b.key().find("running_var") != std::string::npos)
      b.value().uniform_(0.5, 2.0);
    else if (b.key().find("running_mean") != std::string::npos)
      b.value().normal_(0.0, 0.3);
  sam->eval();
  return sam;
}

class OnnxExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    sam_ = new models::Sam(small_sam());
    dir_ = make_temp_dir("sd_onnx_small");
    exported_ = export_onnx(**sam_, small_config(), dir_);
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(dir_);
    delete sam_;
  }
  static models::Sam* sam_;
  static std::string dir_;
  static Exported exported_;
};
models::Sam* OnnxExport::sam_ = nullptr;
std::string OnnxExport::dir_;
Exported OnnxExport::exported_;

TEST(OnnxGraph, EqualConstantsAreStoredOnceAndOutputsTakeTheirNames) {
  Graph g;
  g.input("x", Type::float32, {int64_t(2)});
  const std::string a = g.constant(at::tensor({1.0f, 2.0f}), "a");
  EXPECT_EQ(g.constant(at::tensor({1.0f, 2.0f}), "b"), a);
  EXPECT_NE(g.constant(at::tensor({1.0f, 3.0f}), "c"), a);
  EXPECT_NE(g.constant(at::tensor({1, 2}, at::kLong), "d"), a);  // same values, other type
  EXPECT_EQ(g.initializer_count(), 3u);
  g.output(g.op("Add", {"x", a}), "y", Type::float32, {int64_t(2)});
  const std::string model = g.serialize("g", "");
  EXPECT_NE(model.find("y"), std::string::npos);
  EXPECT_EQ(model.find("Add:0"), std::string::npos);  // renamed to the output's name
}

TEST_F(OnnxExport, TheCheckerAcceptsTheInferenceGraphOfAnotherTinyViTSize) {
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_EQ(onnx_check(exported_.encoder_path), "");
  EXPECT_EQ(onnx_check(exported_.decoder_path), "");
  const nlohmann::json encoder = onnx_summary(exported_.encoder_path);
  // Batch norms folded into the convolutions, bias tables gathered at export, one copy of each
  // constant.
  EXPECT_FALSE(encoder["ops"].contains("BatchNormalization")) << encoder.dump();
  EXPECT_EQ(encoder["ops"].value("Gather", 0), 0) << encoder.dump();
  EXPECT_EQ(encoder["duplicates"], 0) << encoder.dump();
  EXPECT_EQ(onnx_summary(exported_.decoder_path)["duplicates"], 0);
}

TEST_F(OnnxExport, OnnxRuntimeComputesWhatSamdistillDoesForAnotherTinyViTSize) {
  if (const std::string why = ort_missing(); !why.empty()) GTEST_SKIP() << why;
  at::NoGradGuard no_grad;
  models::Sam& sam = *sam_;
  const at::Tensor image = at::randn({1, 3, 1024, 1024});
  const at::Tensor ours = sam->image_encoder->forward(image);
  const OrtRun run = run_ort(exported_.encoder_path, {{"image", image}});
  ASSERT_EQ(run.outputs.count("image_embeddings"), 1u);
  const at::Tensor theirs = run.outputs.at("image_embeddings");
  ASSERT_EQ(theirs.sizes(), ours.sizes());
  const double rel = rel_l2(theirs, ours);
  EXPECT_LE(rel, 1e-4);
  std::printf("[ small TinyViT ] ONNX Runtime embedding relative L2 %.2e\n", rel);

  // Two points and the padding point on a 600x900 (HxW) image.
  models::SamPredictor predictor(sam);
  predictor.set_image_embedding(ours, {600, 900});
  models::Prompts p;
  p.point_coords = at::tensor({300.0f, 200.0f, 650.0f, 420.0f}).view({2, 2});
  p.point_labels = at::tensor({1, 0}, at::kInt);
  const at::Tensor coords =
      at::cat({predictor.transform().apply_coords(p.point_coords, {600, 900}), at::zeros({1, 2})});
  const OrtRun decoded = run_ort(exported_.decoder_path,
                                 {{"image_embeddings", ours},
                                  {"point_coords", coords.unsqueeze(0)},
                                  {"point_labels", at::tensor({1.0f, 0.0f, -1.0f}).unsqueeze(0)},
                                  {"mask_input", at::zeros({1, 1, 256, 256})},
                                  {"has_mask_input", at::tensor({0.0f})},
                                  {"orig_im_size", at::tensor({600.0f, 900.0f})}});
  ASSERT_EQ(decoded.outputs.count("masks"), 1u);
  const models::Prediction multi = predictor.predict(p, true, true);
  const at::Tensor masks = decoded.outputs.at("masks")[0].slice(0, 1, 4) > 0;
  ASSERT_EQ(masks.sizes(), multi.masks.sizes());
  for (int64_t i = 0; i < 3; ++i)
    EXPECT_GE(mask_iou(masks[i], multi.masks[i] > 0), 0.999) << "mask " << i;
  EXPECT_LE((decoded.outputs.at("iou_predictions")[0].slice(0, 1, 4) - multi.iou_predictions)
                .abs()
                .max()
                .item<double>(),
            1e-4);
}

TEST(OnnxGraph, ExternalDataHoldsTheLargeInitializersAtTheirOffsets) {
  Graph g;
  g.input("x", Type::float32, {int64_t(4)});
  const at::Tensor small = at::tensor({1.0f, 2.0f}), large = at::arange(4, at::kFloat) + 10;
  const at::Tensor larger = at::arange(8, at::kFloat) + 20;
  g.constant(small, "small");
  const std::string a = g.constant(large, "large"), b = g.constant(larger, "larger");
  g.output(g.op("Add", {a, g.op("Slice", {b, g.ints({0}), g.ints({4})})}), "y", Type::float32,
           {int64_t(4)});
  std::string side_file;
  Graph::External external{"m.onnx.data", 16,
                           [&side_file](std::string_view b) { side_file.append(b); }};
  const std::string model = g.serialize("g", "", &external);
  auto bytes = [](const at::Tensor& t) {
    return std::string(static_cast<const char*>(t.data_ptr()), t.numel() * 4);
  };
  // 16 and 32 bytes out, one after the other in the order of the initializers; 8 and 4 in.
  EXPECT_EQ(side_file, bytes(large) + bytes(larger));
  EXPECT_EQ(external.size, side_file.size());
  EXPECT_EQ(model.find(bytes(large)), std::string::npos);
  EXPECT_NE(model.find(bytes(small)), std::string::npos);
  EXPECT_NE(model.find("m.onnx.data"), std::string::npos);
  EXPECT_EQ(g.initializer_bytes(), 8u + 16u + 32u + 2u * 8u);  // and the Slice's two ints
  EXPECT_EQ(g.serialize("g", "").find("m.onnx.data"), std::string::npos);  // inline otherwise
}

// --external-data's files: the checker (given the path, it checks where the data lies) accepts
// them, ONNX Runtime loads them and computes what the model with its initializers inside does.
TEST_F(OnnxExport, ExternalDataModelsPassTheCheckerAndRunInOnnxRuntime) {
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  const std::string dir = dir_ + "/external";
  ExportOptions options;
  options.external_data = 4096;
  const Exported e = export_onnx(**sam_, small_config(), dir, options);
  EXPECT_TRUE(e.encoder_external && e.decoder_external);
  ASSERT_TRUE(std::filesystem::exists(dir + "/encoder.onnx.data"));
  // Most of the bytes are outside.
  EXPECT_LT(std::filesystem::file_size(dir + "/encoder.onnx") * 4,
            std::filesystem::file_size(dir + "/encoder.onnx.data"));
  EXPECT_EQ(onnx_check(e.encoder_path), "");
  EXPECT_EQ(onnx_check(e.decoder_path), "");
  // The data file is read at the offsets the model names: moved away, the checker says so.
  std::filesystem::rename(dir + "/decoder.onnx.data", dir + "/moved");
  EXPECT_NE(onnx_check(e.decoder_path), "");
  std::filesystem::rename(dir + "/moved", dir + "/decoder.onnx.data");

  if (const std::string why = ort_missing(); !why.empty()) GTEST_SKIP() << why;
  const at::Tensor image = at::randn({1, 3, 1024, 1024});
  const at::Tensor inside =
      run_ort(exported_.encoder_path, {{"image", image}}).outputs.at("image_embeddings");
  const OrtRun outside = run_ort(e.encoder_path, {{"image", image}});
  ASSERT_EQ(outside.outputs.count("image_embeddings"), 1u);
  EXPECT_TRUE(at::equal(outside.outputs.at("image_embeddings"), inside));

  // Exported again without it, the model holds its data again and the stale file is gone.
  export_onnx(**sam_, small_config(), dir);
  EXPECT_FALSE(std::filesystem::exists(dir + "/encoder.onnx.data"));
}

TEST(OnnxExportRule, ExternalDataIsChosenForModelsOverProtobufsLimit) {
  EXPECT_FALSE(needs_external_data(size_t(100) << 20));
  EXPECT_FALSE(needs_external_data(size_t(1900) << 20));
  EXPECT_TRUE(needs_external_data(size_t(2040) << 20));  // with the graph it would not fit
  EXPECT_TRUE(needs_external_data(size_t(2500) << 20));  // ViT-H's encoder
}

}  // namespace
}  // namespace sd::onnx
