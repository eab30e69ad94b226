#include <ATen/ATen.h>
#include <turbojpeg.h>

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "data/image_decoders.h"

namespace sd::data {
namespace {

struct Destroy {
  void operator()(void* handle) const { tjDestroy(handle); }
};

// One decompressor per thread: loader workers decode side by side.
tjhandle decompressor() {
  thread_local std::unique_ptr<void, Destroy> handle(tjInitDecompress());
  return handle.get();
}

}  // namespace

std::optional<at::Tensor> decode_jpeg_turbojpeg(std::string_view bytes) {
  tjhandle tj = decompressor();
  if (!tj) return std::nullopt;
  auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
  const unsigned long size = bytes.size();
  int width = 0, height = 0, subsampling = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, data, size, &width, &height, &subsampling, &colorspace) != 0)
    return std::nullopt;
  if (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) return std::nullopt;
  at::Tensor rgb = at::empty({height, width, 3}, at::kByte);
  // Warnings (corrupt but complete data) leave an image, which OpenCV's decoder keeps too.
  if (tjDecompress2(tj, data, size, rgb.data_ptr<uint8_t>(), width, 0, height, TJPF_RGB, 0) != 0 &&
      tjGetErrorCode(tj) != TJERR_WARNING)
    return std::nullopt;
  return rgb;
}

}  // namespace sd::data
