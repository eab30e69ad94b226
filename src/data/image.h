#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <string_view>

namespace sd::data {

// Turns an image file's bytes into uint8 HxWx3 RGB; throws sd::Error naming `where` and the
// reason when the bytes are not a complete, decodable image. The loader takes one, so that a
// build without OpenCV can plug in another source of pixels.
using ImageDecoder = std::function<at::Tensor(std::string_view bytes, const std::string& where)>;

// OpenCV's decoder (JPEG, PNG, ...), EXIF orientation ignored as PIL ignores it, grey and CMYK
// converted to RGB, alpha dropped; JPEGs are first checked for truncation
// (check_jpeg_complete). A build without OpenCV returns a decoder that throws sd::Error.
ImageDecoder default_image_decoder();
bool image_decoding_available();

// Walks a JPEG's marker segments and entropy-coded data up to the EOI marker. Throws when the
// data ends first (a truncated file: OpenCV would decode it silently with grey rows) or a
// segment length is impossible. Bytes that do not start with a JPEG SOI marker are left alone.
void check_jpeg_complete(std::string_view bytes, const std::string& where);

}  // namespace sd::data
