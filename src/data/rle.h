#pragma once
#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// COCO run-length encoded masks, as in the COCO mask API (pycocotools' maskApi.c).
namespace sd::data {

// Alternating runs of 0 and 1 over the column-major (x outer, y inner) pixels of an
// height x width mask, starting with a run of zeros (possibly empty).
struct Rle {
  int height = 0;
  int width = 0;
  std::vector<uint32_t> counts;
};

// The compressed string form: each count (after the third, as the difference from the count
// two places before) in 5-bit groups, low first, 0x20 = more groups follow, 0x10 = sign of the
// last group, plus 48. A malformed string or counts that do not add up to height x width are
// sd::Errors; `where` (file, annotation) starts their message.
Rle rle_from_string(std::string_view s, int height, int width, const std::string& where);
std::string rle_to_string(const Rle& rle);

// The uncompressed form (`counts` as a list of integers), checked like the string form.
Rle rle_from_counts(const std::vector<int64_t>& counts, int height, int width,
                    const std::string& where);

// Throws unless the counts add up to height x width.
void rle_check(const Rle& rle, const std::string& where);

// Number of 1 pixels.
int64_t rle_area(const Rle& rle);
// Tightest box around the 1 pixels, XYWH in pixels (x, y of the first row/column, width,
// height); all zeros for an empty mask.
std::array<int, 4> rle_bbox(const Rle& rle);

// The mask as an HxW uint8 tensor of 0/1, row-major.
at::Tensor rle_decode(const Rle& rle);
// HxW tensor of any integer or bool dtype, nonzero = 1.
Rle rle_encode(const at::Tensor& mask);

// COCO polygon (x0 y0 x1 y1 ... in pixel coordinates) rasterised as pycocotools does.
Rle rle_from_polygon(const std::vector<double>& xy, int height, int width);
// Pixelwise union.
Rle rle_union(const std::vector<Rle>& parts, int height, int width);

}  // namespace sd::data
