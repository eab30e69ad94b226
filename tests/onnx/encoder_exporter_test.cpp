// The registry of encoder exporters (onnx/encoder_exporter.h): a family without an exporter is
// refused, naming it and the families that have one; a family of the tests alone
// (common/conv_family.h) exports once its exporter is registered, and ONNX Runtime computes
// its embedding as samdistill does.
#include "onnx/encoder_exporter.h"

#include <ATen/ATen.h>
#include <torch/types.h>

#include <filesystem>

#include "common/conv_family.h"
#include "models/sam.h"
#include "onnx/export.h"
#include "onnx/layers.h"
#include "onnx/onnx_testing.h"

namespace sd::onnx {
namespace {

using namespace sd::testing;

std::string conv_encoder(Graph& g, ConvEncoder& m, const models::EncoderConfig&,
                         const std::string& x) {
  std::string y;
  {
    Graph::Scope s(g, "patch");
    y = gelu(g, conv2d(g, *m.patch, x));
  }
  Graph::Scope s(g, "proj");
  return conv2d(g, *m.proj, y);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(OnnxEncoderExporter, AFamilyWithoutOneIsRefusedAndExportsOnceRegistered) {
  const models::EncoderConfig config = ConvConfig{8};
  torch::manual_seed(3);
  models::Sam sam = models::build_sam(config);
  sam->eval();
  const std::string dir = make_temp_dir("sd_onnx_family");
  const std::string refused = error_of([&] { export_onnx(*sam, config, dir + "/m"); });
  EXPECT_PRED2(contains, refused, "encoder family 'TestConv' has no ONNX exporter");
  EXPECT_PRED2(contains, refused, "families with one: ViT, TinyViT, ResNet");
  EXPECT_FALSE(std::filesystem::exists(dir + "/m")) << "refused after writing";

  register_encoder_exporter("TestConv", exporter_of<ConvEncoder>(conv_encoder));
  EXPECT_PRED2(contains, error_of([] {
                 register_encoder_exporter("TestConv", exporter_of<ConvEncoder>(conv_encoder));
               }),
               "'TestConv' has an exporter already");
  // An encoder of another module than the exporter writes.
  Graph g;
  EXPECT_PRED2(contains,
               error_of([&] { encoder_exporter("ResNet")(g, *sam->image_encoder, config, "x"); }),
               "is not the sd::models::ResNetEncoder its exporter writes");

  const Exported e = export_onnx(*sam, config, dir + "/m");
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  EXPECT_EQ(onnx_check(e.encoder_path), "");
  if (const std::string why = ort_missing(); !why.empty()) GTEST_SKIP() << why;
  const at::Tensor image = at::randn({1, 3, 1024, 1024});
  at::Tensor ours;
  {
    torch::NoGradGuard no_grad;
    ours = sam->image_encoder->forward(image);
  }
  const OrtRun run = run_ort(e.encoder_path, {{"image", image}});
  ASSERT_EQ(run.outputs.count("image_embeddings"), 1u);
  EXPECT_LE(rel_l2(run.outputs.at("image_embeddings"), ours), 1e-4);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace sd::onnx
