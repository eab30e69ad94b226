#pragma once
#include <string>

#include "models/image_encoder_vit.h"
#include "models/resnet.h"
#include "models/sam.h"
#include "models/tiny_vit.h"
#include "onnx/graph.h"

// The ONNX graphs of SAM's parts, each emitted by one function per module of the model, named
// and nested as the modules (and their state-dict keys) are.
namespace sd::onnx {

// The image encoders of the families built in (onnx/encoder_exporter.h), of their configs: the
// value name of the 1 x 3 x S x S preprocessed image -> the value name of the 1 x 256 x 64 x 64
// embedding.
std::string tiny_vit(Graph& g, models::TinyViT& m, const models::EncoderConfig& config,
                     const std::string& x);
std::string image_encoder_vit(Graph& g, models::ImageEncoderViT& m,
                              const models::EncoderConfig& config, const std::string& x);
std::string resnet_encoder(Graph& g, models::ResNetEncoder& m, const models::EncoderConfig& config,
                           const std::string& x);

// SamOnnxModel (segment_anything/utils/onnx.py) with its inputs and outputs: image_embeddings,
// point_coords, point_labels, mask_input, has_mask_input, orig_im_size -> masks,
// iou_predictions, low_res_masks.
void sam_onnx_model(Graph& g, models::SamImpl& sam, bool return_single_mask);

}  // namespace sd::onnx
