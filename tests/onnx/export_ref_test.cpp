// `export --format onnx` of the reference fixtures' models (the TinyViT student and the ViT
// teacher): ONNX's checker accepts both files, and ONNX Runtime computes from them what
// samdistill computes itself: the embedding of the fixture image, and every single-image case
// of cases.json through SAM's ONNX decoder signature (prompts as SAM's ONNX example feeds them).
#include <ATen/ATen.h>

#include <cstdio>
#include <fstream>

#include "common/fixture_sam.h"
#include "io/checkpoint.h"
#include "models/predictor.h"
#include "models/resnet.h"
#include "models/resnet_testing.h"
#include "models/sam.h"
#include "onnx/export.h"
#include "onnx/onnx_testing.h"

namespace sd::onnx {
namespace {

using namespace sd::testing;
using Tensors = std::map<std::string, at::Tensor>;

constexpr double kRelTol = 1e-4;  // embeddings, relative L2
constexpr double kIouTol = 1e-4;  // predicted IoUs, absolute
constexpr double kMaskIou = 0.999;
constexpr double kLogitTol = 1e-2;  // low-res logits, absolute (the fixtures' tolerance)

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// The decoder's inputs for one image's prompts in original pixels, as SAM's ONNX example
// builds them: coordinates in the resized frame, box corners labelled 2 and 3, and a padding
// point (label -1) when there is no box.
Tensors decoder_inputs(const models::SamPredictor& predictor, const models::Prompts& p,
                       const at::Tensor& embedding) {
  const models::ResizeLongestSide& t = predictor.transform();
  const models::Size2 size = predictor.original_size();
  std::vector<at::Tensor> coords, labels;
  if (p.point_coords.defined()) {
    coords.push_back(t.apply_coords(p.point_coords.to(at::kFloat), size));
    labels.push_back(p.point_labels.to(at::kFloat));
  }
  if (p.box.defined()) {
    coords.push_back(t.apply_coords(p.box.to(at::kFloat).view({2, 2}), size));
    labels.push_back(at::tensor({2.0f, 3.0f}));
  } else {
    coords.push_back(at::zeros({1, 2}));
    labels.push_back(at::tensor({-1.0f}));
  }
  const bool has_mask = p.mask_input.defined();
  return {{"image_embeddings", embedding},
          {"point_coords", at::cat(coords).unsqueeze(0)},
          {"point_labels", at::cat(labels).unsqueeze(0)},
          {"mask_input", has_mask ? p.mask_input.unsqueeze(0) : at::zeros({1, 1, 256, 256})},
          {"has_mask_input", at::tensor({has_mask ? 1.0f : 0.0f})},
          {"orig_im_size", at::tensor({float(size[0]), float(size[1])})}};
}

// ONNX Runtime's masks `first` .. `first + n` of `onnx` against predict()'s.
void expect_same_prediction(const OrtRun& onnx, int64_t first, const models::Prediction& ours,
                            const std::string& what) {
  const int64_t n = ours.iou_predictions.size(0);
  ASSERT_EQ(onnx.outputs.count("masks"), 1u) << what;
  const at::Tensor masks = onnx.outputs.at("masks")[0].slice(0, first, first + n);
  const at::Tensor ious = onnx.outputs.at("iou_predictions")[0].slice(0, first, first + n);
  const at::Tensor low_res = onnx.outputs.at("low_res_masks")[0].slice(0, first, first + n);
  ASSERT_EQ(masks.sizes(), ours.masks.sizes()) << what;
  for (int64_t i = 0; i < n; ++i) {
    const double iou = mask_iou(masks[i] > 0, ours.masks[i]);
    EXPECT_GE(iou, kMaskIou) << what << " mask " << i;
    std::printf("[ %s mask %ld ] IoU with predict's %.6f\n", what.c_str(), long(i), iou);
  }
  EXPECT_LE(max_abs_diff(ious, ours.iou_predictions), kIouTol) << what;
  EXPECT_LE(max_abs_diff(low_res, ours.low_res_logits), kLogitTol) << what;
}

// What makes int8 faster than fp32 in ONNX Runtime, in the graph it runs once it has loaded
// `model` (`loaded`): every quantised product fused into its integer kernel
// (DynamicQuantizeMatMul), every convolution's int8 weight folded back to a float constant (so
// that it runs fp32's convolution kernels), no DequantizeLinear left to run per call.
void expect_runs_int8_kernels(const std::string& model, const std::string& loaded) {
  const nlohmann::json exported = onnx_summary(model).at("ops");
  const nlohmann::json ops = onnx_summary(loaded).at("ops");
  EXPECT_EQ(ops.value("DynamicQuantizeMatMul", 0), exported.value("MatMulInteger", 0)) << ops;
  EXPECT_EQ(ops.value("MatMulInteger", 0), 0) << ops;
  EXPECT_EQ(ops.value("DequantizeLinear", 0), 0) << ops;
  EXPECT_EQ(ops.value("Cast", 0), 0) << ops;
  EXPECT_EQ(ops.value("Conv", 0) + ops.value("FusedConv", 0), exported.value("Conv", 0)) << ops;
}

// `sam` (of `config`) exported: ONNX's checker accepts both files and the single-mask decoder.
void expect_checker_accepts(models::SamImpl& sam, const models::EncoderConfig& config,
                            const std::string& name) {
  const std::string dir = make_temp_dir("sd_onnx_check");
  const Exported e = export_onnx(sam, config, dir);
  EXPECT_EQ(onnx_check(e.encoder_path), "") << name << " encoder";
  EXPECT_EQ(onnx_check(e.decoder_path), "") << name << " decoder";
  write_file_atomic(dir + "/single.onnx", decoder_model(sam, {true}));
  EXPECT_EQ(onnx_check(dir + "/single.onnx"), "") << name << " single-mask decoder";
  std::filesystem::remove_all(dir);
}

// `sam` (of `config`) exported: ONNX Runtime's embedding of `folder`'s image (cases.pth) against
// samdistill's (and, when given, the reference's), and its decoder on every single-image case of
// the folder's cases.json against predict's.
void expect_ort_computes_what_predict_does(models::Sam& sam, const models::EncoderConfig& config,
                                           const ModelFolder& folder, const std::string& name,
                                           const at::Tensor& reference_embedding) {
  at::NoGradGuard no_grad;
  SCOPED_TRACE(name);
  const Tensors cases = load_tensors(folder.file("cases.pth"));
  const std::string dir = make_temp_dir("sd_onnx_ort");
  const Exported e = export_onnx(*sam, config, dir);
  const std::string single = dir + "/single.onnx";
  write_file_atomic(single, decoder_model(*sam, {true}));

  const at::Tensor s = cases.at("original_size");
  models::SamPredictor predictor(sam);
  predictor.set_image(cases.at("image_resized"), {s[0].item<int64_t>(), s[1].item<int64_t>()});
  const at::Tensor image = sam->preprocess(cases.at("image_resized"));
  const OrtRun encoded = run_ort(e.encoder_path, {{"image", image}});
  ASSERT_EQ(encoded.outputs.count("image_embeddings"), 1u);
  const at::Tensor embedding = encoded.outputs.at("image_embeddings");
  const double rel = rel_l2(embedding, predictor.get_image_embedding());
  EXPECT_LE(rel, kRelTol) << "embedding";
  std::printf("[ %s ] ONNX Runtime embedding, relative L2 to samdistill's %.2e\n", name.c_str(),
              rel);
  if (reference_embedding.defined())
    std::printf("[ %s ] ONNX Runtime embedding, relative L2 to the reference's %.2e\n",
                name.c_str(), rel_l2(embedding, reference_embedding));

  // Every single-image case (the ONNX decoder takes one prompt set), on samdistill's
  // embedding so that only the decoders are compared here.
  std::vector<std::string> names;
  std::vector<models::Prompts> prompts;
  std::vector<Tensors> feeds;
  std::ifstream json(folder.file("cases.json"));
  for (const auto& spec : nlohmann::json::parse(json)) {
    if (spec.value("batched", false)) continue;
    const std::string k = "case" + std::to_string(spec.at("case").get<int>()) + ".";
    models::Prompts p;
    if (spec.contains("point_coords")) {
      p.point_coords = cases.at(k + "point_coords");
      p.point_labels = cases.at(k + "point_labels");
    }
    if (spec.contains("box")) p.box = cases.at(k + "box");
    if (spec.contains("mask_input")) p.mask_input = cases.at(k + "mask_input");
    names.push_back(name + " " + k);
    prompts.push_back(p);
    feeds.push_back(decoder_inputs(predictor, p, predictor.get_image_embedding()));
  }
  ASSERT_GE(feeds.size(), 4u);
  const std::vector<OrtRun> all = run_ort(e.decoder_path, feeds);
  const std::vector<OrtRun> selected = run_ort(single, feeds);
  for (size_t i = 0; i < feeds.size(); ++i) {
    const models::Prediction multi = predictor.predict(prompts[i], true, true);
    const models::Prediction one = predictor.predict(prompts[i], false, true);
    expect_same_prediction(all[i], 1,
                           {multi.masks > 0, multi.iou_predictions, multi.low_res_logits},
                           names[i] + " multimask");
    expect_same_prediction(all[i], 0, {one.masks > 0, one.iou_predictions, one.low_res_logits},
                           names[i] + " single");

    // --return-single-mask: the first mask for more than two points (a box counts two),
    // else the best of the other three by predicted IoU (SamOnnxModel.select_masks).
    const int64_t points = feeds[i].at("point_labels").size(1);
    const models::Prediction& expected = points > 2 ? one : multi;
    const int64_t best = points > 2 ? 0 : multi.iou_predictions.argmax().item<int64_t>();
    expect_same_prediction(selected[i], 0,
                           {expected.masks.slice(0, best, best + 1) > 0,
                            expected.iou_predictions.slice(0, best, best + 1),
                            expected.low_res_logits.slice(0, best, best + 1)},
                           names[i] + " --return-single-mask");
  }
  std::filesystem::remove_all(dir);
}

class OnnxExportRef : public ::testing::Test {
 protected:
  void SetUp() override {
    SD_REQUIRE_FIXTURES();
    ASSERT_FALSE(model_folders().empty());
  }
};

TEST_F(OnnxExportRef, TheCheckerAcceptsBothFilesOfEveryFixtureModel) {
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  for (const ModelFolder& folder : model_folders()) {
    models::Sam sam = fixture_sam(folder);
    expect_checker_accepts(*sam, fixture_config(folder), folder.name);
  }
}

TEST_F(OnnxExportRef, TheCommandWritesBothModelsOfTheStudent) {
  const ModelFolder folder = *first_folder(true);
  const std::string dir = make_temp_dir("sd_onnx_cli");
  const ProgramRun run = run_program("export --student '" + folder.file("weights.pth") +
                                     "' --format onnx --return-single-mask --out '" + dir + "/m'");
  ASSERT_EQ(run.status, 0) << run.output;
  models::Sam sam = fixture_sam(folder);
  EXPECT_TRUE(read_file(dir + "/m/encoder.onnx") == encoder_model(*sam, fixture_config(folder)));
  EXPECT_TRUE(read_file(dir + "/m/decoder.onnx") == decoder_model(*sam, {true}));
  const ProgramRun refused = run_program("export --student '" + folder.file("weights.pth") +
                                         "' --return-single-mask --out '" + dir + "/x.pt'");
  EXPECT_NE(refused.status, 0);
  EXPECT_PRED2(contains, refused.output, "options of --format onnx");
  // --external-data: the initializers of 64 KiB or more beside the model.
  const ProgramRun external =
      run_program("export --student '" + folder.file("weights.pth") +
                  "' --format onnx --external-data 65536 --out '" + dir + "/e'");
  ASSERT_EQ(external.status, 0) << external.output;
  EXPECT_GT(std::filesystem::file_size(dir + "/e/encoder.onnx.data"),
            10 * std::filesystem::file_size(dir + "/e/encoder.onnx"));
  std::filesystem::remove_all(dir);
}

TEST_F(OnnxExportRef, OnnxRuntimeComputesWhatPredictDoesOnEveryCase) {
  if (const std::string why = ort_missing(); !why.empty()) GTEST_SKIP() << why;
  for (const ModelFolder& folder : model_folders()) {
    models::Sam sam = fixture_sam(folder);
    expect_ort_computes_what_predict_does(sam, fixture_config(folder), folder, folder.name,
                                          load_tensors(folder.file("cases.pth")).at("embedding"));
  }
}

// `sam` (of `config`) exported in fp32 and with `int8` options: the checker accepts the int8
// files, they are at most 0.3x the fp32 files, and in ONNX Runtime their masks for the box
// prompts of `folder`'s cases (single and batched) agree with fp32's (mIoU >= 0.97, the goal on
// box prompts).
void expect_int8_is_a_third_and_agrees_on_boxes(models::Sam& sam,
                                                const models::EncoderConfig& config,
                                                const ModelFolder& folder, const std::string& name,
                                                const ExportOptions& int8_options) {
  SCOPED_TRACE(name);
  const std::string dir = make_temp_dir("sd_onnx_int8");
  const Exported fp32 = export_onnx(*sam, config, dir + "/fp32");
  const Exported int8 = export_onnx(*sam, config, dir + "/int8", int8_options);
  EXPECT_EQ(onnx_check(int8.encoder_path), "");
  EXPECT_EQ(onnx_check(int8.decoder_path), "");
  const double encoder_ratio = double(int8.encoder_bytes) / fp32.encoder_bytes;
  const double decoder_ratio = double(int8.decoder_bytes) / fp32.decoder_bytes;
  EXPECT_LE(encoder_ratio, 0.3);
  EXPECT_LE(decoder_ratio, 0.3);
  std::printf("[ %s int8 ] encoder %zu bytes (%.3fx fp32), decoder %zu bytes (%.3fx)\n",
              name.c_str(), int8.encoder_bytes, encoder_ratio, int8.decoder_bytes, decoder_ratio);

  if (const std::string why = ort_missing(); !why.empty()) GTEST_SKIP() << why;
  const Tensors cases = load_tensors(folder.file("cases.pth"));
  const at::Tensor image = sam->preprocess(cases.at("image_resized"));
  const at::Tensor s = cases.at("original_size");
  models::SamPredictor predictor(sam);
  predictor.set_image(cases.at("image_resized"), {s[0].item<int64_t>(), s[1].item<int64_t>()});
  std::vector<Tensors> feeds;
  std::ifstream json(folder.file("cases.json"));
  for (const auto& spec : nlohmann::json::parse(json)) {
    const std::string k = "case" + std::to_string(spec.at("case").get<int>()) + ".";
    std::vector<at::Tensor> boxes;
    if (spec.contains("box")) boxes.push_back(cases.at(k + "box"));
    if (spec.contains("boxes"))
      for (const at::Tensor& box : cases.at(k + "boxes").unbind()) boxes.push_back(box);
    for (const at::Tensor& box : boxes) {
      models::Prompts p;
      p.box = box;
      feeds.push_back(decoder_inputs(predictor, p, at::Tensor()));
    }
  }
  ASSERT_GE(feeds.size(), 2u);
  std::map<std::string, std::vector<OrtRun>> masks;
  at::Tensor embedding[2];
  for (const Exported* e : {&fp32, &int8}) {
    const int k = e == &int8;
    OrtOptions options;
    options.optimization = "extended";  // ONNX Runtime's fusions, none for one CPU only
    options.optimized_model = dir + (k ? "/int8" : "/fp32") + "/encoder_as_loaded.onnx";
    embedding[k] =
        run_ort(e->encoder_path, {{{"image", image}}}, options)[0].outputs.at("image_embeddings");
    if (k) expect_runs_int8_kernels(int8.encoder_path, options.optimized_model);
    for (Tensors& f : feeds) f["image_embeddings"] = embedding[k];
    masks[k ? "int8" : "fp32"] = run_ort(e->decoder_path, feeds);
  }
  double sum = 0;
  for (size_t i = 0; i < feeds.size(); ++i)  // the first mask: predict's without multimask
    sum += mask_iou(masks["int8"][i].outputs.at("masks")[0][0] > 0,
                    masks["fp32"][i].outputs.at("masks")[0][0] > 0);
  const double miou = sum / feeds.size();
  EXPECT_GE(miou, 0.97);
  std::printf("[ %s int8 ] embedding relative L2 to fp32 %.4f, box mIoU vs fp32 %.4f (%zu boxes)\n",
              name.c_str(), rel_l2(embedding[1], embedding[0]), miou, feeds.size());
  std::filesystem::remove_all(dir);
}

// Every fixture model: the TinyViT student and the ViT teacher (whose position embedding and
// relative-position rows would otherwise stay fp32: 0.6x of the fixture ViT's fp32 file).
TEST_F(OnnxExportRef, Int8IsAThirdOfFp32AndAgreesWithItOnBoxes) {
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  for (const ModelFolder& folder : model_folders()) {
    models::Sam sam = fixture_sam(folder);
    ExportOptions options;
    options.int8 = true;
    expect_int8_is_a_third_and_agrees_on_boxes(sam, fixture_config(folder), folder, folder.name,
                                               options);
  }
}

// NanoSAM's ResNet18 student with the weights of tests/models/make_resnet_fixtures.py's Python
// module (whose embedding models/resnet_ref_test.cpp checks) and the prompt encoder and mask
// decoder of the fixtures' student, exported as the other families are; the fixture student's
// image and prompts.
class OnnxExportResNetRef : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_present()) return;
    const ModelFolder folder = *first_folder(true);
    sam_ = new models::Sam(models::build_sam(config()));
    auto& encoder = dynamic_cast<models::ResNetEncoder&>(*(*sam_)->image_encoder);
    io::load_state_dict(encoder, models::resnet_testing::python_weights(encoder), "",
                        "make_resnet_fixtures.py's weights");
    ASSERT_TRUE(models::load_sam_heads(**sam_, io::read_state_dict(folder.file("weights.pth")),
                                       folder.file("weights.pth")));
    (*sam_)->eval();
  }
  static void TearDownTestSuite() {
    delete sam_;
    sam_ = nullptr;
  }
  void SetUp() override { SD_REQUIRE_FIXTURES(); }
  static models::EncoderConfig config() { return models::ResNetConfig{}; }
  static models::Sam* sam_;
};
models::Sam* OnnxExportResNetRef::sam_ = nullptr;

// Both files pass the checker; the encoder is the inference graph (batch norms folded, each
// constant once) of torchvision's modules (max pool, transposed convolution of the neck).
TEST_F(OnnxExportResNetRef, TheCheckerAcceptsBothFilesOfResNet18) {
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  expect_checker_accepts(**sam_, config(), "resnet18");
  const std::string dir = make_temp_dir("sd_onnx_resnet");
  write_file_atomic(dir + "/encoder.onnx", encoder_model(**sam_, config()));
  const nlohmann::json encoder = onnx_summary(dir + "/encoder.onnx");
  EXPECT_FALSE(encoder["ops"].contains("BatchNormalization")) << encoder.dump();
  EXPECT_EQ(encoder["ops"].value("MaxPool", 0), 1) << encoder.dump();
  EXPECT_EQ(encoder["ops"].value("ConvTranspose", 0), 1) << encoder.dump();
  EXPECT_EQ(encoder["ops"].value("Conv", 0), 20 + 5) << encoder.dump();  // backbone + neck
  EXPECT_EQ(encoder["duplicates"], 0) << encoder.dump();
  std::filesystem::remove_all(dir);
}

// `export --format onnx` finds the family in the weights of a full SAM checkpoint and writes
// what encoder_model writes; with --quantize int8 and --external-data too.
TEST_F(OnnxExportResNetRef, TheCommandExportsAResNetCheckpoint) {
  const std::string dir = make_temp_dir("sd_onnx_resnet_cli");
  const std::string weights = dir + "/resnet18_sam.pth";
  io::write_state_dict(weights, io::state_dict(**sam_));
  const ProgramRun run =
      run_program("export --student '" + weights + "' --format onnx --out '" + dir + "/m'");
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(contains, run.output, "resnet18 encoder");
  EXPECT_TRUE(read_file(dir + "/m/encoder.onnx") == encoder_model(**sam_, config()));
  const ProgramRun int8 =
      run_program("export --student '" + weights +
                  "' --format onnx --quantize int8 --external-data 65536 --out '" + dir + "/q'");
  ASSERT_EQ(int8.status, 0) << int8.output;
  EXPECT_PRED2(contains, int8.output, "int8 weights");
  EXPECT_GT(std::filesystem::file_size(dir + "/q/encoder.onnx.data"),
            10 * std::filesystem::file_size(dir + "/q/encoder.onnx"));
  std::filesystem::remove_all(dir);
}

TEST_F(OnnxExportResNetRef, OnnxRuntimeComputesWhatPredictDoes) {
  if (const std::string why = ort_missing(); !why.empty()) GTEST_SKIP() << why;
  expect_ort_computes_what_predict_does(*sam_, config(), *first_folder(true), "resnet18",
                                        at::Tensor());
}

// int8 with its initializers of 64 KiB or more outside (--external-data), as ONNX Runtime
// loads them.
TEST_F(OnnxExportResNetRef, Int8IsAThirdOfFp32AndAgreesWithItOnBoxes) {
  if (const std::string why = checker_missing(); !why.empty()) GTEST_SKIP() << why;
  ExportOptions options;
  options.int8 = true;
  options.external_data = 65536;
  expect_int8_is_a_third_and_agrees_on_boxes(*sam_, config(), *first_folder(true), "resnet18",
                                             options);
}

}  // namespace
}  // namespace sd::onnx
