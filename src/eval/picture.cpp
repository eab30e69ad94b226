#include "eval/picture.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/caption.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/png.h"

namespace sd::eval {
namespace {

const Colour kTeacher{30, 144, 255}, kStudent{255, 140, 0};

void fill(at::Tensor& rgb, int64_t r0, int64_t r1, int64_t c0, int64_t c1, Colour c) {
  r0 = std::clamp<int64_t>(r0, 0, rgb.size(0));
  r1 = std::clamp<int64_t>(r1, 0, rgb.size(0));
  c0 = std::clamp<int64_t>(c0, 0, rgb.size(1));
  c1 = std::clamp<int64_t>(c1, 0, rgb.size(1));
  if (r0 >= r1 || c0 >= c1) return;
  rgb.slice(0, r0, r1).slice(1, c0, c1).copy_(at::tensor({c[0], c[1], c[2]}, at::kByte));
}

}  // namespace

at::Tensor tint(const at::Tensor& rgb, const at::Tensor& mask, Colour colour) {
  at::Tensor c = at::tensor({float(colour[0]), float(colour[1]), float(colour[2])});
  at::Tensor blended = (rgb.to(at::kFloat) + c) * 0.5;
  return at::where(mask.ne(0).unsqueeze(-1), blended.round().to(at::kByte), rgb);
}

void draw_prompt(at::Tensor& rgb, const models::Prompts& p) {
  const int64_t unit = std::max<int64_t>(2, std::max(rgb.size(0), rgb.size(1)) / 200);
  if (p.box.defined()) {
    at::Tensor b = p.box.reshape({4});
    const int64_t x0 = std::lround(b[0].item<float>()), y0 = std::lround(b[1].item<float>());
    const int64_t x1 = std::lround(b[2].item<float>()), y1 = std::lround(b[3].item<float>());
    const Colour yellow{255, 230, 0};
    fill(rgb, y0 - unit / 2, y0 + unit / 2 + 1, x0, x1 + 1, yellow);
    fill(rgb, y1 - unit / 2, y1 + unit / 2 + 1, x0, x1 + 1, yellow);
    fill(rgb, y0, y1 + 1, x0 - unit / 2, x0 + unit / 2 + 1, yellow);
    fill(rgb, y0, y1 + 1, x1 - unit / 2, x1 + unit / 2 + 1, yellow);
  }
  if (p.point_coords.defined()) {
    for (int64_t i = 0; i < p.point_coords.size(0); ++i) {
      const int64_t x = std::lround(p.point_coords[i][0].item<float>() - 0.5);
      const int64_t y = std::lround(p.point_coords[i][1].item<float>() - 0.5);
      const bool fg = p.point_labels[i].item<int>() == 1;
      fill(rgb, y - 2 * unit, y + 2 * unit + 1, x - 2 * unit, x + 2 * unit + 1, {255, 255, 255});
      fill(rgb, y - unit, y + unit + 1, x - unit, x + unit + 1,
           fg ? Colour{0, 200, 0} : Colour{230, 0, 0});
    }
  }
}

at::Tensor fit_longest_side(const at::Tensor& rgb, int64_t side) {
  const double scale = double(side) / double(std::max(rgb.size(0), rgb.size(1)));
  const int64_t h = std::max<int64_t>(1, std::lround(rgb.size(0) * scale));
  const int64_t w = std::max<int64_t>(1, std::lround(rgb.size(1) * scale));
  at::Tensor x = rgb.permute({2, 0, 1}).unsqueeze(0).to(at::kFloat);
  x = at::upsample_bilinear2d(x, {h, w}, /*align_corners=*/false);
  return x[0].permute({1, 2, 0}).round().clamp(0, 255).to(at::kByte).contiguous();
}

at::Tensor side_by_side(const std::vector<at::Tensor>& panels, int64_t gap) {
  std::vector<at::Tensor> parts;
  for (size_t i = 0; i < panels.size(); ++i) {
    if (i) parts.push_back(at::full({panels[i].size(0), gap, 3}, 255, at::kByte));
    parts.push_back(panels[i]);
  }
  return at::cat(parts, 1).contiguous();
}

std::string picture_name(const PromptOutcome& o) {
  char iou[16];
  std::snprintf(iou, sizeof iou, "%.3f", o.iou);
  std::string image;
  for (const char c : o.image) image += c == '/' ? std::string("__") : std::string(1, c);
  return image + "_" + std::to_string(o.annotation) + "_" + o.kind + "_iou" + iou + ".png";
}

std::string png_bytes(const at::Tensor& rgb, const std::string& what) {
  at::Tensor c = rgb.to(at::kByte).contiguous();
  if (c.dim() != 3 || c.size(2) != 3) throw Error(what + ": a PNG needs an HxWx3 image");
  return encode_png_rgb(c.data_ptr<uint8_t>(), int(c.size(1)), int(c.size(0)));
}

void write_png(const std::string& path, const at::Tensor& rgb) {
  write_file_atomic(path, png_bytes(rgb, path));
}

at::Tensor comparison(const at::Tensor& rgb, const models::Prompts& prompt,
                      const at::Tensor& teacher_mask, const at::Tensor& student_mask,
                      const std::string& caption, int64_t side) {
  at::Tensor with_prompt = rgb.clone();
  draw_prompt(with_prompt, prompt);
  at::Tensor teacher = tint(rgb, teacher_mask, kTeacher),
             student = tint(rgb, student_mask, kStudent);
  draw_prompt(teacher, prompt);
  draw_prompt(student, prompt);
  return with_caption(
      side_by_side({fit_longest_side(with_prompt, side), fit_longest_side(teacher, side),
                    fit_longest_side(student, side)}),
      caption);
}

}  // namespace sd::eval
