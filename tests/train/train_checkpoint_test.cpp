// A training checkpoint round-trips weights, optimiser, progress and every generator state.
#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/cuda.h>
#include <torch/nn/module.h>
#include <torch/optim/adamw.h>

#include <filesystem>

#include "common/fixtures.h"
#include "common/one_weight.h"
#include "io/checkpoint.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace sd::train {
namespace {

class TrainCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = testing::make_temp_dir("samdistill-ckpt"); }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& leaf) const { return dir_ + "/" + leaf; }

  // One AdamW step, so that the optimiser has state to save.
  void step() {
    model_.w.mutable_grad() = at::ones({3});
    optimizer_.step();
  }

  std::string dir_;
  testing::OneWeight model_{3};
  torch::optim::AdamW optimizer_{{model_.w}, torch::optim::AdamWOptions(0.1)};
};

size_t cuda_devices() { return at::hasCUDA() ? torch::cuda::device_count() : 0; }

// Without CUDA (as here) the checkpoint holds an empty list of CUDA states and resumes the
// CPU generator exactly; on a machine with CUDA each device's generator resumes exactly too.
TEST_F(TrainCheckpointTest, GeneratorStatesOfTheCpuAndEveryCudaDeviceRoundTrip) {
  step();
  TrainCheckpoint meta;
  meta.progress.step = 1;
  meta.config = {{"lr", 0.1}};
  meta.store_id = "store";
  save_train_checkpoint(path("step.pth"), model_, optimizer_, meta);

  const auto saved = io::read_torch_file(path("step.pth")).toGenericDict();
  EXPECT_EQ(saved.at("rng_cuda").toList().size(), cuda_devices());

  const at::Tensor cpu_draws = at::randn({4});
  std::vector<at::Tensor> cuda_draws;
  for (size_t i = 0; i < cuda_devices(); ++i)
    cuda_draws.push_back(
        at::randn({4}, at::TensorOptions().device(at::kCUDA, static_cast<c10::DeviceIndex>(i))));

  testing::OneWeight model{3};
  torch::optim::AdamW optimizer({model.w}, torch::optim::AdamWOptions(0.1));
  const TrainCheckpoint back = load_train_checkpoint(path("step.pth"), model, optimizer);
  EXPECT_EQ(back.progress.step, 1);
  EXPECT_EQ(back.config, meta.config);
  EXPECT_EQ(back.store_id, "store");
  EXPECT_TRUE(at::equal(model.w, model_.w));
  EXPECT_TRUE(at::equal(at::randn({4}), cpu_draws))
      << "the CPU generator resumes where it was saved";
  for (size_t i = 0; i < cuda_devices(); ++i)
    EXPECT_TRUE(at::equal(at::randn({4}, cuda_draws[i].options()), cuda_draws[i]))
        << "CUDA device " << i;
}

// Checkpoints written before CUDA states were saved still resume.
TEST_F(TrainCheckpointTest, ACheckpointWithoutCudaStatesLoads) {
  step();
  save_train_checkpoint(path("step.pth"), model_, optimizer_, TrainCheckpoint{});
  auto saved = io::read_torch_file(path("step.pth")).toGenericDict();
  ASSERT_EQ(saved.erase("rng_cuda"), 1u);
  io::write_torch_file(path("old.pth"), saved);
  const at::Tensor draws = at::randn({4});

  testing::OneWeight model{3};
  torch::optim::AdamW optimizer({model.w}, torch::optim::AdamWOptions(0.1));
  load_train_checkpoint(path("old.pth"), model, optimizer);
  EXPECT_TRUE(at::equal(model.w, model_.w));
  EXPECT_TRUE(at::equal(at::randn({4}), draws));
}

}  // namespace
}  // namespace sd::train
