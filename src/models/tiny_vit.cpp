#include "models/tiny_vit.h"

#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/nn/modules/activation.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>

#include "kernels/avx512_math.h"
#include "kernels/batch_norm.h"
#include "kernels/depthwise_conv.h"
#include "kernels/pointwise_conv.h"
#include "kernels/transpose.h"
#include "kernels/window_attention.h"
#include "models/autocast.h"
#include "models/common.h"
#include "models/recompute.h"

namespace sd::models::tiny_vit {

// TinyViT runs channels-last from the start: oneDNN's convolutions take it without reordering
// (its NCHW convolutions are slower than its channels-last ones in fp32 training, and its
// bf16 ones compute channels-last and copy back), and the B x L x C tensors of the attention stages
// are channels-last NCHW tensors as they are. Except fp32 training without our channels-last batch
// norm (CUDA, no AVX-512), which stays NCHW as Python: LibTorch's channels-last batch norm sums
// the batch variance in float (relative 1e-5 per layer, 4e-3 at the output), inside bf16's own
// rounding but not fp32's. (On CPUs with AVX2 our NCHW batch norm runs there.)
static bool runs_channels_last(const torch::nn::Module& module, const at::Tensor& x) {
  return !module.is_training() || current_amp(x.device().type()) != Amp::off ||
         (x.device().is_cpu() && x.scalar_type() == at::kFloat &&
          kernels::avx512::cpu_has_avx512());
}

struct TransposedFunction : torch::autograd::Function<TransposedFunction> {
  static at::Tensor forward(torch::autograd::AutogradContext*, const at::Tensor& t) {
    return kernels::transposed_matrices(t.contiguous());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext*,
                                                 torch::autograd::variable_list grad) {
    return {kernels::transposed_matrices(grad[0].contiguous())};
  }
};

// B x L x C tokens (L = H x W) as B x C x H x W: a view with channels-last strides where
// runs_channels_last, else (fp32 training without our channels-last batch norm) a contiguous NCHW
// tensor.
static at::Tensor as_nchw(const torch::nn::Module& module, const at::Tensor& tokens, int64_t h,
                          int64_t w) {
  const int64_t batch = tokens.size(0), channels = tokens.size(2);
  if (runs_channels_last(module, tokens))
    return tokens.view({batch, h, w, channels}).permute({0, 3, 1, 2});
  return TransposedFunction::apply(tokens).view({batch, channels, h, w});
}

// An NCHW convolution's output as B x L x C tokens, contiguous: free for channels-last, a
// transposed copy for NCHW (fp32 training without our channels-last batch norm). Left transposed,
// it makes the residual adds, the LayerNorms and their gradients stride through memory (rows 64 KiB
// apart at stage 1's grid), far slower than this copy.
static at::Tensor as_tokens(const at::Tensor& nchw) {
  const at::Tensor tokens = nchw.flatten(2).transpose(1, 2);
  return tokens.is_contiguous() ? tokens : TransposedFunction::apply(nchw.flatten(2));
}

Conv2d_BNImpl::Conv2d_BNImpl(int64_t a, int64_t b, int64_t ks, int64_t stride, int64_t pad,
                             int64_t groups, double bn_weight_init)
    : stride(stride), pad(pad), groups(groups) {
  c = register_module(
      "c", torch::nn::Conv2d(
               torch::nn::Conv2dOptions(a, b, ks).stride(stride).padding(pad).groups(groups).bias(
                   false)));
  bn = register_module("bn", torch::nn::BatchNorm2d(b));
  torch::NoGradGuard no_grad;
  bn->weight.fill_(bn_weight_init);
}

at::Tensor Conv2d_BNImpl::forward(const at::Tensor& x) {
  if (is_training())
    return train_bn ? train_bn(*bn, convolve(x))
                    : kernels::batch_norm_train(*bn, convolve(x), false);
  // Eval: fold the running statistics into the convolution, from the current values.
  const auto [weight, bias] = kernels::fold_batch_norm(c->weight, *bn);
  return at::conv2d(x, weight, bias, {stride, stride}, {pad, pad}, {1, 1}, groups);
}

at::Tensor Conv2d_BNImpl::convolve(const at::Tensor& x) {
  if (kernels::depthwise_conv3x3_applies(x, c->weight, stride, pad, groups))
    return kernels::depthwise_conv3x3(x, c->weight);
  if (kernels::pointwise_conv_applies(x, c->weight, stride, pad, groups))
    return kernels::pointwise_conv(x, c->weight);
  return c(x);
}

at::Tensor Conv2d_BNImpl::forward_gelu(const at::Tensor& x) {
  if (is_training() && !train_bn) return kernels::batch_norm_train(*bn, convolve(x), true);
  return kernels::gelu_over(forward(x));
}

int64_t set_batchnorm_forward(torch::nn::Module& model, const BatchNormForward& forward) {
  int64_t set = 0;
  for (const std::shared_ptr<torch::nn::Module>& m : model.modules())
    if (auto* layer = dynamic_cast<Conv2d_BNImpl*>(m.get())) {
      layer->train_bn = forward;
      ++set;
    }
  return set;
}

PatchEmbedImpl::PatchEmbedImpl(int64_t in_chans, int64_t embed_dim) {
  int64_t n = embed_dim;
  seq = register_module("seq", torch::nn::Sequential(Conv2d_BN(in_chans, n / 2, 3, 2, 1), GELU(),
                                                     Conv2d_BN(n / 2, n, 3, 2, 1)));
}

// seq's first Conv2d_BN and its GELU as one (forward_gelu), then the second Conv2d_BN.
at::Tensor PatchEmbedImpl::forward(const at::Tensor& x) {
  return seq->ptr<Conv2d_BNImpl>(2)->forward(seq->ptr<Conv2d_BNImpl>(0)->forward_gelu(x));
}

MBConvImpl::MBConvImpl(int64_t in_chans, int64_t out_chans, double expand_ratio) {
  int64_t hidden = int64_t(in_chans * expand_ratio);
  conv1 = register_module("conv1", Conv2d_BN(in_chans, hidden));
  conv2 = register_module("conv2", Conv2d_BN(hidden, hidden, 3, 1, 1, hidden));
  conv3 = register_module("conv3", Conv2d_BN(hidden, out_chans, 1, 1, 0, 1, 0.0));
}

at::Tensor MBConvImpl::forward(const at::Tensor& x) {
  at::Tensor y = conv1->forward_gelu(x);
  y = conv2->forward_gelu(y);
  return kernels::gelu_over(conv3(y) + x);
}

PatchMergingImpl::PatchMergingImpl(Resolution input_resolution, int64_t dim, int64_t out_dim)
    : input_resolution(input_resolution) {
  int64_t stride = (out_dim == 320 || out_dim == 448 || out_dim == 576) ? 1 : 2;
  conv1 = register_module("conv1", Conv2d_BN(dim, out_dim, 1, 1, 0));
  conv2 = register_module("conv2", Conv2d_BN(out_dim, out_dim, 3, stride, 1, out_dim));
  conv3 = register_module("conv3", Conv2d_BN(out_dim, out_dim, 1, 1, 0));
}

at::Tensor PatchMergingImpl::forward(const at::Tensor& x) {
  at::Tensor y =
      x.dim() == 3 ? as_nchw(*this, x, input_resolution.first, input_resolution.second) : x;
  y = conv1->forward_gelu(y);
  y = conv2->forward_gelu(y);
  return as_tokens(conv3(y));
}

MlpImpl::MlpImpl(int64_t in_features, int64_t hidden_features) {
  norm = register_module("norm", LayerNorm(torch::nn::LayerNormOptions({in_features})));
  fc1 = register_module("fc1", Linear(in_features, hidden_features));
  fc2 = register_module("fc2", Linear(hidden_features, in_features));
}

at::Tensor MlpImpl::forward(const at::Tensor& x) { return fc2(kernels::gelu_over(fc1(norm(x)))); }

AttentionImpl::AttentionImpl(int64_t dim, int64_t key_dim, int64_t num_heads, int64_t window_size)
    : num_heads(num_heads), scale(std::pow(double(key_dim), -0.5)) {
  int64_t dh = key_dim * num_heads;  // attn_ratio 1: values as wide as keys
  norm = register_module("norm", LayerNorm(torch::nn::LayerNormOptions({dim})));
  qkv = register_module("qkv", Linear(dim, 3 * dh));
  proj = register_module("proj", Linear(dh, dim));
  // Python numbers the offsets in order of first appearance; the first point (0, 0) meets
  // them all, row-major, so offset (dy, dx) gets index dy * window_size + dx.
  at::Tensor row = at::arange(window_size).repeat_interleave(window_size);
  at::Tensor col = at::arange(window_size).repeat({window_size});
  attention_bias_idxs = register_buffer("attention_bias_idxs",
                                        (row.unsqueeze(1) - row.unsqueeze(0)).abs() * window_size +
                                            (col.unsqueeze(1) - col.unsqueeze(0)).abs());
  attention_biases =
      register_parameter("attention_biases", at::zeros({num_heads, window_size * window_size}));
}

at::Tensor AttentionImpl::forward(const at::Tensor& x) {
  int64_t B = x.size(0), N = x.size(1);
  const at::Tensor heads = qkv(norm(x)).view({B, N, num_heads, -1});  // q, k, v side by side
  const at::Tensor biases =
      attention_biases.index_select(1, attention_bias_idxs.flatten()).view({num_heads, N, N});
  return proj(kernels::window_attention(heads, biases, scale, is_training()).reshape({B, N, -1}));
}

void AttentionImpl::to(torch::Dtype dtype, bool non_blocking) {
  const at::Tensor index = attention_bias_idxs.detach();  // keeps the data Module::to replaces
  torch::nn::Module::to(dtype, non_blocking);
  attention_bias_idxs.set_data(index);
}

void AttentionImpl::to(torch::Device device, torch::Dtype dtype, bool non_blocking) {
  const at::Tensor index = attention_bias_idxs.detach();
  torch::nn::Module::to(device, dtype, non_blocking);
  attention_bias_idxs.set_data(index.to(device, non_blocking));
}

TinyViTBlockImpl::TinyViTBlockImpl(int64_t dim, Resolution input_resolution, int64_t num_heads,
                                   int64_t window_size, double mlp_ratio, int64_t local_conv_size)
    : input_resolution(input_resolution), window_size(window_size) {
  attn = register_module("attn", Attention(dim, dim / num_heads, num_heads, window_size));
  mlp = register_module("mlp", Mlp(dim, int64_t(dim * mlp_ratio)));
  local_conv = register_module("local_conv",
                               Conv2d_BN(dim, dim, local_conv_size, 1, local_conv_size / 2, dim));
}

at::Tensor TinyViTBlockImpl::forward(const at::Tensor& x) {
  auto [H, W] = input_resolution;
  int64_t B = x.size(0), L = x.size(1), C = x.size(2), ws = window_size;
  at::Tensor y;
  if (H == ws && W == ws) {
    y = attn(x);
  } else {
    int64_t pad_b = (ws - H % ws) % ws, pad_r = (ws - W % ws) % ws;
    bool padding = pad_b > 0 || pad_r > 0;
    y = x.view({B, H, W, C});
    if (padding) y = at::constant_pad_nd(y, {0, 0, 0, pad_r, 0, pad_b});
    int64_t pH = H + pad_b, pW = W + pad_r, nH = pH / ws, nW = pW / ws;
    // window partition: (B*nH*nW) x (ws*ws) x C
    y = y.view({B, nH, ws, nW, ws, C}).transpose(2, 3).reshape({B * nH * nW, ws * ws, C});
    y = attn(y);
    // window reverse
    y = y.view({B, nH, nW, ws, ws, C}).transpose(2, 3).reshape({B, pH, pW, C});
    if (padding) y = y.slice(1, 0, H).slice(2, 0, W).contiguous();
    y = y.view({B, L, C});
  }
  y = x + y;
  y = as_tokens(local_conv(as_nchw(*this, y, H, W)));
  return y + mlp(y);
}

// `module`'s `forward(x)`, recomputed in backward when `recompute` and training with autograd.
static at::Tensor maybe_recompute(torch::nn::Module& module,
                                  std::function<at::Tensor(const at::Tensor&)> forward,
                                  const at::Tensor& x, bool recompute) {
  if (!recompute || !module.is_training() || !at::GradMode::is_enabled()) return forward(x);
  return recompute_in_backward(module, std::move(forward), x);
}

// Runs a stage's blocks, then its downsample, recording each output.
template <class BlockImpl>
static at::Tensor run_stage(torch::nn::ModuleList& blocks, PatchMerging& downsample, at::Tensor x,
                            Trace* trace, const std::string& name, bool recompute) {
  for (size_t i = 0; i < blocks->size(); ++i) {
    BlockImpl& block = blocks->at<BlockImpl>(i);
    x = maybe_recompute(
        block, [&block](const at::Tensor& in) { return block.forward(in); }, x, recompute);
    if (trace) trace->emplace_back(name + ".blocks." + std::to_string(i), x);
  }
  if (!downsample.is_empty())
    x = maybe_recompute(
        *downsample, [down = downsample.get()](const at::Tensor& in) { return down->forward(in); },
        x, recompute);
  if (trace) trace->emplace_back(name, x);
  return x;
}

ConvLayerImpl::ConvLayerImpl(int64_t dim, Resolution input_resolution, int64_t depth,
                             int64_t out_dim, bool with_downsample, double conv_expand_ratio) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i) blocks->push_back(MBConv(dim, dim, conv_expand_ratio));
  if (with_downsample)
    downsample = register_module("downsample", PatchMerging(input_resolution, dim, out_dim));
}

at::Tensor ConvLayerImpl::forward(const at::Tensor& x, Trace* trace, const std::string& name) {
  return run_stage<MBConvImpl>(blocks, downsample, x, trace, name, recompute);
}

BasicLayerImpl::BasicLayerImpl(int64_t dim, Resolution input_resolution, int64_t depth,
                               int64_t num_heads, int64_t window_size, double mlp_ratio,
                               int64_t local_conv_size, int64_t out_dim, bool with_downsample) {
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < depth; ++i)
    blocks->push_back(
        TinyViTBlock(dim, input_resolution, num_heads, window_size, mlp_ratio, local_conv_size));
  if (with_downsample)
    downsample = register_module("downsample", PatchMerging(input_resolution, dim, out_dim));
}

at::Tensor BasicLayerImpl::forward(const at::Tensor& x, Trace* trace, const std::string& name) {
  return run_stage<TinyViTBlockImpl>(blocks, downsample, x, trace, name, recompute);
}

}  // namespace sd::models::tiny_vit

namespace sd::models {

using tiny_vit::Resolution;

TinyViT::TinyViT(const TinyViTConfig& c) {
  int64_t dim0 = c.embed_dims.front(), last = c.embed_dims.back();
  patch_embed = register_module("patch_embed", tiny_vit::PatchEmbed(c.in_chans, dim0));
  layers = register_module("layers", torch::nn::ModuleList());
  size_t n = c.depths.size();
  for (size_t i = 0; i < n; ++i) {
    // The grid halves per stage, except that stage 3 keeps stage 2's (stride-1 merging).
    int64_t r = (c.img_size / 4) >> (i == 3 ? i - 1 : i);
    Resolution res{r, r};
    int64_t out_dim = c.embed_dims[std::min(i + 1, n - 1)];
    bool down = i + 1 < n;
    if (i == 0)
      layers->push_back(
          tiny_vit::ConvLayer(dim0, res, c.depths[0], out_dim, down, c.mbconv_expand_ratio));
    else
      layers->push_back(tiny_vit::BasicLayer(c.embed_dims[i], res, c.depths[i], c.num_heads[i],
                                             c.window_sizes[i], c.mlp_ratio, c.local_conv_size,
                                             out_dim, down));
    output_resolution = res;
  }
  norm_head = register_module("norm_head", LayerNorm(torch::nn::LayerNormOptions({last})));
  if (c.num_classes > 0) head = register_module("head", Linear(last, c.num_classes));
  neck = register_module("neck", make_neck(last, c.out_chans));
  init_linear_weights();
  for (auto& m : modules(/*include_self=*/false))
    if (auto* linear = m->as<LinearImpl>()) linear->rows_as_image = true;
}

bool TinyViT::recompute_stages(int64_t stages) {
  recompute_patch_embed_ = stages > 0;
  for (size_t i = 0; i < layers->size(); ++i) {
    const bool on = int64_t(i) < stages;
    if (i == 0)
      layers->at<tiny_vit::ConvLayerImpl>(0).recompute = on;
    else
      layers->at<tiny_vit::BasicLayerImpl>(i).recompute = on;
  }
  return true;
}

// Python's _init_weights: Linear weights ~ N(0, 0.02) (timm's trunc_normal_ cuts at +-2,
// 100 standard deviations away), biases 0. LayerNorms already start at 1 / 0.
void TinyViT::init_linear_weights() {
  torch::NoGradGuard no_grad;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* linear = m->as<torch::nn::LinearImpl>()) {
      linear->weight.normal_(0.0, 0.02);
      linear->bias.zero_();
    }
}

at::Tensor TinyViT::forward(const at::Tensor& input, Trace* trace) {
  at::Tensor x = tiny_vit::maybe_recompute(
      *patch_embed,
      [embed = patch_embed.get()](const at::Tensor& in) { return embed->forward(in); },
      tiny_vit::runs_channels_last(*this, input) ? input.contiguous(at::MemoryFormat::ChannelsLast)
                                                 : input,
      recompute_patch_embed_);
  if (trace) trace->emplace_back("patch_embed", x);
  x = layers->at<tiny_vit::ConvLayerImpl>(0).forward(x, trace, "layers.0");
  for (size_t i = 1; i < layers->size(); ++i)
    x = layers->at<tiny_vit::BasicLayerImpl>(i).forward(x, trace, "layers." + std::to_string(i));
  x = neck->forward(tiny_vit::as_nchw(*this, x, output_resolution.first, output_resolution.second));
  if (trace) trace->emplace_back("neck", x);
  return x;
}

}  // namespace sd::models
