#include "distill/loss.h"

#include <ATen/ATen.h>

namespace sd::distill {
namespace {

using train::EmbeddingLoss;

// The loss of each element, or their mean (`reduction`), in float32 even when the forward ran
// in bf16/fp16 (autocast).
at::Tensor elementwise(const at::Tensor& student, const at::Tensor& teacher, EmbeddingLoss kind,
                       at::Reduction::Reduction reduction) {
  const at::Tensor s = student.to(at::kFloat), t = teacher.to(at::kFloat);
  switch (kind) {
    case EmbeddingLoss::huber:
      return at::huber_loss(s, t, reduction, /*delta=*/1.0);
    case EmbeddingLoss::l1:
      return at::l1_loss(s, t, reduction);
    case EmbeddingLoss::mse:
      break;
  }
  return at::mse_loss(s, t, reduction);
}

}  // namespace

at::Tensor embedding_loss(const at::Tensor& student, const at::Tensor& teacher,
                          EmbeddingLoss kind) {
  return elementwise(student, teacher, kind, at::Reduction::Mean);
}

at::Tensor masked_embedding_loss(const at::Tensor& student, const at::Tensor& teacher,
                                 const std::vector<models::Size2>& input_sizes, EmbeddingLoss kind,
                                 int64_t img_size) {
  const int64_t b = student.size(0), grid_h = student.size(2), grid_w = student.size(3);
  at::Tensor mask = at::zeros({b, 1, grid_h, grid_w}, student.options().dtype(at::kFloat));
  for (int64_t i = 0; i < b; ++i) {
    // Ceiling division: a partly covered cell counts.
    int64_t rows = (input_sizes[i][0] * grid_h + img_size - 1) / img_size;
    int64_t cols = (input_sizes[i][1] * grid_w + img_size - 1) / img_size;
    mask[i].narrow(1, 0, rows).narrow(2, 0, cols).fill_(1);
  }
  at::Tensor each = elementwise(student, teacher, kind, at::Reduction::None) * mask;
  return each.sum() / (mask.sum() * student.size(1));
}

}  // namespace sd::distill
