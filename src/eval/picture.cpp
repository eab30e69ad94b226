#include "eval/picture.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "eval/caption.h"
#include "util/atomic_file.h"
#include "util/error.h"
#include "util/log.h"
#include "util/png.h"

namespace fs = std::filesystem;

namespace sd::eval {
namespace {

const Colour kTeacher{30, 144, 255}, kStudent{255, 140, 0}, kTruth{170, 40, 220};

void fill(at::Tensor& rgb, int64_t r0, int64_t r1, int64_t c0, int64_t c1, Colour c) {
  r0 = std::clamp<int64_t>(r0, 0, rgb.size(0));
  r1 = std::clamp<int64_t>(r1, 0, rgb.size(0));
  c0 = std::clamp<int64_t>(c0, 0, rgb.size(1));
  c1 = std::clamp<int64_t>(c1, 0, rgb.size(1));
  if (r0 >= r1 || c0 >= c1) return;
  rgb.slice(0, r0, r1).slice(1, c0, c1).copy_(at::tensor({c[0], c[1], c[2]}, at::kByte));
}

// The pixels of `mask` (HxW) within `width` pixels of a pixel outside it.
at::Tensor edge(const at::Tensor& mask, int64_t width) {
  const at::Tensor inside = mask.ne(0);
  const at::Tensor outside = inside.logical_not().to(at::kFloat).unsqueeze(0).unsqueeze(0);
  const int64_t k = 2 * width + 1;
  const at::Tensor near_outside = at::max_pool2d(outside, {k, k}, {1, 1}, {width, width})[0][0];
  return inside & near_outside.gt(0);
}

// `mask` (HxW) resized to h x w, nearest.
at::Tensor mask_fit(const at::Tensor& mask, int64_t h, int64_t w) {
  const at::Tensor m = mask.ne(0).to(at::kFloat).unsqueeze(0).unsqueeze(0);
  return at::upsample_nearest2d(m, {h, w})[0][0].gt(0.5);
}

// `p` in the pixels of an image scaled by sx (x) and sy (y).
models::Prompts scaled(const models::Prompts& p, double sx, double sy) {
  models::Prompts out = p;
  if (p.point_coords.defined())
    out.point_coords = p.point_coords.to(at::kFloat) * at::tensor({float(sx), float(sy)});
  if (p.box.defined())
    out.box = p.box.to(at::kFloat) *
              at::tensor({float(sx), float(sy), float(sx), float(sy)}).view(p.box.sizes());
  return out;
}

}  // namespace

at::Tensor tint(const at::Tensor& rgb, const at::Tensor& mask, Colour colour) {
  at::Tensor c = at::tensor({float(colour[0]), float(colour[1]), float(colour[2])});
  at::Tensor blended = (rgb.to(at::kFloat) + c) * 0.5;
  at::Tensor out = at::where(mask.ne(0).unsqueeze(-1), blended.round().to(at::kByte), rgb);
  const int64_t width = std::max<int64_t>(1, std::max(rgb.size(0), rgb.size(1)) / 250);
  return at::where(edge(mask, width).unsqueeze(-1),
                   at::tensor({colour[0], colour[1], colour[2]}, at::kByte), out)
      .contiguous();
}

void draw_prompt(at::Tensor& rgb, const models::Prompts& p) {
  const int64_t unit = std::max<int64_t>(3, std::max(rgb.size(0), rgb.size(1)) / 150);
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

std::string png_bytes(const at::Tensor& image, const std::string& what) {
  at::Tensor c = image.to(at::kByte).contiguous();
  if (c.dim() == 2)
    return encode_png(
        std::string(reinterpret_cast<const char*>(c.data_ptr<uint8_t>()), size_t(c.numel())),
        int(c.size(1)), int(c.size(0)), 8, 0);
  if (c.dim() != 3 || c.size(2) != 3)
    throw Error(what + ": a PNG needs an HxWx3 (RGB) or HxW (grey) image");
  return encode_png_rgb(c.data_ptr<uint8_t>(), int(c.size(1)), int(c.size(0)));
}

void write_png(const std::string& path, const at::Tensor& image) {
  write_file_atomic(path, png_bytes(image, path));
}

void prepare_pictures_folder(const std::string& dir, const std::string& flag) {
  const fs::path marker = fs::path(dir) / "samdistill-pictures.txt";
  const bool ours = fs::is_regular_file(marker);
  std::vector<fs::path> earlier;
  if (fs::exists(dir)) {
    if (!fs::is_directory(dir)) throw Error(flag + " '" + dir + "' is a file, not a folder");
    for (const auto& entry : fs::directory_iterator(dir)) {
      const fs::path& p = entry.path();
      if (p == marker) continue;
      if (!ours || !entry.is_regular_file() || p.extension() != ".png")
        throw Error(flag + " '" + dir + "' holds files samdistill did not write there (" +
                    p.string() + "): give a new or empty folder");
      earlier.push_back(p);
    }
  }
  if (!earlier.empty())
    log::info(flag + " '" + dir + "': replacing the " + std::to_string(earlier.size()) +
              " pictures written there before");
  for (const fs::path& p : earlier) fs::remove(p);
  fs::create_directories(dir);
  if (!ours)
    write_file_atomic(marker.string(),
                      "Pictures written by samdistill; a later call replaces them.\n");
}

at::Tensor comparison(const at::Tensor& rgb, const models::Prompts& prompt, const at::Tensor& truth,
                      const at::Tensor& teacher_mask, const at::Tensor& student_mask,
                      const std::string& caption, int64_t side) {
  // Drawn at the panels' size, so that outlines and prompts keep their width in pixels.
  const at::Tensor small = fit_longest_side(rgb, side);
  const int64_t h = small.size(0), w = small.size(1);
  const models::Prompts at_scale =
      scaled(prompt, double(w) / double(rgb.size(1)), double(h) / double(rgb.size(0)));
  auto panel = [&](at::Tensor picture) {
    draw_prompt(picture, at_scale);
    return picture;
  };
  std::vector<at::Tensor> panels{panel(small.clone())};
  if (truth.defined()) panels.push_back(panel(tint(small, mask_fit(truth, h, w), kTruth)));
  panels.push_back(panel(tint(small, mask_fit(teacher_mask, h, w), kTeacher)));
  panels.push_back(panel(tint(small, mask_fit(student_mask, h, w), kStudent)));
  return with_caption(side_by_side(panels), caption);
}

}  // namespace sd::eval
