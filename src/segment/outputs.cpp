#include "segment/outputs.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "util/atomic_file.h"
#include "util/png.h"

namespace sd::segment {
namespace {

std::vector<int64_t> xywh(const Box& b) { return {b[0], b[1], b[2] - b[0], b[3] - b[1]}; }

// The mask's pixels as packed 1-bit rows (most significant bit first), PNG's layout.
std::string packed_rows(const data::Rle& rle) {
  const at::Tensor mask = data::rle_decode(rle);
  const uint8_t* p = mask.data_ptr<uint8_t>();
  const size_t stride = size_t(rle.width + 7) / 8;
  std::string rows(stride * size_t(rle.height), '\0');
  for (int y = 0; y < rle.height; ++y)
    for (int x = 0; x < rle.width; ++x)
      if (p[int64_t(y) * rle.width + x])
        rows[size_t(y) * stride + size_t(x) / 8] |= char(0x80 >> (x % 8));
  return rows;
}

}  // namespace

std::string python_float(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  char buffer[64];
  const double magnitude = std::abs(value);
  // repr: fixed notation for 1e-4 <= |x| < 1e16, else scientific with a 2-digit exponent.
  const bool fixed = magnitude == 0 || (magnitude >= 1e-4 && magnitude < 1e16);
  auto result = std::to_chars(buffer, buffer + sizeof buffer, value,
                              fixed ? std::chars_format::fixed : std::chars_format::scientific);
  std::string text(buffer, result.ptr);
  if (fixed) {
    if (text.find('.') == std::string::npos) text += ".0";
  } else {  // "1e-05": to_chars writes "1e-05" already; "1.5e+16" likewise
    if (size_t e = text.find('e');
        e != std::string::npos && text[e + 1] == '+' && text.size() - e - 2 < 2)
      text.insert(e + 2, "0");
  }
  return text;
}

nlohmann::json record_json(const MaskRecord& m) {
  return {{"segmentation",
           {{"size", {m.rle.height, m.rle.width}}, {"counts", data::rle_to_string(m.rle)}}},
          {"area", data::rle_area(m.rle)},
          {"bbox", xywh(m.box)},
          {"predicted_iou", double(m.predicted_iou)},
          {"point_coords", {{m.point[0], m.point[1]}}},
          {"stability_score", double(m.stability_score)},
          {"crop_box", xywh(m.crop_box)}};
}

std::string metadata_csv(const std::vector<MaskRecord>& masks) {
  std::string out =
      "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
      "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h";
  for (size_t i = 0; i < masks.size(); ++i) {
    const MaskRecord& m = masks[i];
    std::vector<std::string> row{std::to_string(i), std::to_string(data::rle_area(m.rle))};
    for (int64_t v : xywh(m.box)) row.push_back(std::to_string(v));
    row.push_back(python_float(m.point[0]));
    row.push_back(python_float(m.point[1]));
    row.push_back(python_float(m.predicted_iou));
    row.push_back(python_float(m.stability_score));
    for (int64_t v : xywh(m.crop_box)) row.push_back(std::to_string(v));
    out += "\n";
    for (size_t k = 0; k < row.size(); ++k) out += (k ? "," : "") + row[k];
  }
  return out;
}

void write_mask_folder(const std::string& dir, const std::vector<MaskRecord>& masks) {
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < masks.size(); ++i) {
    const data::Rle& rle = masks[i].rle;
    write_file_atomic(dir + "/" + std::to_string(i) + ".png",
                      encode_png(packed_rows(rle), rle.width, rle.height, 1, 0));
  }
  write_file_atomic(dir + "/metadata.csv", metadata_csv(masks));
}

at::Tensor overlay(const at::Tensor& rgb, const std::vector<MaskRecord>& masks) {
  std::vector<size_t> order(masks.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return data::rle_area(masks[a].rle) > data::rle_area(masks[b].rle);
  });
  at::Tensor picture = rgb.to(at::kFloat).contiguous();
  for (size_t rank = 0; rank < order.size(); ++rank) {
    // Colours spread around the hue circle by the golden angle: neighbours differ.
    const double hue = std::fmod(double(rank) * 0.618033988749895, 1.0) * 6;
    const double f = hue - std::floor(hue);
    const double rgb_of[6][3] = {{1, f, 0},     {1 - f, 1, 0}, {0, 1, f},
                                 {0, 1 - f, 1}, {f, 0, 1},     {1, 0, 1 - f}};
    const double* c = rgb_of[int(hue) % 6];
    const at::Tensor colour = at::tensor({float(c[0] * 255), float(c[1] * 255), float(c[2] * 255)});
    const at::Tensor inside = data::rle_decode(masks[order[rank]].rle).to(at::kBool).unsqueeze(-1);
    picture = at::where(inside, picture * 0.45 + colour * 0.55, picture);
  }
  return picture.round().clamp(0, 255).to(at::kByte);
}

}  // namespace sd::segment
