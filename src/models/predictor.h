#pragma once
#include <ATen/core/Tensor.h>

#include <optional>

#include "models/autocast.h"
#include "models/image_encoder.h"
#include "models/sam.h"
#include "models/transforms.h"

namespace sd::models {

// Masks at the original size (bool, or float logits with return_logits), their predicted
// IoU, and 256x256 low-res logits (reusable as mask_input). predict() drops the batch
// dimension: CxHxW, C, Cx256x256. Everything stays on the model's device.
struct Prediction {
  at::Tensor masks;
  at::Tensor iou_predictions;
  at::Tensor low_res_logits;
};

// Prompts in original pixels (predict()'s) -> the batch of one that predict_torch() and
// SamImpl::decode() take: coordinates in the resized image's frame, on `device`.
Prompts to_input_frame(const Prompts& prompts, const ResizeLongestSide& transform,
                       Size2 original_size, c10::Device device);

// SAM's SamPredictor: encode an image once, then predict masks for many prompts.
class SamPredictor {
 public:
  explicit SamPredictor(Sam model);

  // uint8 HxWx3 RGB already resized by ResizeLongestSide(1024) from an image of
  // `original_size` (H, W); runs the image encoder.
  void set_image(const at::Tensor& resized_image, Size2 original_size);
  // A precomputed 1x256x64x64 embedding (e.g. a stored teacher embedding) of an image of
  // `original_size`.
  void set_image_embedding(const at::Tensor& embedding, Size2 original_size);

  // `trace` (optional) receives sparse_embeddings, dense_embeddings, transformer_tokens,
  // transformer_image.
  Prediction predict(const Prompts& prompts, bool multimask_output = true,
                     bool return_logits = false, Trace* trace = nullptr);
  Prediction predict_torch(const Prompts& prompts, bool multimask_output = true,
                           bool return_logits = false, Trace* trace = nullptr);

  // SamImpl::decode on the image set, for prompts in predict_torch's frame. Prompts without a
  // mask input share the decoder's work on the image (SamImpl::prepare_decoder): made at the
  // first such prompt, kept until the next image, remade where the mixed precision or the
  // prompt encoder's or decoder's weights changed; with autograd on, nothing is kept.
  DecoderOutput decode(const Prompts& prompts, bool multimask_output, Trace* trace = nullptr);

  const at::Tensor& get_image_embedding() const;
  Size2 original_size() const { return original_size_; }
  Size2 input_size() const { return input_size_; }
  const ResizeLongestSide& transform() const { return transform_; }
  Sam& model() { return model_; }

 private:
  void require_image() const;

  Sam model_;
  ResizeLongestSide transform_;
  at::Tensor features_;  // undefined until an image is set
  // decode's work on features_ shared by prompts without a mask, and what it was made under.
  struct PreparedDecoder {
    DecoderImage image;
    Amp amp = Amp::off;
    uint64_t weights = 0;  // weights_stamp() then
  };
  std::optional<PreparedDecoder> prepared_;
  // Changes when a parameter or buffer of the prompt encoder or mask decoder is replaced or
  // written in place (a load, an optimiser step).
  uint64_t weights_stamp() const;
  Size2 original_size_{0, 0};
  Size2 input_size_{0, 0};
};

}  // namespace sd::models
