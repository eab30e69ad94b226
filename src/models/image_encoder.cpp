#include "models/image_encoder.h"

namespace sd::models {

std::shared_ptr<ImageEncoder> make_image_encoder(const EncoderConfig& config) {
  return config.family().build(config);
}

}  // namespace sd::models
