#pragma once
// The decoders behind default_image_decoder (data/image.h), for it and its tests.
#include <ATen/core/Tensor.h>

#include <optional>
#include <string>
#include <string_view>

namespace sd::data {

// OpenCV's decoder: uint8 HxWx3 RGB; throws sd::Error naming `where` when it cannot decode.
at::Tensor decode_image_opencv(std::string_view bytes, const std::string& where);

// libjpeg-turbo's own API, straight to RGB: the same pixels as OpenCV's decoder (the same
// libjpeg-turbo underneath, the same DCT and upsampling) without OpenCV's BGR image and its
// conversion (SAM's preprocessing went from 56 to 73 images/s on one thread). nullopt for what it
// leaves to OpenCV: other formats, CMYK JPEGs, and data libjpeg-turbo refuses (OpenCV's decoder
// then says why).
std::optional<at::Tensor> decode_jpeg_turbojpeg(std::string_view bytes);

}  // namespace sd::data
