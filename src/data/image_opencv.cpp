#include <ATen/ATen.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/image_decoders.h"
#include "util/error.h"

namespace sd::data {

at::Tensor decode_image_opencv(std::string_view bytes, const std::string& where) {
  cv::Mat encoded(1, static_cast<int>(bytes.size()), CV_8U, const_cast<char*>(bytes.data()));
  cv::Mat bgr;
  try {
    bgr = cv::imdecode(encoded, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
  } catch (const cv::Exception& e) {
    throw Error(where + ": cannot decode image (" + e.what() + ")");
  }
  if (bgr.empty() || bgr.type() != CV_8UC3)
    throw Error(where + ": cannot decode image (not a JPEG/PNG or corrupt)");
  at::Tensor rgb = at::empty({bgr.rows, bgr.cols, 3}, at::kByte);
  cv::Mat out(bgr.rows, bgr.cols, CV_8UC3, rgb.data_ptr<uint8_t>());
  cv::cvtColor(bgr, out, cv::COLOR_BGR2RGB);
  return rgb;
}

}  // namespace sd::data
