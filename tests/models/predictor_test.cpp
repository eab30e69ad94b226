// SAM's prompt side without fixtures: prompt scaling, batching, errors, devices.
#include "models/predictor.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <ATen/core/grad_mode.h>
#include <ATen/record_function.h>

#include <atomic>
#include <cstring>

#include "common/fixtures.h"
#include "io/state_dict.h"
#include "kernels/avx2.h"
#include "models/autocast.h"
#include "models/transformer.h"

namespace sd::models {
namespace {

using namespace sd::testing;

TEST(ResizeLongestSide, RoundsSizesLikePython) {
  EXPECT_EQ(ResizeLongestSide::get_preprocess_shape(1200, 1800, 1024), (Size2{683, 1024}));
  EXPECT_EQ(ResizeLongestSide::get_preprocess_shape(2241, 1500, 1024), (Size2{1024, 685}));
  EXPECT_EQ(ResizeLongestSide::get_preprocess_shape(1, 4, 2), (Size2{1, 2}));  // 0.5 rounds up
  EXPECT_EQ(ResizeLongestSide::get_preprocess_shape(512, 512, 1024), (Size2{1024, 1024}));
}

TEST(ResizeLongestSide, ScalesCoordinatesAndBoxesByTheRoundedSize) {
  ResizeLongestSide t(1024);
  at::Tensor xy =
      t.apply_coords(at::tensor({900.0f, 600.0f, 0.0f, 1200.0f}).view({2, 2}), {1200, 1800});
  EXPECT_EQ(xy.scalar_type(), at::kFloat);
  // x by 1024 / 1800, y by 683 / 1200 (the rounded height, not 1024 / 1800).
  EXPECT_TRUE(at::allclose(xy, at::tensor({512.0f, 341.5f, 0.0f, 683.0f}).view({2, 2})));
  at::Tensor box = t.apply_boxes(at::tensor({0.0f, 0.0f, 1800.0f, 1200.0f}), {1200, 1800});
  EXPECT_EQ(box.sizes(), (at::IntArrayRef{1, 4}));
  EXPECT_TRUE(at::allclose(box, at::tensor({0.0f, 0.0f, 1024.0f, 683.0f}).view({1, 4})));
}

class PredictorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    at::manual_seed(0);
    sam = build_sam(encoder_preset("vit_t"));
    sam->eval();
  }
  SamPredictor predictor_with_random_embedding(Sam model, Size2 original_size = {600, 900}) {
    SamPredictor p(model);
    p.set_image_embedding(at::randn({1, 256, 64, 64}), original_size);
    return p;
  }
  Sam sam{nullptr};
};

TEST_F(PredictorTest, PadsPointsWithoutABoxAndEmbedsBoxCorners) {
  at::NoGradGuard no_grad;
  auto& pe = sam->prompt_encoder;
  at::Tensor points = at::rand({2, 3, 2}) * 1024;
  at::Tensor labels = at::tensor({1, 0, 1, 0, 0, 1}, at::kInt).view({2, 3});
  auto [sparse, dense] = pe->forward(points, labels, at::Tensor(), at::Tensor());
  EXPECT_EQ(sparse.sizes(), (at::IntArrayRef{2, 4, 256}));
  EXPECT_EQ(dense.sizes(), (at::IntArrayRef{2, 256, 64, 64}));
  // The padding token is exactly not_a_point_embed.
  EXPECT_TRUE(at::equal(sparse.select(1, 3), pe->not_a_point_embed->weight.expand({2, 256})));

  at::Tensor boxes = at::tensor({10.0f, 20.0f, 300.0f, 400.0f});
  std::tie(sparse, dense) =
      pe->forward(points.slice(0, 0, 1), labels.slice(0, 0, 1), boxes.view({1, 4}), at::Tensor());
  EXPECT_EQ(sparse.sizes(), (at::IntArrayRef{1, 5, 256}));  // 3 points + 2 corners, no padding

  std::tie(sparse, dense) =
      pe->forward(at::Tensor(), at::Tensor(), at::Tensor(), at::randn({3, 1, 256, 256}));
  EXPECT_EQ(sparse.sizes(), (at::IntArrayRef{3, 0, 256}));
  EXPECT_EQ(dense.sizes(), (at::IntArrayRef{3, 256, 64, 64}));
}

// Fine-tuning's gradients through the decoder (channels-last upscaling, transposed softmax)
// against the same model in double, whose kernels are ATen's plain loops: LibTorch 1.13's
// oneDNN GELU backward reads a strided gradient as if contiguous (values of 1e38 came back).
// Double and float agree to float rounding: within 1e-4 of each gradient's largest value, or of
// a thousandth of the largest of all for gradients that are zero but for rounding (the keys'
// biases, to which softmax is blind).
TEST_F(PredictorTest, DecoderGradientsAreTheDoublePrecisionOnes) {
  Sam twin = build_sam(encoder_preset("vit_t"));
  io::StateDict weights = io::state_dict(*sam);
  io::load_state_dict(*twin, weights, "", "the float model");
  twin->to(at::kDouble);
  Prompts prompts;
  prompts.box = at::tensor({100.0f, 150.0f, 600.0f, 500.0f}).view({1, 4});
  prompts.point_coords = at::tensor({300.0f, 300.0f}).view({1, 1, 2});
  prompts.point_labels = at::tensor({1}, at::kInt).view({1, 1});
  prompts.mask_input = at::randn({1, 1, 256, 256});
  const at::Tensor embedding = at::randn({1, 256, 64, 64});
  const at::Tensor upstream = at::randn({1, 3, 256, 256});  // uneven, as a real loss's
  auto backward = [&](Sam& model, at::ScalarType type) {
    Prompts p = prompts;
    p.box = p.box.to(type);
    p.point_coords = p.point_coords.to(type);
    p.mask_input = p.mask_input.to(type);
    DecoderOutput out = model->decode(embedding.to(type), p, /*multimask_output=*/true);
    ((out.masks * upstream.to(type)).sum() + out.iou_predictions.sum()).backward();
  };
  backward(sam, at::kFloat);
  backward(twin, at::kDouble);
  auto expected = twin->mask_decoder->named_parameters();
  double largest = 0;
  for (const auto& item : expected)
    largest = std::max(largest, item.value().grad().abs().max().item<double>());
  for (const auto& item : sam->mask_decoder->named_parameters()) {
    const std::string& name = item.key();
    const at::Tensor got = item.value().grad();
    ASSERT_TRUE(got.defined()) << name;
    const at::Tensor want = expected[name].grad().to(at::kFloat);
    const double scale = std::max(want.abs().max().item<double>(), 1e-3 * largest);
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-4 * scale) << name;
  }
}

TEST_F(PredictorTest, ABatchOfPromptsEqualsThePromptsOneByOne) {
  SamPredictor predictor = predictor_with_random_embedding(sam);
  Prompts batch;
  batch.box =
      at::tensor({10.0f, 20.0f, 300.0f, 400.0f, 500.0f, 100.0f, 900.0f, 600.0f}).view({2, 4});
  batch.point_coords = at::tensor({100.0f, 200.0f, 700.0f, 300.0f}).view({2, 1, 2});
  batch.point_labels = at::tensor({1, 0}, at::kInt).view({2, 1});
  Prediction all =
      predictor.predict_torch(batch, /*multimask_output=*/true, /*return_logits=*/true);
  EXPECT_EQ(all.masks.sizes(), (at::IntArrayRef{2, 3, 600, 900}));
  EXPECT_EQ(all.iou_predictions.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_EQ(all.low_res_logits.sizes(), (at::IntArrayRef{2, 3, 256, 256}));
  for (int64_t i = 0; i < 2; ++i) {
    Prompts one{batch.point_coords.slice(0, i, i + 1), batch.point_labels.slice(0, i, i + 1),
                batch.box.slice(0, i, i + 1), at::Tensor()};
    Prediction single = predictor.predict_torch(one, true, true);
    EXPECT_TRUE(at::allclose(single.low_res_logits[0], all.low_res_logits[i], 1e-4, 1e-4)) << i;
    EXPECT_TRUE(at::allclose(single.iou_predictions[0], all.iou_predictions[i], 1e-4, 1e-4)) << i;
  }
}

TEST_F(PredictorTest, PredictDropsTheBatchAndThresholdsAtZero) {
  SamPredictor predictor = predictor_with_random_embedding(sam);
  Prompts prompts;
  prompts.point_coords = at::tensor({450.0f, 300.0f}).view({1, 2});
  prompts.point_labels = at::tensor({1}, at::kInt);
  Prediction logits =
      predictor.predict(prompts, /*multimask_output=*/false, /*return_logits=*/true);
  Prediction masks = predictor.predict(prompts, false, false);
  EXPECT_EQ(masks.masks.sizes(), (at::IntArrayRef{1, 600, 900}));
  EXPECT_EQ(masks.masks.scalar_type(), at::kBool);
  EXPECT_TRUE(at::equal(masks.masks, logits.masks > 0));
  EXPECT_EQ(masks.iou_predictions.sizes(), (at::IntArrayRef{1}));
  EXPECT_EQ(masks.low_res_logits.sizes(), (at::IntArrayRef{1, 256, 256}));
}

TEST_F(PredictorTest, RejectsMisuseWithAnErrorThatSaysWhat) {
  SamPredictor predictor(sam);
  Prompts prompts;
  prompts.box = at::tensor({0.0f, 0.0f, 10.0f, 10.0f});
  EXPECT_PRED2(contains, error_of([&] { predictor.predict(prompts); }), "set an image");
  EXPECT_PRED2(contains, error_of([&] {
                 predictor.set_image(at::zeros({1024, 1024, 3}, at::kByte), {1200, 1800});
               }),
               "683x1024");
  EXPECT_PRED2(contains, error_of([&] {
                 predictor.set_image_embedding(at::zeros({1, 256, 32, 32}), {100, 100});
               }),
               "1x256x64x64");
  predictor.set_image_embedding(at::zeros({1, 256, 64, 64}), {100, 100});
  prompts.point_coords = at::zeros({1, 2});
  EXPECT_PRED2(contains, error_of([&] { predictor.predict(prompts); }), "point_labels");
}

TEST_F(PredictorTest, CudaMatchesCpu) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device";
  SamPredictor cpu = predictor_with_random_embedding(sam);
  at::Tensor embedding = cpu.get_image_embedding();
  Sam gpu_sam = build_sam(encoder_preset("vit_t"));
  gpu_sam->to(at::kCUDA);
  {
    at::NoGradGuard no_grad;
    auto src = sam->named_parameters();
    for (auto& p : gpu_sam->named_parameters()) p.value().copy_(src[p.key()]);
    auto bufs = sam->named_buffers();
    for (auto& b : gpu_sam->named_buffers()) b.value().copy_(bufs[b.key()]);
  }
  gpu_sam->eval();
  SamPredictor gpu(gpu_sam);
  gpu.set_image_embedding(embedding, cpu.original_size());
  Prompts prompts;
  prompts.point_coords = at::tensor({450.0f, 300.0f, 100.0f, 50.0f}).view({2, 2});
  prompts.point_labels = at::tensor({1, 0}, at::kInt);
  prompts.box = at::tensor({50.0f, 40.0f, 800.0f, 500.0f});
  Prediction a = cpu.predict(prompts, true, true);
  Prediction b = gpu.predict(prompts, true, true);
  EXPECT_TRUE(b.masks.is_cuda());
  EXPECT_TRUE(at::allclose(a.low_res_logits, b.low_res_logits.cpu(), 1e-3, 1e-3));
  EXPECT_TRUE(at::allclose(a.iou_predictions, b.iou_predictions.cpu(), 1e-3, 1e-3));
}

// Prompts without a mask share the decoder's work on the image (the transformer's first image
// side): decoding in two steps gives the one-step numbers, and the predictor keeps that work for
// the image's later prompts (a weight changed behind its back, without a version bump, does not
// reach them) and remakes it for a new image, new weights or another precision.
TEST_F(PredictorTest, PromptsWithoutAMaskShareTheDecodersWorkOnTheImage) {
  at::NoGradGuard no_grad;
  SamPredictor predictor = predictor_with_random_embedding(sam);
  const at::Tensor embedding = predictor.get_image_embedding();
  Prompts prompts;  // predict_torch's frame
  prompts.box =
      at::tensor({10.0f, 20.0f, 300.0f, 400.0f, 500.0f, 100.0f, 900.0f, 600.0f}).view({2, 4});
  prompts.point_coords = at::tensor({100.0f, 200.0f, 700.0f, 300.0f}).view({2, 1, 2});
  prompts.point_labels = at::tensor({1, 0}, at::kInt).view({2, 1});
  auto fresh = [&] { return sam->decode(predictor.get_image_embedding(), prompts, true).masks; };
  auto kept = [&] { return predictor.decode(prompts, true).masks; };

  const DecoderOutput one = sam->decode(embedding, prompts, true);
  const DecoderOutput two = sam->decode(sam->prepare_decoder(embedding), prompts, true);
  EXPECT_TRUE(at::equal(one.masks, two.masks));
  EXPECT_TRUE(at::equal(one.iou_predictions, two.iou_predictions));
  EXPECT_TRUE(at::equal(kept(), one.masks));

  auto& block = *sam->mask_decoder->transformer->layers[0]->as<TwoWayAttentionBlock>();
  at::Tensor weight = block.cross_attn_token_to_image->k_proj->weight;
  const at::Tensor saved = weight.clone();
  float* data = weight.data_ptr<float>();
  for (int64_t i = 0; i < weight.numel(); ++i) data[i] *= 2;  // no version bump
  EXPECT_TRUE(at::equal(kept(), one.masks));
  EXPECT_FALSE(at::equal(fresh(), one.masks));
  weight.mul_(1);  // a version bump, as a load or an optimiser step makes
  EXPECT_TRUE(at::equal(kept(), fresh()));
  weight.copy_(saved);
  EXPECT_TRUE(at::equal(kept(), one.masks));

  predictor.set_image_embedding(embedding * 0.5, predictor.original_size());
  EXPECT_TRUE(at::equal(kept(), fresh()));
  EXPECT_FALSE(at::equal(kept(), one.masks));
  const at::Tensor half_fp32 = kept();
  {
    AutocastScope bf16(Amp::bf16, sam->device());
    EXPECT_TRUE(at::equal(kept(), fresh()));
    EXPECT_FALSE(at::equal(kept().to(at::kFloat), half_fp32));
  }
  EXPECT_TRUE(at::equal(kept(), half_fp32));

  Prompts masked = prompts;
  masked.mask_input = at::randn({2, 1, 256, 256});
  EXPECT_TRUE(at::equal(predictor.decode(masked, true).masks,
                        sam->decode(predictor.get_image_embedding(), masked, true).masks));
  EXPECT_PRED2(contains,
               error_of([&] { sam->decode(sam->prepare_decoder(embedding), masked, true); }),
               "mask prompt");
}

// The upscaling runs pixel by pixel in the transposed convolutions' blocked order and puts the
// masks in place after the product: they are those of output_upscaling run as the Sequential it
// is (ATen's ConvTranspose2d on NCHW) times the hypernetworks' outputs, on a grid wider than
// high, in inference (the mask products kernel where it runs) and with autograd (ATen's product).
TEST(MaskDecoder, UpscalesInPythonsPixelOrder) {
  at::manual_seed(2);
  MaskDecoder decoder(64, TwoWayTransformer(1, 64, 2, 64));
  {
    at::NoGradGuard no_grad;
    for (auto& p : decoder->output_upscaling->parameters()) p.normal_(0, 0.3);
  }
  const int64_t h = 3, w = 5;
  const at::Tensor tokens = at::randn({2, 5, 64}), image = at::randn({2, h * w, 64});
  const at::Tensor nchw = image.transpose(1, 2).reshape({2, 64, h, w});
  const at::Tensor upscaled = decoder->output_upscaling->forward(nchw);  // 2 x 8 x 4h x 4w
  std::vector<at::Tensor> hyper;
  for (int64_t i = 0; i < 4; ++i)
    hyper.push_back(
        decoder->output_hypernetworks_mlps[i]->as<MLP>()->forward(tokens.select(1, 1 + i)));
  const at::Tensor want =
      at::matmul(at::stack(hyper, 1), upscaled.flatten(2)).view({2, 4, 4 * h, 4 * w}).detach();
  const double scale = want.abs().max().item<double>();
  at::Tensor inferred;
  {
    at::NoGradGuard no_grad;
    inferred = decoder->output_heads(tokens, image, h, w, 0, 4).masks;
  }
  const at::Tensor trained = decoder->output_heads(tokens, image, h, w, 0, 4).masks.detach();
  for (const at::Tensor& got : {inferred, trained}) {
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE((got - want).abs().max().item<double>(), 1e-5 * scale);
  }
}

// The decoder's inference takes it (and its masks are the product's), training does not.
TEST(MaskDecoder, InferenceTakesTheMaskProductsKernel) {
  if (!kernels::cpu_has_avx2_fma()) GTEST_SKIP() << "no AVX2 and FMA here";
  at::manual_seed(1);
  MaskDecoder decoder(256, TwoWayTransformer(2, 256, 8, 2048));
  static int calls = 0;
  auto count = [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    if (std::string(fn.name()) == "sd::mask_products") ++calls;
    return nullptr;
  };
  at::CallbackHandle handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count));
  const at::Tensor tokens = at::randn({2, 7, 256}), image = at::randn({2, 64, 256});
  DecoderOutput inferred, trained;
  {
    at::NoGradGuard no_grad;
    inferred = decoder->output_heads(tokens, image, 8, 8, 0, 4);
  }
  EXPECT_EQ(calls, 1);
  trained = decoder->output_heads(tokens, image, 8, 8, 0, 4);
  at::removeCallback(handle);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(inferred.masks.sizes(), (at::IntArrayRef{2, 4, 32, 32}));
  const double scale = trained.masks.abs().max().item<double>();
  EXPECT_LE((inferred.masks - trained.masks.detach()).abs().max().item<double>(), 1e-5 * scale);
}

// The two-way transformer multiplies the image's tokens as an image (oneDNN's 1x1
// convolution) and the prompts' few tokens as rows: the keys and values of each attention of
// tokens to the image, the queries and output of the image's attention to the tokens.
TEST(TwoWayTransformer, OnlyTheImagesProjectionsMultiplyAsAnImage) {
  TwoWayTransformer transformer(2, 32, 2, 64);
  auto as_image = [](Attention& a) {
    return std::vector<bool>{a->q_proj->rows_as_image, a->k_proj->rows_as_image,
                             a->v_proj->rows_as_image, a->out_proj->rows_as_image};
  };
  const std::vector<bool> keys{false, true, true, false}, queries{true, false, false, true};
  for (const auto& layer : *transformer->layers) {
    auto& block = *layer->as<TwoWayAttentionBlock>();
    EXPECT_EQ(as_image(block.self_attn), std::vector<bool>(4, false));
    EXPECT_EQ(as_image(block.cross_attn_token_to_image), keys);
    EXPECT_EQ(as_image(block.cross_attn_image_to_token), queries);
  }
  EXPECT_EQ(as_image(transformer->final_attn_token_to_image), keys);
}

// In fp32 inference the attentions' products of heads (two each: 2 layers x 3 attentions and
// the final one) are one BLAS product per prompt and head (sd::batched_matmul), not ATen's bmm;
// with autograd on they are ATen's, and both give the same numbers.
TEST(TwoWayTransformer, InferenceMultipliesHeadsAsBatchedBlasProducts) {
  TwoWayTransformer transformer(2, 32, 2, 64);
  transformer->eval();
  const at::Tensor image = at::randn({3, 32, 8, 8}), pe = at::randn({1, 32, 8, 8}),
                   tokens = at::randn({3, 7, 32});
  static std::atomic<int> batched{0}, bmm{0};
  auto count = [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    if (!std::strcmp(fn.name(), "sd::batched_matmul")) ++batched;
    if (!std::strcmp(fn.name(), "aten::bmm")) ++bmm;
    return nullptr;
  };
  at::CallbackHandle handle = at::addThreadLocalCallback(at::RecordFunctionCallback(count));
  at::Tensor inference;
  {
    at::NoGradGuard no_grad;
    inference = transformer->forward(image, pe, tokens).second;
  }
  EXPECT_EQ(batched.load(), 14);
  EXPECT_EQ(bmm.load(), 0);
  batched = 0;
  const at::Tensor aten = transformer->forward(image, pe, tokens).second.detach();
  at::removeCallback(handle);
  EXPECT_EQ(batched.load(), 0);
  EXPECT_GT(bmm.load(), 0);
  EXPECT_LE((inference - aten).abs().max().item<double>(), 1e-5 * aten.abs().max().item<double>());
}

}  // namespace
}  // namespace sd::models
