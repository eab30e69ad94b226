#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/records.h"
#include "models/sam.h"
#include "models/transforms.h"

// Prompts made from an annotation, or from the image alone, for evaluation and fine-tuning,
// and the words that name their kinds.
namespace sd::data {

// The kinds, as written on the command line (`--prompts box,point,center,fgbg@100`):
//   box     the annotation's bbox, XYWH -> XYXY
//   point   its first point_coords entry
//   center  the mask pixel farthest from the mask's boundary
//   fgbg@D  a foreground point inside the mask and a background point outside it, D pixels apart
// and the kinds that need no annotation (images without masks: the student's mask is scored
// against the teacher's only):
//   grid@N    N x N points, one prompt each, placed as SAM's automatic mask generator places
//             them (build_point_grid: ((i + 0.5) / N x width, (j + 0.5) / N x height))
//   random@K  K points uniform over the image, drawn from (seed, image id)
// and, for evaluation only, whole mask sets:
//   everything[@N]  SAM's automatic mask generator (N points a side, default 32) on both
//                   models; each teacher mask is scored by the best-matching student mask
enum class PromptKind { box, point, center, fgbg, grid, random, everything };

struct PromptSpec {
  PromptKind kind = PromptKind::box;
  double distance = 0;  // fgbg only, pixels
  int count = 0;        // grid, everything: points per side (0: SAM's 32); random: points

  std::string name() const;  // as written on the command line: "box", "fgbg@100", ...
  // One point: SAM's practice is to pick among three masks (multimask output).
  bool single_point() const {
    return kind == PromptKind::point || kind == PromptKind::center || kind == PromptKind::grid ||
           kind == PromptKind::random;
  }
  // Made from an annotation's mask (box, point, center, fgbg), not from the image alone.
  bool needs_mask() const {
    return kind != PromptKind::grid && kind != PromptKind::random && kind != PromptKind::everything;
  }
};

// "box,point,center,fgbg@100"; sd::Error naming `where` (the flag or key), the entry that is
// not a kind, and the kinds.
std::vector<PromptSpec> parse_prompt_specs(const std::string& comma_list,
                                           const std::string& where = "--prompts");

// sd::Error naming `where` when a kind of `specs` needs masks and an image of `dataset` has
// none (a plain image folder), saying which kinds work there.
void check_prompts_fit(const std::vector<PromptSpec>& specs, const Dataset& dataset,
                       const std::string& where);

// The prompts of a kind that needs no annotation (grid, random) for an image of `size` (H, W),
// in original pixels: single foreground points, grid in row-major order (y, then x).
std::vector<models::Prompts> image_prompts(const PromptSpec& spec, models::Size2 size,
                                           uint64_t seed, const std::string& image_id);

// The prompt of `spec` for the annotation in original pixels (`mask`: its HxW uint8 0/1
// decoding), or nullopt when the annotation cannot give one (no point_coords, empty mask,
// fgbg placement failed).
std::optional<models::Prompts> make_prompt(const Annotation& annotation, const at::Tensor& mask,
                                           const PromptSpec& spec, uint64_t seed);

// The prompt of a one-tensor kind (box, point, center) in original pixels: a box as 4 floats
// (x0, y0, x1, y1) or a point as 1x2 (x, y). Pixel (col, row) of the mask is the point
// (col + 0.5, row + 0.5), as in SA-1B's point_coords. sd::Error when the mask is empty,
// point_coords is absent, or the kind is fgbg.
at::Tensor annotation_prompt(const Annotation& annotation, PromptKind kind);

// The same, moved into the frame of the image resized by ResizeLongestSide(1024), exactly as
// SAM's predictor does (apply_boxes / apply_coords).
at::Tensor annotation_prompt_1024(const Annotation& annotation, PromptKind kind,
                                  models::Size2 original_size);

// A pixel of the annotation's mask drawn from (seed, annotation id), as a 1x2 point (x, y).
// sd::Error when the mask is empty.
at::Tensor random_mask_point(const Annotation& annotation, uint64_t seed);

// fgbg placement, both from (seed, annotation id): the foreground point is random_mask_point;
// the background point lies at exactly `distance` from it in a seeded direction, inside the
// image, on a pixel outside the mask. nullopt when 64 directions all fail (the mask fills the
// circle, or the circle leaves the image).
struct PointPair {
  std::array<double, 2> fg, bg;  // (x, y)
};
std::optional<PointPair> fgbg_points(const Annotation& annotation, const at::Tensor& mask,
                                     double distance, uint64_t seed);

// (row, col) of the pixel of a 0/1 HxW uint8 mask farthest (Euclidean) from any pixel outside
// the mask, the image border counting as outside; ties go to the first in row-major order.
std::array<int64_t, 2> mask_centre(const at::Tensor& mask);

}  // namespace sd::data
