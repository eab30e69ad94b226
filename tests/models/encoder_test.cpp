// Pieces of the image encoders that the reference fixtures do not reach on their own.
#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include "common/fixtures.h"
#include "io/state_dict.h"
#include "kernels/avx512_math.h"
#include "kernels/onednn_linear.h"
#include "models/autocast.h"
#include "models/common.h"
#include "models/image_encoder_vit.h"
#include "models/preprocess.h"
#include "models/tiny_vit.h"

namespace sd::models {
namespace {

TEST(ViTEncoder, RelPosTableIsResizedLinearlyWhenItsLengthDiffers) {
  // Two rows [0, 1] for q = k = 2 (which needs 3 rows): resized (align_corners false) to
  // [0, 0.5, 1], then row (q - k) + 1 for each pair.
  at::Tensor table = at::tensor({0.f, 1.f}).view({2, 1});
  at::Tensor rows = vit::get_rel_pos(2, 2, table).view({2, 2});
  EXPECT_TRUE(at::allclose(rows, at::tensor({0.5f, 0.f, 1.f, 0.5f}).view({2, 2})));
}

// Python's window_partition: pad with zeros, then one permuted copy.
at::Tensor python_window_partition(const at::Tensor& x, int64_t ws) {
  const int64_t B = x.size(0), C = x.size(3);
  const int64_t pad_h = (ws - x.size(1) % ws) % ws, pad_w = (ws - x.size(2) % ws) % ws;
  const at::Tensor padded = at::constant_pad_nd(x, {0, 0, 0, pad_w, 0, pad_h});
  return padded.view({B, padded.size(1) / ws, ws, padded.size(2) / ws, ws, C})
      .permute({0, 1, 3, 2, 4, 5})
      .reshape({-1, ws, ws, C});
}

// Every kind of grid: padded along both axes, one, none, and smaller than a window; the
// gradients flow back through both directions as through Python's.
TEST(ViTEncoder, WindowPartitionIsPythonsOnEveryGrid) {
  for (const auto& [H, W] :
       std::vector<std::pair<int64_t, int64_t>>{{5, 6}, {8, 8}, {3, 9}, {8, 5}, {2, 3}, {13, 4}}) {
    const at::Tensor x = at::randn({2, H, W, 3}, at::kDouble).requires_grad_();
    const at::Tensor windows = vit::window_partition(x, 4),
                     expected = python_window_partition(x, 4);
    ASSERT_TRUE(at::equal(windows, expected)) << H << " x " << W;
    const int64_t Hp = (H + 3) / 4 * 4, Wp = (W + 3) / 4 * 4;
    const at::Tensor back = vit::window_unpartition(windows * 3, 4, {Hp, Wp}, {H, W});
    EXPECT_TRUE(at::equal(back, x * 3)) << H << " x " << W;
    const at::Tensor weights = at::randn(back.sizes(), at::kDouble);
    const at::Tensor grad = torch::autograd::grad({(back * weights).sum()}, {x})[0];
    EXPECT_TRUE(at::equal(grad, weights * 3)) << H << " x " << W;
  }
}

TEST(ViTEncoder, WindowPartitionPadsAndUnpartitionRestores) {
  at::Tensor x = at::randn({2, 5, 6, 3});
  at::Tensor windows = vit::window_partition(x, 4);
  EXPECT_EQ(windows.sizes(), (at::IntArrayRef{2 * 2 * 2, 4, 4, 3}));
  EXPECT_TRUE(at::equal(windows[0], x[0].slice(0, 0, 4).slice(1, 0, 4)));
  EXPECT_EQ(windows[7].slice(0, 1).abs().sum().item<float>(), 0.f);  // zero padding
  EXPECT_TRUE(at::equal(vit::window_unpartition(windows, 4, {8, 8}, {5, 6}), x));

  // Padded with given tokens (what Python's zero tokens become through qkv: its bias), which
  // take the padding's gradient.
  const at::Tensor padding = at::tensor({1.f, -2.f, 3.f}).requires_grad_();
  const at::Tensor filled = vit::window_partition(x, 4, padding);
  EXPECT_TRUE(at::equal(filled[0], windows[0]));
  EXPECT_TRUE(at::equal(filled[7].slice(0, 1), padding.detach().expand({3, 4, 3})));
  EXPECT_TRUE(at::equal(filled[7][0].slice(0, 0, 2), x[1][4].slice(0, 4, 6)));
  EXPECT_TRUE(at::equal(vit::window_unpartition(filled.detach(), 4, {8, 8}, {5, 6}), x));
  filled.sum().backward();
  EXPECT_TRUE(at::equal(padding.grad(), at::full({3}, 2 * (8 * 8 - 5 * 6))));
}

TEST(TinyViT, AttentionBiasesAreNeverStale) {
  tiny_vit::Attention attn(8, 4, 2, 3);
  attn->eval();
  torch::NoGradGuard no_grad;
  at::Tensor x = at::randn({1, 9, 8});
  at::Tensor before = attn(x);
  attn->attention_biases.add_(
      1.0 + at::arange(attn->attention_biases.numel()).view_as(attn->attention_biases));
  EXPECT_FALSE(at::allclose(attn(x), before));
  // The offset table is not state: only the parameter appears in the state dict.
  auto entries = io::state_dict(*attn);
  EXPECT_EQ(entries.front().first, "attention_biases");
  for (const auto& [key, value] : entries) EXPECT_EQ(key.find("idxs"), std::string::npos) << key;
}

// The offset index is a buffer: it moves with the module (staying int64 when the module's
// dtype changes) instead of being copied to the input's device on every forward.
TEST(TinyViT, AttentionOffsetIndexIsABufferThatMovesWithTheModule) {
  tiny_vit::Attention attn(8, 4, 2, 3);
  ASSERT_TRUE(attn->named_buffers().contains("attention_bias_idxs"));
  EXPECT_TRUE(attn->named_buffers()["attention_bias_idxs"].is_same(attn->attention_bias_idxs));
  torch::NoGradGuard no_grad;
  const at::Tensor x = at::randn({1, 9, 8});
  const at::Tensor expected = attn(x).to(at::kDouble);

  attn->to(at::kDouble);
  EXPECT_EQ(attn->attention_biases.scalar_type(), at::kDouble);
  EXPECT_EQ(attn->attention_bias_idxs.scalar_type(), at::kLong);
  EXPECT_TRUE(at::allclose(attn(x.to(at::kDouble)), expected, 1e-5, 1e-6));

  const at::Device device = sd::testing::test_device();
  attn->to(device, at::kFloat);
  EXPECT_EQ(attn->attention_bias_idxs.device(), device);
  EXPECT_EQ(attn->attention_bias_idxs.scalar_type(), at::kLong);
  attn->to(device);
  EXPECT_EQ(attn->attention_bias_idxs.device(), device);
  EXPECT_TRUE(at::allclose(attn(x.to(device)).cpu().to(at::kDouble), expected, 1e-4, 1e-5));
}

TEST(TinyViT, EvalModeFoldsTheCurrentBatchNormStatistics) {
  tiny_vit::Conv2d_BN conv(4, 6, 3, 2, 1, 2);
  torch::NoGradGuard no_grad;
  conv->bn->running_mean.uniform_(-1, 1);
  conv->bn->running_var.uniform_(0.5, 2);
  conv->bn->weight.uniform_(-1, 1);
  conv->bn->bias.uniform_(-1, 1);
  conv->eval();
  at::Tensor x = at::randn({2, 4, 9, 9});
  EXPECT_TRUE(at::allclose(conv(x), conv->bn(conv->c(x)), 1e-5, 1e-5));
  conv->bn->running_mean.add_(3.0);
  EXPECT_TRUE(at::allclose(conv(x), conv->bn(conv->c(x)), 1e-5, 1e-5));
}

// Recomputing stages in backward changes what is kept, not what is computed: the same weights
// and BatchNorm statistics, bit for bit, after steps of AdamW, in fp32 and under bf16 autocast
// (which the recomputation must run under again).
TEST(TinyViT, RecomputedStagesTrainBitForBitAsKeptOnes) {
  const auto config = encoder_config_from_json(
      nlohmann::json::parse(R"({"embed_dims": [16, 32, 64, 320], "depths": [2, 1, 1, 1],
          "num_heads": [1, 1, 2, 5], "window_sizes": [7, 7, 14, 7], "img_size": 256})"),
      "test");
  for (Amp amp : {Amp::off, Amp::bf16}) {
    std::vector<io::StateDict> trained;
    for (int64_t stages : {0, 2}) {
      at::manual_seed(0);
      auto model = make_image_encoder(config);
      dynamic_cast<TinyViT&>(*model).recompute_stages(stages);
      model->train();
      torch::optim::AdamW adamw(model->parameters(), torch::optim::AdamWOptions(1e-2));
      at::manual_seed(1);
      const at::Tensor images = at::randn({2, 3, 256, 256});
      for (int step = 0; step < 2; ++step) {
        adamw.zero_grad();
        at::Tensor out;
        {
          AutocastScope autocast(amp, at::kCPU);
          out = model->forward(images);
        }
        out.to(at::kFloat).square().mean().backward();
        adamw.step();
      }
      trained.push_back(io::state_dict(*model));
    }
    ASSERT_EQ(trained[0].size(), trained[1].size());
    for (size_t i = 0; i < trained[0].size(); ++i)
      EXPECT_TRUE(at::equal(trained[0][i].second, trained[1][i].second))
          << trained[0][i].first << " (amp " << word(amp) << ")";
  }
}

// Mixed-precision training runs the convolution stages channels-last, as inference does (bf16
// convolutions of NCHW tensors copy their outputs back); fp32 training keeps Python's NCHW.
// Training runs channels-last (oneDNN's convolutions at full speed, no transposed copies of the
// tokens) under autocast, and in fp32 where our exact batch norm runs (a CPU with AVX-512);
// elsewhere fp32 training stays NCHW, as LibTorch's channels-last batch norm is less exact.
TEST(TinyViT, TrainingRunsChannelsLastWhereItsBatchNormIsExact) {
  const auto config = encoder_config_from_json(
      nlohmann::json::parse(R"({"embed_dims": [16, 32, 64, 320], "depths": [1, 1, 1, 1],
          "num_heads": [1, 1, 2, 5], "window_sizes": [7, 7, 14, 7], "img_size": 256})"),
      "test");
  auto model = make_image_encoder(config);
  model->train();
  const at::Tensor images = at::randn({2, 3, 256, 256});
  for (Amp amp : {Amp::off, Amp::bf16}) {
    Trace trace;
    {
      AutocastScope autocast(amp, at::kCPU);
      dynamic_cast<TinyViT&>(*model).forward(images, &trace);
    }
    const at::Tensor embedded = trace.front().second;
    ASSERT_EQ(trace.front().first, "patch_embed");
    const bool channels_last = amp == Amp::bf16 || kernels::avx512::cpu_has_avx512();
    EXPECT_EQ(embedded.is_contiguous(at::MemoryFormat::ChannelsLast), channels_last) << word(amp);
    EXPECT_EQ(embedded.is_contiguous(), !channels_last) << word(amp);
    if (amp == Amp::off && kernels::avx512::cpu_has_avx512()) {
      EXPECT_NE(embedded.grad_fn()->name().find("BatchNormFunction"), std::string::npos);
    }
  }
}

// Under CPU autocast a Linear adds its bias in the product's type (as PyTorch 2's autocast
// casts it): the exact sum rounded to bf16 once, where LibTorch 1.13's own rounds the product to
// bf16 and adds the fp32 bias through an fp32 copy (a second rounding). The operands are small
// multiples of 1/64, so every partial sum is exact in fp32 and the expected value does not depend
// on the order a CPU's product sums in (a random one sat 8 fp32 ulps from a bf16 midpoint, and
// another CPU's order crossed it). fp32 stays torch.nn.Linear's.
TEST(Linear, UnderCpuAutocastAddsTheBiasInTheProductsType) {
  Linear linear(64, 48);
  at::manual_seed(5);
  const at::Tensor x = at::randint(-100, 101, {3, 10, 64}, at::kFloat);
  {
    at::NoGradGuard no_grad;
    linear->weight.copy_(at::randint(-100, 101, {48, 64}, at::kFloat) / 64);
    linear->bias.copy_(at::randint(-100, 101, {48}, at::kFloat) / 64);
  }
  at::Tensor out;
  {
    AutocastScope autocast(Amp::bf16, at::kCPU);
    out = linear(x);
  }
  ASSERT_EQ(out.scalar_type(), at::kBFloat16);
  const at::Tensor exact =
      at::linear(x.to(at::kDouble), linear->weight.to(at::kDouble), linear->bias.to(at::kDouble));
  const at::Tensor rounded_twice =
      (exact - linear->bias.to(at::kDouble)).to(at::kBFloat16).to(at::kFloat) + linear->bias;
  ASSERT_FALSE(at::equal(rounded_twice.to(at::kBFloat16), exact.to(at::kBFloat16)))
      << "the operands do not tell one rounding from two";
  EXPECT_TRUE(at::equal(out, exact.to(at::kBFloat16)));
  EXPECT_TRUE(at::equal(linear(x), at::linear(x, linear->weight, linear->bias)));
}

// A bf16 MLP with a residual (the ViT blocks') writes its hidden layer in column blocks that
// its second Linear sums (kernels::Chunks) into the residual: the same values as the whole
// products, and the second product does read blocks.
TEST(MLPBlock, WideHiddenLayersRunInColumnBlocks) {
  if (!kernels::OnednnLinear::built() || !kernels::avx512::cpu_has_avx512())
    GTEST_SKIP() << "no oneDNN bf16 products here";
  at::manual_seed(4);
  MLPBlock mlp(64, 2048);
  mlp->eval();
  at::NoGradGuard no_grad;
  const at::Tensor x = at::randn({2, 9, 64}), residual = at::randn({2, 9, 64});
  static std::vector<std::vector<int64_t>> read;  // x's sizes at each sd::linear
  auto record = [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
    if (std::string(fn.name()) != "sd::linear") return nullptr;
#ifdef NDEBUG
    read.push_back(fn.inputs()[0].toTensor().sizes().vec());
#else
    // Without NDEBUG the header's inputs() checks a debug-only field that the release library's
    // RecordFunction does not have (the sanitizer build): only the call is counted there.
    read.emplace_back();
#endif
    return nullptr;
  };
  at::Tensor blocked, whole;
  {
    AutocastScope autocast(Amp::bf16, at::kCPU);
    const at::CallbackHandle handle =
        at::addThreadLocalCallback(at::RecordFunctionCallback(record).needsInputs(true));
    const at::Tensor handed_over = residual.clone();
    blocked = mlp->forward_into(x, handed_over);
    EXPECT_TRUE(blocked.is_same(handed_over));  // the sum written into it
    at::removeCallback(handle);
    whole = mlp->lin2->forward_fused(mlp->lin1->forward_fused(x, kernels::Epilogue::gelu),
                                     kernels::Epilogue::none, residual);
  }
  ASSERT_EQ(read.size(), 2u);
#ifdef NDEBUG
  EXPECT_EQ(read[1], (std::vector<int64_t>{2, 18, 1024}));
#endif
  ASSERT_EQ(blocked.sizes(), residual.sizes());
  // The same bf16 operands; fp32 sums in another order.
  EXPECT_LE((blocked - whole).abs().max().item<double>(), 1e-5 * whole.abs().max().item<double>());
}

// Names of the autograd nodes from y back along first edges.
std::string autograd_path(const at::Tensor& y) {
  std::string nodes;
  for (auto node = y.grad_fn(); node && !node->next_edges().empty();
       node = node->next_edges()[0].function)
    nodes += node->name() + " ";
  return nodes;
}

// rows_as_image: the same product through oneDNN's 1x1 convolution (fp32, more than one
// thread), forward and backward (gradients in eval mode here), within fp32 rounding; TinyViT's
// Linears all take it. In training mode only on AVX-512 CPUs (elsewhere its backward is slow).
TEST(Linear, RowsAsImageIsTheSameProductAsAConvolution) {
  at::set_num_threads(2);
  Linear plain(64, 48), as_image(64, 48);
  as_image->eval();
  {
    at::NoGradGuard no_grad;
    as_image->weight.copy_(plain->weight);
    as_image->bias.uniform_(-1, 1);
    plain->bias.copy_(as_image->bias);
  }
  as_image->rows_as_image = true;
  const at::Tensor x = at::randn({3, 10, 64}).requires_grad_();
  const at::Tensor x2 = x.detach().clone().requires_grad_();
  const at::Tensor grad = at::randn({3, 10, 48});
  const at::Tensor y = as_image(x), expected = plain(x2);
  // The output is a view (reshape of permute) of the convolution's.
  EXPECT_NE(autograd_path(y).find("ConvolutionBackward"), std::string::npos) << autograd_path(y);
  ASSERT_EQ(y.sizes(), expected.sizes());
  EXPECT_TRUE(y.is_contiguous());
  y.backward(grad);
  expected.backward(grad);
  const auto close = [](const at::Tensor& a, const at::Tensor& b) {
    return (a - b).abs().max().item<double>() <= 1e-5 * std::max(1.0, b.abs().max().item<double>());
  };
  EXPECT_TRUE(close(y, expected));
  EXPECT_TRUE(close(x.grad(), x2.grad()));
  EXPECT_TRUE(close(as_image->weight.grad(), plain->weight.grad()));
  EXPECT_TRUE(close(as_image->bias.grad(), plain->bias.grad()));

  as_image->train();
  const std::string training = autograd_path(as_image(x));
  EXPECT_EQ(training.find("ConvolutionBackward") != std::string::npos,
            kernels::avx512::cpu_has_avx512())
      << training;

  auto tiny_vit = make_image_encoder(encoder_preset("vit_t"));
  int64_t linears = 0;
  for (const auto& m : tiny_vit->modules())
    if (const auto* linear = m->as<LinearImpl>()) {
      EXPECT_TRUE(linear->rows_as_image);
      ++linears;
    }
  EXPECT_GT(linears, 20);
}

TEST(Preprocess, NormalisesAndPadsBottomRight) {
  at::Tensor image = at::zeros({2, 3, 3}, at::kByte);
  image[1][2][0] = 255;
  at::Tensor x = normalize_and_pad(image);
  EXPECT_EQ(x.sizes(), (at::IntArrayRef{1, 3, 1024, 1024}));
  EXPECT_FLOAT_EQ(x[0][0][1][2].item<float>(), (255.f - 123.675f) / 58.395f);
  EXPECT_FLOAT_EQ(x[0][2][0][0].item<float>(), (0.f - 103.53f) / 57.375f);
  EXPECT_EQ(x.slice(2, 2).abs().sum().item<float>(), 0.f);
  EXPECT_EQ(x.slice(3, 3).abs().sum().item<float>(), 0.f);
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 normalize_and_pad(at::zeros({1025, 4, 3}, at::kByte));
               }),
               "1025");
  EXPECT_PRED2(sd::testing::contains, sd::testing::error_of([] {
                 normalize_and_pad(at::zeros({4, 4, 3}));
               }),
               "Float");
}

}  // namespace
}  // namespace sd::models
