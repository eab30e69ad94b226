#include "data/prompts.h"

#include <ATen/ATen.h>

#include <limits>
#include <vector>

#include "util/error.h"

namespace sd::data {
namespace {

// Felzenszwalb & Huttenlocher's 1-D squared Euclidean distance transform of f (0 at the
// sources, kFar elsewhere), in place: the lower envelope of the parabolas (q - v)^2 + f[v].
// v and z are scratch of sizes n and n + 1.
void distance_1d(std::vector<double>& f, std::vector<int>& v, std::vector<double>& z) {
  const int n = static_cast<int>(f.size());
  const double inf = std::numeric_limits<double>::infinity();
  auto intersection = [&](int q, int p) {
    return ((f[q] + double(q) * q) - (f[p] + double(p) * p)) / (2.0 * q - 2.0 * p);
  };
  int k = 0;
  v[0] = 0;
  z[0] = -inf;
  z[1] = inf;
  for (int q = 1; q < n; ++q) {
    double s = intersection(q, v[k]);
    while (s <= z[k]) s = intersection(q, v[--k]);
    ++k;
    v[k] = q;
    z[k] = s;
    z[k + 1] = inf;
  }
  std::vector<double> d(n);
  k = 0;
  for (int q = 0; q < n; ++q) {
    while (z[k + 1] < q) ++k;
    d[q] = double(q - v[k]) * (q - v[k]) + f[v[k]];
  }
  f.swap(d);
}

at::Tensor point(double x, double y) { return at::tensor({float(x), float(y)}).view({1, 2}); }

// splitmix64 step: a small, fully specified generator, the same on every platform.
uint64_t mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

}  // namespace

std::array<int64_t, 2> mask_centre(const at::Tensor& mask) {
  // Squared distances on the mask padded by one background pixel on every side.
  const int64_t h = mask.size(0) + 2, w = mask.size(1) + 2;
  at::Tensor m = mask.contiguous();
  const uint8_t* src = m.data_ptr<uint8_t>();
  const double kFar = 1e20;  // "no source yet": far above any squared distance in an image
  std::vector<double> grid(h * w, 0.0);
  bool any = false;
  for (int64_t r = 1; r < h - 1; ++r)
    for (int64_t c = 1; c < w - 1; ++c)
      if (src[(r - 1) * (w - 2) + (c - 1)]) {
        grid[r * w + c] = kFar;
        any = true;
      }
  if (!any) throw Error("mask_centre: the mask is empty");
  const int64_t n = std::max(h, w);
  std::vector<double> line;
  std::vector<int> v(n);
  std::vector<double> z(n + 1);
  for (int64_t c = 0; c < w; ++c) {  // columns
    line.resize(h);
    for (int64_t r = 0; r < h; ++r) line[r] = grid[r * w + c];
    distance_1d(line, v, z);
    for (int64_t r = 0; r < h; ++r) grid[r * w + c] = line[r];
  }
  int64_t best = -1;
  for (int64_t r = 0; r < h; ++r) {  // rows
    line.assign(grid.begin() + r * w, grid.begin() + (r + 1) * w);
    distance_1d(line, v, z);
    for (int64_t c = 0; c < w; ++c) {
      if (best < 0 || line[c] > grid[best]) best = r * w + c;
      grid[r * w + c] = line[c];
    }
  }
  return {best / w - 1, best % w - 1};
}

at::Tensor annotation_prompt(const Annotation& a, PromptKind kind, uint64_t seed) {
  const std::string where = "annotation " + std::to_string(a.id);
  switch (kind) {
    case PromptKind::box:
      return at::tensor({float(a.bbox[0]), float(a.bbox[1]), float(a.bbox[0] + a.bbox[2]),
                         float(a.bbox[1] + a.bbox[3])});
    case PromptKind::point_coords:
      if (a.point_coords.empty()) throw Error(where + ": has no point_coords");
      return point(a.point_coords[0][0], a.point_coords[0][1]);
    case PromptKind::centre: {
      // Everything outside the mask's box is background, and for any background pixel outside
      // the box its projection on the box's border ring is as close: the box alone decides.
      auto [x, y, w, h] = rle_bbox(a.segmentation);
      if (w == 0) throw Error(where + ": the mask is empty");
      auto [row, col] =
          mask_centre(rle_decode(a.segmentation).slice(0, y, y + h).slice(1, x, x + w));
      return point(x + col + 0.5, y + row + 0.5);
    }
    case PromptKind::random_point: {
      const int64_t area = rle_area(a.segmentation);
      if (area == 0) throw Error(where + ": the mask is empty");
      // The k-th 1 pixel in the runs' (column-major) order.
      int64_t k = static_cast<int64_t>(mix(mix(seed) ^ static_cast<uint64_t>(a.id)) %
                                       static_cast<uint64_t>(area));
      const auto& counts = a.segmentation.counts;
      int64_t p = 0;
      for (size_t i = 0; i < counts.size(); ++i) {
        if (i % 2 == 1 && k < counts[i]) {
          p += k;
          break;
        }
        if (i % 2 == 1) k -= counts[i];
        p += counts[i];
      }
      const int64_t h = a.segmentation.height;
      return point(p / h + 0.5, p % h + 0.5);
    }
  }
  throw Error(where + ": unknown prompt kind");
}

at::Tensor annotation_prompt_1024(const Annotation& a, PromptKind kind, models::Size2 original_size,
                                  uint64_t seed) {
  const models::ResizeLongestSide transform(1024);
  at::Tensor prompt = annotation_prompt(a, kind, seed);
  return kind == PromptKind::box ? transform.apply_boxes(prompt, original_size).view({4})
                                 : transform.apply_coords(prompt, original_size);
}

}  // namespace sd::data
