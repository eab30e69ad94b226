#include "models/predictor.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <sstream>

#include "util/error.h"

namespace sd::models {

SamPredictor::SamPredictor(Sam model) : model_(std::move(model)), transform_(model_->img_size()) {}

void SamPredictor::set_image(const at::Tensor& resized_image, Size2 original_size) {
  at::NoGradGuard no_grad;
  Size2 expected = ResizeLongestSide::get_preprocess_shape(original_size[0], original_size[1],
                                                           transform_.target_length());
  if (resized_image.dim() != 3 || resized_image.size(0) != expected[0] ||
      resized_image.size(1) != expected[1]) {
    std::ostringstream msg;
    msg << "set_image: an image of original size " << original_size[0] << "x" << original_size[1]
        << " must come resized to " << expected[0] << "x" << expected[1] << "x3, got "
        << resized_image.sizes();
    throw Error(msg.str());
  }
  features_.reset();
  prepared_.reset();
  at::Tensor input = model_->preprocess(resized_image.to(model_->device()));
  features_ = model_->image_encoder->forward(input);
  original_size_ = original_size;
  input_size_ = expected;
}

void SamPredictor::set_image_embedding(const at::Tensor& embedding, Size2 original_size) {
  Size2 grid = model_->prompt_encoder->image_embedding_size();
  int64_t channels = model_->prompt_encoder->embed_dim();
  if (embedding.dim() != 4 || embedding.size(0) != 1 || embedding.size(1) != channels ||
      embedding.size(2) != grid[0] || embedding.size(3) != grid[1]) {
    std::ostringstream msg;
    msg << "set_image_embedding: expected a 1x" << channels << "x" << grid[0] << "x" << grid[1]
        << " embedding, got " << embedding.sizes();
    throw Error(msg.str());
  }
  features_ = embedding.to(model_->device(), at::kFloat);
  prepared_.reset();
  original_size_ = original_size;
  input_size_ = ResizeLongestSide::get_preprocess_shape(original_size[0], original_size[1],
                                                        transform_.target_length());
}

uint64_t SamPredictor::weights_stamp() const {
  uint64_t stamp = 0;
  for (const torch::nn::Module* m :
       {static_cast<const torch::nn::Module*>(model_->prompt_encoder.get()),
        static_cast<const torch::nn::Module*>(model_->mask_decoder.get())})
    for (const auto& list : {m->parameters(), m->buffers()})
      for (const at::Tensor& t : list)
        stamp = stamp * 31 + t._version() + reinterpret_cast<uintptr_t>(t.unsafeGetTensorImpl()) +
                reinterpret_cast<uintptr_t>(t.data_ptr());
  return stamp;
}

DecoderOutput SamPredictor::decode(const Prompts& prompts, bool multimask_output, Trace* trace) {
  require_image();
  if (prompts.mask_input.defined() || at::GradMode::is_enabled())
    return model_->decode(features_, prompts, multimask_output, trace);
  const Amp amp = current_amp(model_->device().type());
  const uint64_t weights = weights_stamp();
  if (!prepared_ || prepared_->amp != amp || prepared_->weights != weights)
    prepared_ = PreparedDecoder{model_->prepare_decoder(features_), amp, weights};
  return model_->decode(prepared_->image, prompts, multimask_output, trace);
}

const at::Tensor& SamPredictor::get_image_embedding() const {
  require_image();
  return features_;
}

void SamPredictor::require_image() const {
  if (!features_.defined())
    throw Error("SamPredictor: set an image (set_image or set_image_embedding) before predicting");
}

Prompts to_input_frame(const Prompts& prompts, const ResizeLongestSide& transform,
                       Size2 original_size, c10::Device device) {
  Prompts batched;
  if (prompts.point_coords.defined()) {
    batched.point_coords =
        transform.apply_coords(prompts.point_coords, original_size).to(device).unsqueeze(0);
    batched.point_labels = prompts.point_labels.to(device, at::kInt).unsqueeze(0);
  }
  if (prompts.box.defined())
    batched.box = transform.apply_boxes(prompts.box, original_size).to(device);
  if (prompts.mask_input.defined())
    batched.mask_input = prompts.mask_input.to(device, at::kFloat).unsqueeze(0);
  return batched;
}

Prediction SamPredictor::predict(const Prompts& prompts, bool multimask_output, bool return_logits,
                                 Trace* trace) {
  require_image();
  if (prompts.point_coords.defined() != prompts.point_labels.defined())
    throw Error("predict: point_coords and point_labels must be given together");
  const Prompts batched = to_input_frame(prompts, transform_, original_size_, model_->device());
  Prediction out = predict_torch(batched, multimask_output, return_logits, trace);
  return {out.masks[0], out.iou_predictions[0], out.low_res_logits[0]};
}

Prediction SamPredictor::predict_torch(const Prompts& prompts, bool multimask_output,
                                       bool return_logits, Trace* trace) {
  at::NoGradGuard no_grad;
  DecoderOutput decoded = decode(prompts, multimask_output, trace);  // requires an image
  at::Tensor masks = model_->postprocess_masks(decoded.masks, input_size_, original_size_);
  if (!return_logits) masks = masks > SamImpl::mask_threshold;
  return {masks, decoded.iou_predictions, decoded.masks};
}

}  // namespace sd::models
