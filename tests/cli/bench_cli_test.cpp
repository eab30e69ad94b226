// `samdistill bench`: every figure #14 tracks is in the JSON, each with its own peak memory,
// and the program runs LibTorch's OpenMP threads with a short spin unless told otherwise.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/fixtures.h"
#include "util/cpu.h"

namespace sd::testing {
namespace {

nlohmann::json bench_json(const std::string& parts) {
  ProgramRun run = run_program("--threads 2 bench --json --repeats 1 --only " + parts);
  EXPECT_EQ(run.status, 0) << run.output;
  return nlohmann::json::parse(run.output.substr(run.output.find("{\n")));
}

// Each figure `key`: its seconds, its own peak memory and its fraction of the machine's limit.
void expect_timed_against_the_limit(const nlohmann::json& f, const std::vector<std::string>& keys) {
  for (const std::string& key : keys) {
    EXPECT_GT(f.at(key + "_s").get<double>(), 0) << key;
    EXPECT_GT(f.at(key + "_peak_rss_mb").get<double>(), 100) << key;
    const double of_limit = f.at(key + "_of_limit");
    EXPECT_GT(of_limit, 0) << key;
    EXPECT_LT(of_limit, 1) << key;
  }
}

TEST(BenchCli, EncoderFiguresInFp32AndBf16WithTheirPeaksAndTheLimit) {
  unsetenv("GOMP_SPINCOUNT");  // the program sets it itself
  unsetenv("OMP_WAIT_POLICY");
  const nlohmann::json f = bench_json("encoder,memory");
  expect_timed_against_the_limit(f, {"encoder_infer", "encoder_infer_bf16", "train_step_b2",
                                     "train_step_b2_bf16", "train_step_b2_recompute"});
  // NanoSAM's resnet18 beside it, timed the same way.
  expect_timed_against_the_limit(f, {"resnet18_infer", "resnet18_train_step_b2"});
  // Python's count for NanoSAM's resnet18 at 1024 x 1024: forward hooks on the Conv2d and
  // ConvTranspose2d modules of make_resnet_fixtures.py's NanoSamResNet (2 x outputs x fan-in;
  // a transposed one 2 x inputs x its outputs per input) sum to 87.208 GFLOP.
  EXPECT_NEAR(f.at("resnet18_gflop").get<double>(), 87.208, 0.01);
  // PyTorch's profiler counts 77.6 GFLOP for MobileSAM's encoder at 1024 x 1024.
  EXPECT_NEAR(f.at("encoder_gflop").get<double>(), 77.6, 0.5);
  EXPECT_GT(f.at("gemm_fp32_gflops").get<double>(), 1);
  EXPECT_GT(f.at("gemm_bf16_gflops").get<double>(), 1);
  EXPECT_GT(f.at("encoder_bf16_rel_l2").get<double>(), 0);
  EXPECT_LT(f.at("encoder_bf16_rel_l2").get<double>(), 0.05);
  EXPECT_EQ(f.at("omp_wait"), "1000");
  const std::string allocator = program_allocator();
  if (allocator == "glibc") {
    EXPECT_EQ(f.at("malloc"), "libc.so.6");
  } else {
    EXPECT_EQ(f.at("malloc").get<std::string>().rfind("lib" + allocator + ".so", 0), 0u);
  }
  // jemalloc keeps freed pages for the next step (the program's malloc_conf), as glibc's heap
  // is kept by reuse_freed_memory(): handing them back costs a step 40-60% in page faults.
  if (allocator == "jemalloc") {
    EXPECT_EQ(f.at("malloc_settings"), "dirty_decay_ms:-1,muzzy_decay_ms:-1");
  }

  // The memory breakdown adds up to no more than the peak it explains.
  const nlohmann::json& m = f.at("train_step_b2_memory");
  double parts = 0;
  for (const char* key : {"weights_mb", "gradients_mb", "adamw_state_mb", "batch_and_target_mb",
                          "activations_saved_mb"}) {
    EXPECT_GT(m.at(key).get<double>(), 0) << key;
    parts += m.at(key).get<double>();
  }
  // MobileSAM's encoder: 6,065,532 fp32 parameters (Python's count of its image_encoder).
  EXPECT_NEAR(m.at("weights_mb").get<double>(), 6065532 * 4.0 / (1 << 20), 0.01);
  EXPECT_LT(parts, m.at("peak_rss_mb").get<double>());
  // Recomputing the first stage in backward keeps more than 1 GiB fewer activations (measured
  // 1488 MiB: its two MBConvs at 256 x 256 and the patch embedding) and lowers the peak.
  const nlohmann::json& r = f.at("train_step_b2_recompute_memory");
  EXPECT_LT(r.at("activations_saved_mb").get<double>(),
            m.at("activations_saved_mb").get<double>() - 1024);
  EXPECT_LT(r.at("peak_rss_mb").get<double>(), m.at("peak_rss_mb").get<double>());
}

// gpu_check.sh's encoder figures (on CUDA there), here on the CPU with a small teacher.
TEST(BenchCli, InferFiguresOnTheDeviceAndPrecisionAsked) {
  const nlohmann::json f =
      bench_json("infer --teacher vit_t --infer-batch 1 --infer-device cpu --infer-amp bf16");
  EXPECT_GT(f.at("infer_encoder_b1_s").get<double>(), 0);
  EXPECT_GT(f.at("infer_resnet18_b1_s").get<double>(), 0);
  EXPECT_GT(f.at("infer_teacher_img_per_s").get<double>(), 0);
  EXPECT_EQ(f.at("infer_setting"), "cpu, amp bf16, teacher vit_t at batch 1");
  ProgramRun fp16 = run_program("bench --json --only infer --infer-amp fp16");
  EXPECT_NE(fp16.status, 0);
  EXPECT_PRED2(contains, fp16.output, "amp 'fp16' needs a CUDA device (device is cpu)");
}

// SAM's image encoder as the teacher, here a small ViT of SAM's layout (embed 96, depth 4,
// 3 heads, windows of 14, global attention in blocks 1 and 3): both precisions against the
// machine's limit, and the products counted exactly.
TEST(BenchCli, TeacherFiguresInFp32AndBf16AgainstTheLimit) {
  const std::string config = make_temp_dir("bench_teacher") + "/vit.json";
  std::ofstream(config) << R"({"embed_dim": 96, "depth": 4, "num_heads": 3,
                               "global_attn_indexes": [1, 3], "window_size": 14})";
  const nlohmann::json f = bench_json("teacher --teacher " + config);
  expect_timed_against_the_limit(f, {"teacher_infer", "teacher_infer_bf16"});
  // Multiply-adds x 2 at 1024 x 1024: patch embedding 0.604, per windowed block 1.301 (qkv, proj
  // and MLP over the 64 x 64 tokens: Python projects the 70 x 70 padded grid, 0.089 more in qkv
  // and 0.015 in proj; attention in 25 windows of 196 tokens with its rel-pos terms, 0.026), per
  // global block 7.449 (attention over 4096 tokens, rel-pos terms 0.101), neck 5.033: 23.1375
  // GFLOP, whether the fused kernel or ATen's operations run.
  EXPECT_NEAR(f.at("teacher_gflop").get<double>(), 23.1375, 0.001);
  EXPECT_GT(f.at("teacher_bf16_rel_l2").get<double>(), 0);
  EXPECT_LT(f.at("teacher_bf16_rel_l2").get<double>(), 0.01);
}

// `embed` end to end with the same small teacher: the whole run's rate, its start-up, and the
// pipeline's rate against the teacher's own (the forward passes are part of the pipeline, so
// the ratio lies in (0, 1], 1 when reading and writing hide behind the teacher).
TEST(BenchCli, EmbedFiguresSetThePipelineAgainstTheTeachersOwnRate) {
  const std::string config = make_temp_dir("bench_embed") + "/vit.json";
  std::ofstream(config) << R"({"embed_dim": 96, "depth": 4, "num_heads": 3,
                               "global_attn_indexes": [1, 3], "window_size": 14})";
  const nlohmann::json f = bench_json("embed --teacher " + config + " --data " + data_sample());
  EXPECT_EQ(f.at("embed_teacher"), "custom");
  const double whole = f.at("embed_img_per_s"), pipeline = f.at("embed_pipeline_img_per_s");
  const double teacher = f.at("embed_teacher_img_per_s"), ratio = f.at("embed_of_teacher_rate");
  EXPECT_GT(f.at("embed_startup_s").get<double>(), 0);
  EXPECT_GT(whole, 0);
  EXPECT_GT(pipeline, whole);
  EXPECT_GE(teacher, pipeline);
  EXPECT_GT(ratio, 0);
  EXPECT_LE(ratio, 1);
  EXPECT_NEAR(ratio, pipeline / teacher, 1e-9);
}

// Every run also names the machine: its CPU model and the instruction sets the kernels use.
TEST(BenchCli, AUsersOpenMPSettingIsKeptAndTheCpuIsNamed) {
  setenv("GOMP_SPINCOUNT", "12345", 1);
  const nlohmann::json f = bench_json("decoder");
  unsetenv("GOMP_SPINCOUNT");
  EXPECT_EQ(f.at("omp_wait"), "12345");
  EXPECT_EQ(f.at("cpu"), cpu_info().model);
  EXPECT_NE(f.at("cpu"), "");
  EXPECT_EQ(f.at("isa").get<std::vector<std::string>>(), cpu_info().isa);
  for (const char* part :
       {"prompt_encoder", "transformer", "upscaling_and_heads", "postprocess_masks"})
    EXPECT_GT(f.at("decoder_parts_s").at(part).get<double>(), 0) << part;
  EXPECT_GT(f.at("decoder_first_prompt_s").get<double>(), 0);
}

}  // namespace
}  // namespace sd::testing
