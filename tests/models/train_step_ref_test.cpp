// One decoupled-distillation step against train_step.pth (fixtures README): the TinyViT
// folder's encoder in train mode learns the ViT folder's encoder (eval mode) on the batch
// [TinyViT folder's image, ViT folder's image] with an MSE loss and one AdamW step.
#include <ATen/ATen.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <cmath>
#include <iostream>
#include <map>

#include "models/encoder_testing.h"

namespace sd::models {
namespace {

using namespace sd::testing;
using encoder_testing::relative_error;

struct Step {
  double loss = 0, loss_after_eval_mode = 0;
  at::Tensor student_out;
  std::map<std::string, at::Tensor> grads;  // undefined when the forward pass never used it
  std::map<std::string, at::Tensor> after;  // floating state-dict entries after the step
};

Step train_step(const ModelFolder& student_folder, const at::Tensor& images,
                const at::Tensor& target, at::ScalarType dtype) {
  auto student = encoder_testing::load_encoder(student_folder);
  if (dtype != at::kFloat) student->to(dtype);  // every buffer too: num_batches_tracked, unused
  student->train();
  torch::optim::AdamW optimizer(
      student->parameters(),
      torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.01));
  Step step;
  step.student_out = student->forward(images);
  at::Tensor loss = at::mse_loss(step.student_out, target);
  loss.backward();
  step.loss = loss.item<double>();
  for (const auto& p : student->named_parameters()) step.grads[p.key()] = p.value().grad();
  optimizer.step();
  for (const auto& [key, value] : io::state_dict(*student))
    if (value.is_floating_point()) step.after[key] = value.detach().clone();
  student->eval();
  torch::NoGradGuard no_grad;
  step.loss_after_eval_mode = at::mse_loss(student->forward(images), target).item<double>();
  return step;
}

double sum_of(const at::Tensor& t) { return t.to(at::kDouble).sum().item<double>(); }

// The README's tolerance, or, for an entry that fp32 does not determine that closely (its
// rounding spread exceeds the tolerance; see below), the tolerance plus that spread.
double allowance(const std::string& what, double tolerance, double spread) {
  if (spread <= tolerance) return tolerance;
  std::cout << what << ": rounding spread " << spread << " exceeds the tolerance " << tolerance
            << "\n";
  return tolerance + spread;
}

TEST(TrainStepRef, OneAdamWStepOfTheStudentMatchesPython) {
  SD_REQUIRE_FIXTURES();
  auto student_folder = first_folder(/*tiny_vit=*/true), teacher_folder = first_folder(false);
  if (!student_folder || !teacher_folder)  // e.g. the accelerator check carries the ViT folder only
    GTEST_SKIP() << "train_step.pth needs a TinyViT and a ViT model folder under "
                 << fixtures_root();
  auto ref = load_tensors(fixtures_root() + "/train_step.pth");

  at::Tensor a = encoder_testing::encoder_input(*student_folder);
  at::Tensor b = encoder_testing::encoder_input(*teacher_folder);
  auto teacher = encoder_testing::load_encoder(*teacher_folder);
  at::Tensor target;
  {
    torch::NoGradGuard no_grad;
    target = teacher->forward(at::cat({a, b}));
  }
  Step step = train_step(*student_folder, at::cat({a, b}), target, at::kFloat);
  // Some entries are not determined by fp32 arithmetic to the README's tolerance: a bias
  // right before a train-mode BatchNorm has a zero gradient in exact arithmetic (the batch
  // mean removes any constant shift), so its gradient is rounding noise, and AdamW's first
  // update lr * g / (|g| + eps) turns noise-level gradient entries into steps of up to lr.
  // The same step in float64 measures the fp32 rounding spread per entry: the norm of the
  // gradients' difference, the sum of the after-step differences in absolute value. A port
  // error moves both steps alike and is not in the spread; where the spread exceeds the
  // tolerance, fp32 (the reference's too) cannot decide the entry that closely. On these
  // fixtures the float64 step lands further from the reference than ours in some after-step
  // sums (layers.0.blocks.0.conv3.c.weight: 3.6e-5 vs 2.0e-5, tolerance 1e-5).
  Step exact = train_step(*student_folder, at::cat({a, b}).to(at::kDouble), target.to(at::kDouble),
                          at::kDouble);

  EXPECT_NEAR(step.loss, ref.at("loss").item<double>(), 1e-4 * ref.at("loss").item<double>());
  EXPECT_LE(relative_error(step.student_out.detach(), ref.at("student_out")), 1e-4);
  double ref_eval = ref.at("loss_after_eval_mode").item<double>();
  EXPECT_NEAR(step.loss_after_eval_mode, ref_eval, 1e-4 * ref_eval);

  size_t checked = 0;  // entries of train_step.pth compared
  for (const auto& [key, grad] : step.grads) {
    double r = ref.at("grad_norm." + key).item<double>();
    if (r == -1) {  // unused by the forward pass: no gradient, so AdamW leaves it alone
      EXPECT_FALSE(grad.defined() && grad.abs().max().item<double>() > 0) << key;
      ++checked;
      continue;
    }
    ASSERT_TRUE(grad.defined()) << key;
    double spread = (grad.to(at::kDouble) - exact.grads.at(key)).norm().item<double>();
    EXPECT_NEAR(grad.norm().item<double>(), r,
                allowance("gradient norm of " + key, 1e-3 * r, spread))
        << "gradient norm of " << key;
    ++checked;
  }
  for (const auto& [key, value] : step.after) {
    double r = ref.at("after." + key).item<double>();
    double spread = sum_of((value.to(at::kDouble) - exact.after.at(key)).abs());
    double tolerance = std::max(1e-5, 1e-4 * std::abs(r));
    EXPECT_NEAR(sum_of(value), r, allowance("sum of " + key + " after the step", tolerance, spread))
        << "sum of " << key << " after the step";
    ++checked;
  }
  size_t reference_entries = 0;
  for (const auto& [key, value] : ref)
    if (key.rfind("grad_norm.", 0) == 0 || key.rfind("after.", 0) == 0) ++reference_entries;
  EXPECT_EQ(checked, reference_entries) << "entries of train_step.pth not compared";
}

}  // namespace
}  // namespace sd::models
