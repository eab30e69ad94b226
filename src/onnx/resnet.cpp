// NanoSAM's ResNet student (models/resnet.h) as ONNX nodes, one function per module. Batch 1,
// every shape static; each batch norm is folded into the convolution before it, so the graph
// holds the inference model only.
#include "models/resnet.h"

#include <torch/nn/modules/conv.h>

#include "models/common.h"
#include "onnx/layers.h"
#include "onnx/sam.h"
#include "util/error.h"

namespace sd::onnx {
namespace {

using namespace models::resnet;
using torch::nn::BatchNorm2dImpl;
using torch::nn::Conv2dImpl;

std::string conv_bn(Graph& g, Conv2dImpl& c, const BatchNorm2dImpl& bn, const std::string& x,
                    const std::string& name) {
  Graph::Scope s(g, name);
  return conv2d_bn(g, c, bn, x);
}

std::string basic_block(Graph& g, BasicBlockImpl& m, const std::string& x) {
  std::string y = relu(g, conv_bn(g, *m.conv1, *m.bn1, x, "conv1"));
  y = conv_bn(g, *m.conv2, *m.bn2, y, "conv2");
  const std::string identity =
      m.downsample.is_empty()
          ? x
          : conv_bn(g, *m.downsample->ptr(0)->as<Conv2dImpl>(),
                    *m.downsample->ptr(1)->as<BatchNorm2dImpl>(), x, "downsample.0");
  return relu(g, add(g, y, identity));
}

std::string backbone(Graph& g, BackboneImpl& m, const std::string& x) {
  Graph::Scope s(g, "backbone");
  std::string y = max_pool(g, relu(g, conv_bn(g, *m.conv1, *m.bn1, x, "conv1")), 3, 2, 1);
  for (size_t i = 0; i < m.layers.size(); ++i) {
    Graph::Scope layer(g, "layer" + std::to_string(i + 1));
    for (size_t b = 0; b < m.layers[i]->size(); ++b) {
      Graph::Scope block(g, std::to_string(b));
      y = basic_block(g, *m.layers[i]->ptr<BasicBlockImpl>(b), y);
    }
  }
  return y;
}

// The neck's Sequentials (`up_1`, `proj`): convolutions, transposed convolutions and GELUs.
std::string sequential(Graph& g, torch::nn::Sequential& m, const std::string& x,
                       const std::string& name) {
  Graph::Scope s(g, name);
  std::string y = x;
  for (size_t i = 0; i < m->size(); ++i) {
    Graph::Scope layer(g, std::to_string(i));
    if (auto* c = m->ptr(i)->as<Conv2dImpl>())
      y = conv2d(g, *c, y);
    else if (auto* t = m->ptr(i)->as<torch::nn::ConvTranspose2dImpl>())
      y = conv_transpose2d(g, *t, y);
    else if (m->ptr(i)->as<models::GELUImpl>())
      y = gelu(g, y);
    else
      throw Error("ONNX export: " + name + "." + std::to_string(i) + " is a " + m->ptr(i)->name() +
                  ", which the ResNet neck's export does not know");
  }
  return y;
}

}  // namespace

std::string resnet_encoder(Graph& g, models::ResNetEncoder& m, const models::EncoderConfig&,
                           const std::string& x) {
  std::string y = sequential(g, m.up_1, backbone(g, *m.backbone, x), "up_1");
  y = sequential(g, m.proj, y, "proj");
  // In a graph of int8 weights the position embedding too (4 MiB in fp32): int8 per channel.
  return add(g, y, weight(g, m.pos_embedding, 1, "pos_embedding"));
}

}  // namespace sd::onnx
