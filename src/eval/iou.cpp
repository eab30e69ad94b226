#include "eval/iou.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <sstream>

#include "util/error.h"

namespace sd::eval {

double mask_iou(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes()) {
    std::ostringstream msg;
    msg << "mask_iou: masks of different sizes " << a.sizes() << " and " << b.sizes();
    throw Error(msg.str());
  }
  at::Tensor x = a.ne(0), y = b.ne(0);
  const int64_t uni = at::logical_or(x, y).sum().item<int64_t>();
  if (uni == 0) return 1.0;
  return double(at::logical_and(x, y).sum().item<int64_t>()) / double(uni);
}

void Histogram::add(double iou) {
  const int bins = int(counts.size());
  counts[std::clamp(int(iou * bins), 0, bins - 1)] += 1;
}

nlohmann::json Histogram::to_json() const {
  std::vector<double> edges;
  for (size_t i = 0; i <= counts.size(); ++i) edges.push_back(double(i) / counts.size());
  return {{"edges", edges}, {"counts", counts}};
}

}  // namespace sd::eval
