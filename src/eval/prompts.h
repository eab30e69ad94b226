#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "data/records.h"
#include "models/predictor.h"

// The prompts of an evaluation, made from an SA-1B annotation in original pixels.
namespace sd::eval {

// `box` (the annotation's box), `point` (its point_coords), `center` (the mask pixel
// farthest from the boundary), `fgbg@D` (a foreground point inside the mask and a background
// point outside it, D pixels apart).
struct PromptSpec {
  enum class Kind { box, point, center, fgbg };
  Kind kind = Kind::box;
  double distance = 0;  // fgbg only, pixels

  std::string name() const;  // as written on the command line: "box", "fgbg@100", ...
  // One point: SAM's practice is to pick among three masks (multimask output).
  bool single_point() const { return kind == Kind::point || kind == Kind::center; }
};

// "box,point,center,fgbg@100"; sd::Error naming the entry that is not a kind.
std::vector<PromptSpec> parse_prompt_specs(const std::string& comma_list);
extern const char* const kDefaultPrompts;

// fgbg placement, both from (seed, annotation id): the foreground point is a mask pixel's
// centre (data::PromptKind::random_point); the background point lies at exactly `distance`
// from it in a seeded direction, inside the image, on a pixel outside the mask. nullopt when
// 64 directions all fail (the mask fills the circle, or the circle leaves the image).
struct PointPair {
  std::array<double, 2> fg, bg;  // (x, y)
};
std::optional<PointPair> fgbg_points(const data::Annotation& annotation, const at::Tensor& mask,
                                     double distance, uint64_t seed);

// The prompt of `spec` for the annotation (`mask`: its HxW uint8 0/1 decoding), or nullopt
// when the annotation cannot give one (no point_coords, empty mask, fgbg placement failed).
std::optional<models::Prompts> make_prompt(const data::Annotation& annotation,
                                           const at::Tensor& mask, const PromptSpec& spec,
                                           uint64_t seed);

}  // namespace sd::eval
