#include "onnx/layers.h"

#include <ATen/ATen.h>
#include <torch/version.h>

#include <cmath>

#include "kernels/batch_norm.h"

namespace sd::onnx {
namespace {

// Symmetric int8 with one scale per index of `axis` (zero points 0): w ~ q * scale.
std::pair<at::Tensor, at::Tensor> quantize_per_channel(const at::Tensor& w, int64_t axis) {
  const at::Tensor rows = w.detach().transpose(0, axis).flatten(1);
  const at::Tensor scale = rows.abs().amax(1).clamp_min(1e-30) / 127.0;
  std::vector<int64_t> shape(w.dim(), 1);
  shape[axis] = -1;
  const at::Tensor q = (w.detach() / scale.view(shape)).round().clamp(-127, 127).to(at::kChar);
  return {q, scale};
}

struct ConvGeometry {
  int64_t stride, pad;
};
// The stride and padding of a Conv2d or ConvTranspose2d, which ONNX's node takes per side.
ConvGeometry square(const torch::nn::detail::ConvNdOptions<2>& o) {
  // The padding is a variant: c10's in LibTorch 1.x, std's in 2.x.
#if TORCH_VERSION_MAJOR >= 2
  const auto* pad = std::get_if<torch::ExpandingArray<2>>(&o.padding());
#else
  const auto* pad = c10::get_if<torch::ExpandingArray<2>>(&o.padding());
#endif
  TORCH_CHECK(pad && (*pad)->at(0) == (*pad)->at(1) && o.stride()->at(0) == o.stride()->at(1) &&
                  o.dilation()->at(0) == 1 && o.dilation()->at(1) == 1,
              "ONNX export: a convolution with unequal, named or dilated padding");
  return {o.stride()->at(0), (*pad)->at(0)};
}

}  // namespace

std::string weight(Graph& g, const at::Tensor& w, int64_t axis, const std::string& hint) {
  if (!g.int8_weights()) return g.constant(w, hint);
  // Back to float by Cast and Mul: constants, which ONNX Runtime folds when it loads the model,
  // so that a convolution runs as fp32's (its blocked-layout kernels). A DequantizeLinear it
  // would keep, for a quantised convolution it then does not make, and run on every call.
  const auto [q, scale] = quantize_per_channel(w, axis);
  std::vector<int64_t> shape(w.dim(), 1);
  shape[axis] = -1;
  const std::string value =
      g.op("Cast", {g.constant(q, hint + "_int8")}, {{"to", int64_t(Type::float32)}});
  return mul(g, value, g.constant(scale.to(at::kFloat).view(shape), hint + "_scale"));
}

std::string linear(Graph& g, torch::nn::LinearImpl& m, const std::string& x) {
  std::string y;
  if (g.int8_weights()) {
    // ONNX Runtime's dynamic quantisation (what its quantize_dynamic writes, fused into one
    // DynamicQuantizeMatMul): x to uint8 with its own scale per run, an integer product with
    // the int8 weight, back to float by both scales.
    const auto [q, scale] = quantize_per_channel(m.weight.t(), 1);
    const std::vector<std::string> xq = g.node("DynamicQuantizeLinear", {x}, {}, 3);
    y = g.op("MatMulInteger", {xq[0], g.constant(q, "weight_int8"), xq[2]});
    y = g.op("Cast", {y}, {{"to", int64_t(Type::float32)}});
    y = mul(g, y, mul(g, xq[1], g.constant(scale.to(at::kFloat), "weight_scale")));
  } else {
    y = g.op("MatMul", {x, g.constant(m.weight.t(), "weight")});
  }
  return m.bias.defined() ? add(g, y, g.constant(m.bias, "bias")) : y;
}

std::string layer_norm(Graph& g, torch::nn::LayerNormImpl& m, const std::string& x) {
  return g.op("LayerNormalization", {x, g.constant(m.weight, "weight"), g.constant(m.bias, "bias")},
              {{"axis", int64_t(-1)}, {"epsilon", float(m.options.eps())}});
}

std::string layer_norm_2d(Graph& g, models::LayerNorm2dImpl& m, const std::string& x) {
  const std::vector<Attr> over_channels{{"axes", std::vector<int64_t>{1}},
                                        {"keepdims", int64_t(1)}};
  const std::string u = g.op("ReduceMean", {x}, over_channels);
  const std::string d = g.op("Sub", {x, u});
  const std::string s = g.op("ReduceMean", {g.op("Mul", {d, d})}, over_channels);
  const std::string y = g.op("Div", {d, g.op("Sqrt", {add(g, s, g.scalar(float(m.eps)))})});
  return add(g, mul(g, y, g.constant(m.weight.view({-1, 1, 1}), "weight")),
             g.constant(m.bias.view({-1, 1, 1}), "bias"));
}

std::string gelu(Graph& g, const std::string& x) {
  const std::string erf = g.op("Erf", {g.op("Div", {x, g.scalar(float(std::sqrt(2.0)))})});
  return mul(g, mul(g, x, add(g, erf, g.scalar(1.0f))), g.scalar(0.5f));
}

std::string relu(Graph& g, const std::string& x) { return g.op("Relu", {x}); }

std::string conv(Graph& g, const std::string& x, const at::Tensor& weight, const at::Tensor& bias,
                 int64_t stride, int64_t pad, int64_t groups) {
  std::vector<std::string> inputs{x, onnx::weight(g, weight, 0)};
  if (bias.defined()) inputs.push_back(g.constant(bias, "bias"));
  return g.op("Conv", inputs,
              {{"kernel_shape", std::vector<int64_t>{weight.size(2), weight.size(3)}},
               {"strides", std::vector<int64_t>{stride, stride}},
               {"pads", std::vector<int64_t>{pad, pad, pad, pad}},
               {"group", groups}});
}

std::string conv2d(Graph& g, torch::nn::Conv2dImpl& m, const std::string& x) {
  const ConvGeometry c = square(m.options);
  return conv(g, x, m.weight, m.bias, c.stride, c.pad, m.options.groups());
}

std::string conv2d_bn(Graph& g, torch::nn::Conv2dImpl& c, const torch::nn::BatchNorm2dImpl& bn,
                      const std::string& x) {
  TORCH_CHECK(!c.bias.defined(), "ONNX export: a convolution with a bias before a batch norm");
  const ConvGeometry s = square(c.options);
  const auto [weight, bias] = kernels::fold_batch_norm(c.weight, bn);
  return conv(g, x, weight, bias, s.stride, s.pad, c.options.groups());
}

std::string conv_transpose2d(Graph& g, torch::nn::ConvTranspose2dImpl& m, const std::string& x) {
  const ConvGeometry c = square(m.options);
  const auto out_pad = m.options.output_padding();
  TORCH_CHECK(out_pad->at(0) == out_pad->at(1),
              "ONNX export: a transposed convolution with unequal output padding");
  std::vector<std::string> inputs{x, onnx::weight(g, m.weight, 1)};
  if (m.bias.defined()) inputs.push_back(g.constant(m.bias, "bias"));
  return g.op("ConvTranspose", inputs,
              {{"kernel_shape", std::vector<int64_t>{m.weight.size(2), m.weight.size(3)}},
               {"strides", std::vector<int64_t>{c.stride, c.stride}},
               {"pads", std::vector<int64_t>{c.pad, c.pad, c.pad, c.pad}},
               {"output_padding", std::vector<int64_t>{out_pad->at(0), out_pad->at(1)}},
               {"group", m.options.groups()}});
}

std::string max_pool(Graph& g, const std::string& x, int64_t kernel, int64_t stride, int64_t pad) {
  return g.op("MaxPool", {x},
              {{"kernel_shape", std::vector<int64_t>{kernel, kernel}},
               {"strides", std::vector<int64_t>{stride, stride}},
               {"pads", std::vector<int64_t>{pad, pad, pad, pad}}});
}

std::string mlp_block(Graph& g, models::MLPBlockImpl& m, const std::string& x,
                      models::Activation act) {
  std::string h;
  {
    Graph::Scope s(g, "lin1");
    h = linear(g, *m.lin1, x);
  }
  h = act == models::Activation::gelu ? gelu(g, h) : relu(g, h);
  Graph::Scope s(g, "lin2");
  return linear(g, *m.lin2, h);
}

std::string neck(Graph& g, torch::nn::Sequential& m, const std::string& x) {
  Graph::Scope s(g, "neck");
  std::string y = x;
  for (size_t i = 0; i < m->size(); ++i) {
    Graph::Scope layer(g, std::to_string(i));
    if (auto* c = m->ptr(i)->as<torch::nn::Conv2dImpl>())
      y = conv2d(g, *c, y);
    else
      y = layer_norm_2d(g, *m->ptr<models::LayerNorm2dImpl>(i), y);
  }
  return y;
}

std::string reshape(Graph& g, const std::string& x, const std::vector<int64_t>& shape) {
  return g.op("Reshape", {x, g.ints(shape)});
}

std::string transpose(Graph& g, const std::string& x, const std::vector<int64_t>& perm) {
  return g.op("Transpose", {x}, {{"perm", perm}});
}

std::string add(Graph& g, const std::string& a, const std::string& b) {
  return g.op("Add", {a, b});
}

std::string mul(Graph& g, const std::string& a, const std::string& b) {
  return g.op("Mul", {a, b});
}

std::string matmul(Graph& g, const std::string& a, const std::string& b) {
  return g.op("MatMul", {a, b});
}

std::string slice(Graph& g, const std::string& x, const std::vector<int64_t>& starts,
                  const std::vector<int64_t>& ends, const std::vector<int64_t>& axes) {
  return g.op("Slice", {x, g.ints(starts), g.ints(ends), g.ints(axes)});
}

}  // namespace sd::onnx
