#include "eval/prompts.h"

#include <ATen/ATen.h>

#include <cmath>
#include <random>
#include <sstream>

#include "data/prompts.h"
#include "util/error.h"

namespace sd::eval {

const char* const kDefaultPrompts = "box,point,center,fgbg@100,fgbg@200,fgbg@300,fgbg@400,fgbg@500";

std::string PromptSpec::name() const {
  switch (kind) {
    case Kind::box:
      return "box";
    case Kind::point:
      return "point";
    case Kind::center:
      return "center";
    case Kind::fgbg: {
      std::ostringstream s;
      s << "fgbg@" << distance;
      return s.str();
    }
  }
  return "?";
}

namespace {

PromptSpec parse_one(const std::string& text) {
  if (text == "box") return {PromptSpec::Kind::box, 0};
  if (text == "point") return {PromptSpec::Kind::point, 0};
  if (text == "center") return {PromptSpec::Kind::center, 0};
  if (text.rfind("fgbg@", 0) == 0) {
    const std::string number = text.substr(5);
    size_t used = 0;
    double d = 0;
    try {
      d = std::stod(number, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == number.size() && !number.empty() && std::isfinite(d) && d > 0)
      return {PromptSpec::Kind::fgbg, d};
  }
  throw Error("--prompts: '" + text +
              "' is not a prompt kind (box, point, center, fgbg@D with D > 0 pixels)");
}

at::Tensor points(std::initializer_list<std::array<double, 2>> xy) {
  std::vector<float> flat;
  for (const auto& p : xy) flat.insert(flat.end(), {float(p[0]), float(p[1])});
  return at::tensor(flat).view({int64_t(xy.size()), 2});
}

}  // namespace

std::vector<PromptSpec> parse_prompt_specs(const std::string& comma_list) {
  std::vector<PromptSpec> out;
  std::stringstream in(comma_list);
  for (std::string item; std::getline(in, item, ',');) out.push_back(parse_one(item));
  if (out.empty()) throw Error("--prompts: no prompt kind given");
  return out;
}

std::optional<PointPair> fgbg_points(const data::Annotation& a, const at::Tensor& mask,
                                     double distance, uint64_t seed) {
  if (data::rle_area(a.segmentation) == 0) return std::nullopt;
  at::Tensor fg = data::annotation_prompt(a, data::PromptKind::random_point, seed);
  const double fx = fg[0][0].item<double>(), fy = fg[0][1].item<double>();
  const int64_t h = mask.size(0), w = mask.size(1);
  const uint8_t* m = mask.contiguous().data_ptr<uint8_t>();
  // std::mt19937_64's sequence is fixed by the standard: the same directions everywhere.
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(a.id));
  for (int attempt = 0; attempt < 64; ++attempt) {
    const double angle = 2 * M_PI * double(rng() >> 11) * 0x1.0p-53;
    const double bx = fx + distance * std::cos(angle), by = fy + distance * std::sin(angle);
    if (bx < 0 || by < 0 || bx >= w || by >= h) continue;
    if (m[int64_t(by) * w + int64_t(bx)] == 0) return PointPair{{fx, fy}, {bx, by}};
  }
  return std::nullopt;
}

std::optional<models::Prompts> make_prompt(const data::Annotation& a, const at::Tensor& mask,
                                           const PromptSpec& spec, uint64_t seed) {
  if (data::rle_area(a.segmentation) == 0) return std::nullopt;
  models::Prompts p;
  switch (spec.kind) {
    case PromptSpec::Kind::box:
      p.box = data::annotation_prompt(a, data::PromptKind::box);
      break;
    case PromptSpec::Kind::point:
      if (a.point_coords.empty()) return std::nullopt;
      p.point_coords = data::annotation_prompt(a, data::PromptKind::point_coords);
      p.point_labels = at::ones({1}, at::kInt);
      break;
    case PromptSpec::Kind::center:
      p.point_coords = data::annotation_prompt(a, data::PromptKind::centre);
      p.point_labels = at::ones({1}, at::kInt);
      break;
    case PromptSpec::Kind::fgbg: {
      std::optional<PointPair> pair = fgbg_points(a, mask, spec.distance, seed);
      if (!pair) return std::nullopt;
      p.point_coords = points({pair->fg, pair->bg});
      p.point_labels = at::tensor({1, 0}, at::kInt);
      break;
    }
  }
  return p;
}

}  // namespace sd::eval
