#include "segment/mask_ops.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>

#include "util/error.h"

namespace sd::segment {

std::vector<int64_t> box_nms(const std::vector<Box>& boxes, const std::vector<float>& scores,
                             double thresh) {
  const size_t n = boxes.size();
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return scores[size_t(a)] > scores[size_t(b)]; });
  std::vector<float> area(n);
  for (size_t i = 0; i < n; ++i)
    area[i] = (float(boxes[i][2]) - float(boxes[i][0])) * (float(boxes[i][3]) - float(boxes[i][1]));
  std::vector<char> suppressed(n, 0);
  std::vector<int64_t> keep;
  for (size_t a = 0; a < n; ++a) {
    const size_t i = size_t(order[a]);
    if (suppressed[i]) continue;
    keep.push_back(int64_t(i));
    for (size_t b = a + 1; b < n; ++b) {
      const size_t j = size_t(order[b]);
      if (suppressed[j]) continue;
      const float xx1 = std::max(float(boxes[i][0]), float(boxes[j][0]));
      const float yy1 = std::max(float(boxes[i][1]), float(boxes[j][1]));
      const float xx2 = std::min(float(boxes[i][2]), float(boxes[j][2]));
      const float yy2 = std::min(float(boxes[i][3]), float(boxes[j][3]));
      const float w = std::max(0.0f, xx2 - xx1), h = std::max(0.0f, yy2 - yy1);
      const float inter = w * h;
      const float ovr = inter / (area[i] + area[j] - inter);
      if (ovr > thresh) suppressed[j] = 1;
    }
  }
  return keep;
}

std::vector<CropBox> generate_crop_boxes(int64_t height, int64_t width, int n_layers,
                                         double overlap_ratio) {
  std::vector<CropBox> crops{{{0, 0, width, height}, 0}};
  const int64_t short_side = std::min(height, width);
  auto crop_len = [](int64_t orig_len, int64_t n_crops, int64_t overlap) {
    return int64_t(std::ceil(double(overlap * (n_crops - 1) + orig_len) / double(n_crops)));
  };
  for (int layer = 0; layer < n_layers; ++layer) {
    const int64_t n = int64_t(1) << (layer + 1);
    const int64_t overlap = int64_t(overlap_ratio * double(short_side) * (2.0 / double(n)));
    const int64_t crop_w = crop_len(width, n, overlap), crop_h = crop_len(height, n, overlap);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) {
        const int64_t x0 = (crop_w - overlap) * i, y0 = (crop_h - overlap) * j;
        crops.push_back(
            {{x0, y0, std::min(x0 + crop_w, width), std::min(y0 + crop_h, height)}, layer + 1});
      }
  }
  return crops;
}

bool is_box_near_crop_edge(const Box& box, const Box& crop_box, const Box& orig_box) {
  const int64_t offset[4] = {crop_box[0], crop_box[1], crop_box[0], crop_box[1]};
  for (int k = 0; k < 4; ++k) {
    const float b = float(box[size_t(k)] + offset[k]);
    const bool near_crop = std::abs(b - float(crop_box[size_t(k)])) <= 20.0f;
    const bool near_image = std::abs(b - float(orig_box[size_t(k)])) <= 20.0f;
    if (near_crop && !near_image) return true;
  }
  return false;
}

namespace {

// Labels of the 8-connected components of the nonzero pixels, numbered from 1 in the order
// of their first pixel (row-major); 0 elsewhere. `sizes[l]` is label l's pixel count.
std::vector<int32_t> label_components(const std::vector<uint8_t>& on, int height, int width,
                                      std::vector<int64_t>& sizes) {
  std::vector<int32_t> labels(on.size(), 0);
  sizes.assign(1, 0);
  std::vector<int64_t> stack;
  for (int64_t start = 0; start < int64_t(on.size()); ++start) {
    if (!on[size_t(start)] || labels[size_t(start)]) continue;
    const int32_t label = int32_t(sizes.size());
    int64_t count = 0;
    labels[size_t(start)] = label;
    stack.push_back(start);
    while (!stack.empty()) {
      const int64_t p = stack.back();
      stack.pop_back();
      ++count;
      const int64_t y = p / width, x = p % width;
      for (int64_t dy = -1; dy <= 1; ++dy)
        for (int64_t dx = -1; dx <= 1; ++dx) {
          const int64_t ny = y + dy, nx = x + dx;
          if (ny < 0 || ny >= height || nx < 0 || nx >= width) continue;
          const size_t q = size_t(ny * width + nx);
          if (on[q] && !labels[q]) {
            labels[q] = label;
            stack.push_back(int64_t(q));
          }
        }
    }
    sizes.push_back(count);
  }
  return labels;
}

}  // namespace

bool remove_small_regions(std::vector<uint8_t>& mask, int height, int width, double area_thresh,
                          bool holes) {
  std::vector<uint8_t> working(mask.size());
  for (size_t i = 0; i < mask.size(); ++i) working[i] = uint8_t(holes ? !mask[i] : mask[i] != 0);
  std::vector<int64_t> sizes;
  const std::vector<int32_t> regions = label_components(working, height, width, sizes);
  std::vector<char> fill(sizes.size(), 0);  // SAM's fill_labels
  bool any_small = false;
  for (size_t l = 1; l < sizes.size(); ++l)
    if (double(sizes[l]) < area_thresh) fill[l] = any_small = true;
  if (!any_small) return false;
  if (holes) {
    fill[0] = 1;  // the mask itself, and the small holes
  } else {
    bool any = false;
    for (size_t l = 1; l < sizes.size(); ++l) any |= (fill[l] = !fill[l]);
    if (!any)  // every island is small: keep the largest (the first of equal ones)
      fill[size_t(std::max_element(sizes.begin() + 1, sizes.end()) - sizes.begin())] = 1;
  }
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = uint8_t(fill[size_t(regions[i])]);
  return true;
}

Box mask_to_box(const uint8_t* mask, int height, int width) {
  int64_t left = width, top = height, right = -1, bottom = -1;
  for (int y = 0; y < height; ++y) {
    const uint8_t* row = mask + int64_t(y) * width;
    int x0 = 0;
    while (x0 < width && !row[x0]) ++x0;
    if (x0 == width) continue;
    int x1 = width - 1;
    while (!row[x1]) --x1;
    top = std::min<int64_t>(top, y);
    bottom = y;
    left = std::min<int64_t>(left, x0);
    right = std::max<int64_t>(right, x1);
  }
  if (right < 0) return {0, 0, 0, 0};
  return {left, top, right, bottom};
}

data::Rle mask_to_rle(const uint8_t* mask, int height, int width, int64_t x0, int64_t y0,
                      int image_h, int image_w) {
  data::Rle rle{image_h, image_w, {}};
  uint8_t value = 0;
  uint32_t run = 0;
  auto add = [&](uint8_t v, uint32_t n) {
    if (n == 0) return;
    if (v != value) {
      rle.counts.push_back(run);
      run = 0;
      value = v;
    }
    run += n;
  };
  add(0, uint32_t(x0 * image_h));
  for (int x = 0; x < width; ++x) {
    add(0, uint32_t(y0));
    for (int y = 0; y < height; ++y) add(mask[int64_t(y) * width + x] != 0, 1);
    add(0, uint32_t(image_h - y0 - height));
  }
  add(0, uint32_t((image_w - x0 - width) * int64_t(image_h)));
  rle.counts.push_back(run);
  return rle;
}

double rle_iou(const data::Rle& a, const data::Rle& b) {
  if (a.height != b.height || a.width != b.width)
    throw Error("rle_iou: masks of " + std::to_string(a.height) + "x" + std::to_string(a.width) +
                " and " + std::to_string(b.height) + "x" + std::to_string(b.width) + " pixels");
  int64_t intersection = 0;
  size_t i = 0, j = 0;
  int64_t left_a = a.counts.empty() ? 0 : a.counts[0], left_b = b.counts.empty() ? 0 : b.counts[0];
  while (i < a.counts.size() && j < b.counts.size()) {
    const int64_t step = std::min(left_a, left_b);
    if (i % 2 == 1 && j % 2 == 1) intersection += step;  // odd runs are the mask's
    left_a -= step;
    left_b -= step;
    if (left_a == 0 && ++i < a.counts.size()) left_a = a.counts[i];
    if (left_b == 0 && ++j < b.counts.size()) left_b = b.counts[j];
  }
  const int64_t union_ = data::rle_area(a) + data::rle_area(b) - intersection;
  return union_ == 0 ? 1.0 : double(intersection) / double(union_);
}

}  // namespace sd::segment
