#include "models/image_encoder.h"

#include "models/image_encoder_vit.h"
#include "models/tiny_vit.h"

namespace sd::models {

std::shared_ptr<ImageEncoder> make_image_encoder(const EncoderConfig& config) {
  if (auto* vit = std::get_if<ViTConfig>(&config)) return std::make_shared<ImageEncoderViT>(*vit);
  return std::make_shared<TinyViT>(std::get<TinyViTConfig>(config));
}

}  // namespace sd::models
