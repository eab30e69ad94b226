// `samdistill checkpoint`, run as a user runs it.
#include <ATen/ATen.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "io/checkpoint.h"
#include "io/train_checkpoint_file.h"
#include "util/atomic_file.h"

namespace {

using sd::testing::contains;
using sd::testing::ProgramRun;
using sd::testing::run_program;

class CheckpointCli : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = sd::testing::make_temp_dir("sd-cli-ckpt"); }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(CheckpointCli, JsonSummaryOfAnEncoderOnlyCheckpoint) {
  std::string file = dir_ + "/encoder.pth";
  sd::io::write_state_dict(file, {{"patch_embed.proj.weight", at::zeros({768, 3, 16, 16})},
                                  {"blocks.11.norm1.weight", at::zeros({768})},
                                  {"blocks.0.norm1.weight", at::zeros({768}, at::kHalf)}});
  ProgramRun run = run_program("checkpoint --json --keys " + file);
  ASSERT_EQ(run.status, 0) << run.output;
  auto s = nlohmann::json::parse(run.output);
  EXPECT_EQ(s["file"], file);
  EXPECT_EQ(s["keys"], 3);
  EXPECT_EQ(s["dtypes"]["float16"], 1);
  EXPECT_EQ(s["encoder"]["family"], "ViT");
  EXPECT_EQ(s["encoder"]["depth"], 2);
  EXPECT_EQ(s["encoder"]["preset"], "custom");  // vit_b has 12 blocks
  EXPECT_EQ(s["entries"][1][0], "blocks.11.norm1.weight");
}

// The keys TinyViT's sizes are read from, with vit_t's sizes (64/128/160/320, 2/2/6/2).
TEST_F(CheckpointCli, TableNamesThePreset) {
  sd::io::StateDict sd = {{"image_encoder.patch_embed.seq.0.c.weight", at::zeros({32, 3, 3, 3})}};
  const int64_t dims[] = {64, 128, 160, 320}, depths[] = {2, 2, 6, 2};
  for (int stage = 0; stage < 4; ++stage)
    for (int block = 0; block < depths[stage]; ++block) {
      std::string name =
          "image_encoder.layers." + std::to_string(stage) + ".blocks." + std::to_string(block);
      if (stage == 0)
        sd.emplace_back(name + ".conv1.c.weight", at::zeros({4 * dims[0], dims[0], 1, 1}));
      else
        sd.emplace_back(name + ".attn.norm.weight", at::zeros({dims[stage]}));
    }
  sd.emplace_back("mask_decoder.iou_token.weight", at::zeros({1, 256}));
  std::string file = dir_ + "/mobile_sam.pt";
  sd::io::write_state_dict(file, sd);
  ProgramRun run = run_program("checkpoint " + file);
  ASSERT_EQ(run.status, 0) << run.output;
  EXPECT_PRED2(
      contains, run.output,
      "TinyViT (embed_dims 64/128/160/320, depths 2/2/6/2): vit_t, under 'image_encoder.'");
  EXPECT_PRED2(contains, run.output, "mask_decoder");
}

// A training checkpoint: the model as for any checkpoint, and where the run stands (step,
// epoch, position), the optimiser state's size, the config and the command that resumes it.
TEST_F(CheckpointCli, TrainingCheckpointShowsProgressConfigAndResume) {
  const std::string run = dir_ + "/run";
  std::filesystem::create_directories(run + "/checkpoints");
  const std::string file = run + "/checkpoints/step-00000007.pth";
  sd::io::TrainCheckpointFile ckpt;
  ckpt.meta.progress.step = 7;
  ckpt.meta.progress.epoch = 1;
  ckpt.meta.progress.position = 4;
  ckpt.meta.progress.nonfinite_total = 2;
  ckpt.meta.config = {{"batch_size", 2}, {"lr", 0.002}, {"store", "/data/emb"}};
  ckpt.meta.store_id = "5eed";
  ckpt.model = {{"patch_embed.proj.weight", at::zeros({768, 3, 16, 16})}};
  ckpt.optimizer = at::zeros({1234}, at::kByte);
  ckpt.rng_cpu = at::zeros({8}, at::kByte);
  sd::io::write_train_checkpoint(file, ckpt);

  ProgramRun run_json = run_program("checkpoint --json " + file);
  ASSERT_EQ(run_json.status, 0) << run_json.output;
  const auto s = nlohmann::json::parse(run_json.output);
  EXPECT_EQ(s["keys"], 1);
  EXPECT_EQ(s["parameters"], 768 * 3 * 16 * 16);
  const std::string resume = "samdistill train --out " + run + " --resume " + file +
                             " (or --resume auto: the newest valid checkpoint of " + run + ")";
  EXPECT_EQ(s["training"], nlohmann::json({{"step", 7},
                                           {"epoch", 1},
                                           {"position", 4},
                                           {"optimizer_bytes", 1234},
                                           {"nonfinite_total", 2},
                                           {"store_id", "5eed"},
                                           {"config", ckpt.meta.config},
                                           {"run", run},
                                           {"resume", resume}}));

  ProgramRun table = run_program("checkpoint " + file);
  ASSERT_EQ(table.status, 0) << table.output;
  const std::string expected =
      "training    step 7, epoch 1, position 4 (images of the epoch done)\n"
      "optimiser   1234 bytes of state\n"
      "store       5eed\n"
      "config\n"
      "  batch_size             2\n"
      "  lr                     0.002\n"
      "  store                  /data/emb\n"
      "resume      " +
      resume + "\n";
  EXPECT_EQ(table.output.substr(table.output.find("training    ")), expected) << table.output;

  // A fine-tuning run's config has a "student": its own command resumes it.
  ckpt.meta.config["student"] = "runs/vit_t";
  sd::io::write_train_checkpoint(file, ckpt);
  ProgramRun finetune = run_program("checkpoint --json " + file);
  ASSERT_EQ(finetune.status, 0) << finetune.output;
  EXPECT_EQ(nlohmann::json::parse(finetune.output)["training"]["resume"],
            "samdistill finetune --out " + run + " --resume " + file +
                " (or --resume auto: the newest valid checkpoint of " + run + ")");
}

TEST_F(CheckpointCli, NonCheckpointFailsNamingTheFile) {
  std::string file = dir_ + "/notes.txt";
  sd::write_file_atomic(file, "not a checkpoint\n");
  ProgramRun run = run_program("checkpoint " + file);
  EXPECT_EQ(run.status, 1);
  EXPECT_PRED2(contains, run.output, file + ": not a readable torch.save zip file");
}

}  // namespace
