#include "data/prompts.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <vector>

#include "util/error.h"
#include "util/random.h"
#include "util/text.h"

namespace sd::data {
namespace {

const char* const kKinds =
    "the kinds are box, point, center, fgbg@D with D > 0 pixels, and without masks grid@N "
    "(N x N points, 1 <= N <= 64) and random@K (K points, 1 <= K <= 4096); eval also takes "
    "everything[@N] (SAM's automatic masks, N x N points, 1 <= N <= 64)";

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

at::Tensor points(std::initializer_list<std::array<double, 2>> xy) {
  std::vector<float> flat;
  for (const auto& p : xy) flat.insert(flat.end(), {float(p[0]), float(p[1])});
  return at::tensor(flat).view({int64_t(xy.size()), 2});
}

// The whole number after "<kind>@" in `text`, when it is one in [1, most]; else 0.
int count_after(const std::string& text, const std::string& kind, int most) {
  if (!starts_with(text, kind + "@")) return 0;
  const std::string digits = text.substr(kind.size() + 1);
  if (digits.empty() || digits.size() > 6 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    return 0;
  const int n = std::stoi(digits);
  return n >= 1 && n <= most ? n : 0;
}

PromptSpec parse_one(const std::string& text, const std::string& where) {
  if (text == "box") return {PromptKind::box, 0, 0};
  if (text == "point") return {PromptKind::point, 0, 0};
  if (text == "center") return {PromptKind::center, 0, 0};
  if (const int n = count_after(text, "grid", 64)) return {PromptKind::grid, 0, n};
  if (const int k = count_after(text, "random", 4096)) return {PromptKind::random, 0, k};
  if (text == "everything") return {PromptKind::everything, 0, 0};
  if (const int n = count_after(text, "everything", 64)) return {PromptKind::everything, 0, n};
  if (starts_with(text, "fgbg@")) {
    const std::string number = text.substr(5);
    size_t used = 0;
    double d = 0;
    try {
      d = std::stod(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == number.size() && !number.empty() && std::isfinite(d) && d > 0)
      return {PromptKind::fgbg, d, 0};
  }
  throw Error(where + ": '" + text + "' is not a prompt kind (" + kKinds + ")");
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

std::string PromptSpec::name() const {
  switch (kind) {
    case PromptKind::box:
      return "box";
    case PromptKind::point:
      return "point";
    case PromptKind::center:
      return "center";
    case PromptKind::fgbg: {
      std::ostringstream s;
      s << "fgbg@" << distance;
      return s.str();
    }
    case PromptKind::grid:
      return "grid@" + std::to_string(count);
    case PromptKind::random:
      return "random@" + std::to_string(count);
    case PromptKind::everything:
      return count == 0 ? "everything" : "everything@" + std::to_string(count);
  }
  return "?";
}

std::vector<PromptSpec> parse_prompt_specs(const std::string& comma_list,
                                           const std::string& where) {
  std::vector<PromptSpec> out;
  std::stringstream in(comma_list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(parse_one(item, where));
  if (out.empty()) throw Error(where + ": no prompt kind given (" + kKinds + ")");
  return out;
}

at::Tensor annotation_prompt(const Annotation& a, PromptKind kind) {
  const std::string where = "annotation " + std::to_string(a.id);
  switch (kind) {
    case PromptKind::box:
      return at::tensor({float(a.bbox[0]), float(a.bbox[1]), float(a.bbox[0] + a.bbox[2]),
                         float(a.bbox[1] + a.bbox[3])});
    case PromptKind::point:
      if (a.point_coords.empty()) throw Error(where + ": has no point_coords");
      return point(a.point_coords[0][0], a.point_coords[0][1]);
    case PromptKind::center: {
      // Everything outside the mask's box is background, and for any background pixel outside
      // the box its projection on the box's border ring is as close: the box alone decides.
      auto [x, y, w, h] = rle_bbox(a.segmentation);
      if (w == 0) throw Error(where + ": the mask is empty");
      auto [row, col] =
          mask_centre(rle_decode(a.segmentation).slice(0, y, y + h).slice(1, x, x + w));
      return point(x + col + 0.5, y + row + 0.5);
    }
    case PromptKind::fgbg:
      throw Error(where + ": an fgbg prompt is two points (make_prompt places them)");
    case PromptKind::grid:
    case PromptKind::random:
    case PromptKind::everything:
      break;
  }
  throw Error(where + ": grid, random and everything prompts come from the image");
}

at::Tensor annotation_prompt_1024(const Annotation& a, PromptKind kind,
                                  models::Size2 original_size) {
  const models::ResizeLongestSide transform(1024);
  at::Tensor prompt = annotation_prompt(a, kind);
  return kind == PromptKind::box ? transform.apply_boxes(prompt, original_size).view({4})
                                 : transform.apply_coords(prompt, original_size);
}

at::Tensor random_mask_point(const Annotation& a, uint64_t seed) {
  const int64_t area = rle_area(a.segmentation);
  if (area == 0) throw Error("annotation " + std::to_string(a.id) + ": the mask is empty");
  // The k-th 1 pixel in the runs' (column-major) order.
  int64_t k = static_cast<int64_t>(rng::mask_point_draw(seed, a.id) % static_cast<uint64_t>(area));
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

std::optional<PointPair> fgbg_points(const Annotation& a, const at::Tensor& mask, double distance,
                                     uint64_t seed) {
  if (rle_area(a.segmentation) == 0) return std::nullopt;
  at::Tensor fg = random_mask_point(a, seed);
  const double fx = fg[0][0].item<double>(), fy = fg[0][1].item<double>();
  const int64_t h = mask.size(0), w = mask.size(1);
  const uint8_t* m = mask.contiguous().data_ptr<uint8_t>();
  std::mt19937_64 directions = rng::fgbg_directions(seed, a.id);
  for (int attempt = 0; attempt < 64; ++attempt) {
    const double angle = 2 * M_PI * double(directions() >> 11) * 0x1.0p-53;
    const double bx = fx + distance * std::cos(angle), by = fy + distance * std::sin(angle);
    if (bx < 0 || by < 0 || bx >= w || by >= h) continue;
    if (m[int64_t(by) * w + int64_t(bx)] == 0) return PointPair{{fx, fy}, {bx, by}};
  }
  return std::nullopt;
}

std::optional<models::Prompts> make_prompt(const Annotation& a, const at::Tensor& mask,
                                           const PromptSpec& spec, uint64_t seed) {
  if (rle_area(a.segmentation) == 0) return std::nullopt;
  models::Prompts p;
  switch (spec.kind) {
    case PromptKind::box:
      p.box = annotation_prompt(a, PromptKind::box);
      break;
    case PromptKind::point:
      if (a.point_coords.empty()) return std::nullopt;
      p.point_coords = annotation_prompt(a, PromptKind::point);
      p.point_labels = at::ones({1}, at::kInt);
      break;
    case PromptKind::center:
      p.point_coords = annotation_prompt(a, PromptKind::center);
      p.point_labels = at::ones({1}, at::kInt);
      break;
    case PromptKind::fgbg: {
      std::optional<PointPair> pair = fgbg_points(a, mask, spec.distance, seed);
      if (!pair) return std::nullopt;
      p.point_coords = points({pair->fg, pair->bg});
      p.point_labels = at::tensor({1, 0}, at::kInt);
      break;
    }
    case PromptKind::grid:
    case PromptKind::random:
    case PromptKind::everything:
      return std::nullopt;  // from the image: image_prompts, the automatic mask generator
  }
  return p;
}

void check_prompts_fit(const std::vector<PromptSpec>& specs, const Dataset& dataset,
                       const std::string& where) {
  const auto bare = std::find_if(dataset.entries().begin(), dataset.entries().end(),
                                 [](const Entry& e) { return !has_masks(e); });
  if (bare == dataset.entries().end()) return;
  for (const PromptSpec& spec : specs)
    if (spec.needs_mask())
      throw Error(where + ": '" + spec.name() + "' needs annotation masks, and '" +
                  bare->image_path +
                  "' (a plain image) has none; the kinds that work on images without masks "
                  "are grid@N and random@K (scored against the teacher's mask)");
}

std::vector<models::Prompts> image_prompts(const PromptSpec& spec, models::Size2 size,
                                           uint64_t seed, const std::string& image_id) {
  const double h = double(size[0]), w = double(size[1]);
  std::vector<std::array<double, 2>> xy;
  if (spec.kind == PromptKind::grid) {
    const int n = spec.count;
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < n; ++i) xy.push_back({(i + 0.5) / n * w, (j + 0.5) / n * h});
  } else if (spec.kind == PromptKind::random) {
    rng::SplitMix64 stream = rng::image_points_stream(seed, image_id);
    auto unit = [&] { return double(stream.next() >> 11) * 0x1.0p-53; };
    for (int k = 0; k < spec.count; ++k) {
      const double x = unit() * w;
      xy.push_back({x, unit() * h});
    }
  } else {
    throw Error("image_prompts: '" + spec.name() + "' is made from an annotation (make_prompt)");
  }
  std::vector<models::Prompts> prompts;
  for (const auto& [x, y] : xy) {
    models::Prompts p;
    p.point_coords = point(x, y);
    p.point_labels = at::ones({1}, at::kInt);
    prompts.push_back(std::move(p));
  }
  return prompts;
}

}  // namespace sd::data
