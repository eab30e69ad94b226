#include "distill/loss.h"

#include <ATen/ATen.h>

namespace sd::distill {

// Losses are computed in float32 even when the forward ran in bf16/fp16 (autocast).
at::Tensor embedding_mse(const at::Tensor& student, const at::Tensor& teacher) {
  return at::mse_loss(student.to(at::kFloat), teacher.to(at::kFloat));
}

at::Tensor masked_embedding_mse(const at::Tensor& student, const at::Tensor& teacher,
                                const std::vector<models::Size2>& input_sizes, int64_t img_size) {
  const int64_t b = student.size(0), grid_h = student.size(2), grid_w = student.size(3);
  at::Tensor mask = at::zeros({b, 1, grid_h, grid_w}, student.options().dtype(at::kFloat));
  for (int64_t i = 0; i < b; ++i) {
    // Ceiling division: a partly covered cell counts.
    int64_t rows = (input_sizes[i][0] * grid_h + img_size - 1) / img_size;
    int64_t cols = (input_sizes[i][1] * grid_w + img_size - 1) / img_size;
    mask[i].narrow(1, 0, rows).narrow(2, 0, cols).fill_(1);
  }
  at::Tensor sq = (student.to(at::kFloat) - teacher.to(at::kFloat)).pow(2) * mask;
  return sq.sum() / (mask.sum() * student.size(1));
}

}  // namespace sd::distill
