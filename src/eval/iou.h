#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

namespace sd::eval {

// Intersection over union of two HxW masks (bool or 0/1 integers) of the same size; 1 when
// both are empty.
double mask_iou(const at::Tensor& a, const at::Tensor& b);

// IoUs counted in `bins` equal bins over [0, 1] (1.0 falls in the last).
struct Histogram {
  explicit Histogram(int bins = 10) : counts(bins, 0) {}
  void add(double iou);
  nlohmann::json to_json() const;  // {"edges": [0, 0.1, ..., 1], "counts": [...]}
  std::vector<int64_t> counts;
};

}  // namespace sd::eval
