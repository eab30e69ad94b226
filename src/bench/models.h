#pragma once
#include <nlohmann/json.hpp>

#include "models/autocast.h"
#include "models/sam.h"

// Timings of the model stages for the `bench` command: medians over `repeats` runs after
// one warm-up, on the model's device, with the current LibTorch thread count.
namespace sd::bench {

// {"decoder_prompt_s": seconds for one box prompt through the prompt encoder, the mask
// decoder and postprocess_masks to 1200x1800 (thresholded), on a random embedding,
// "decoder_prompt_bf16_s": the same under bf16 autocast, "decoder_parts_s": {prompt_encoder,
// transformer, upscaling_and_heads, postprocess_masks} of the fp32 figure}.
nlohmann::json bench_decoder(models::Sam sam, int repeats);

// The students' encoders (random weights) on the CPU. MobileSAM's vit_t: {"encoder_infer_s":
// one 1024x1024 image in eval mode, "train_step_b2_s": forward, MSE against a random target,
// backward and an AdamW step at batch 2 in train mode, the same in bf16 ("*_bf16_s") and with
// recompute_stages 1 ("train_step_b2_recompute_s"), "encoder_gflop"}; NanoSAM's resnet18 the
// same way in fp32: {"resnet18_infer_s", "resnet18_train_step_b2_s", "resnet18_gflop"}; each
// figure with its peak ("*_peak_rss_mb") and its fraction of the machine's limit
// ("*_of_limit"); "gemm_fp32_gflops", "gemm_bf16_gflops", "threads": the LibTorch thread count.
nlohmann::json bench_encoder(int repeats);

// The teacher's encoder (`teacher`, random weights) on the CPU, batch 1, 1024 x 1024, eval:
// {"teacher_infer_s", "teacher_infer_bf16_s" (each with its _peak_rss_mb), "teacher_gflop"
// (its products, counted as encoder_gflop), "teacher_infer_of_limit" and
// "teacher_infer_bf16_of_limit" (the fraction of the machine's fp32 / bf16 matrix-multiply
// throughput), "teacher_bf16_rel_l2" (the bf16 embedding's relative L2 distance to the fp32
// one), "teacher", "gemm_fp32_gflops", "gemm_bf16_gflops", "threads"}.
nlohmann::json bench_teacher(const models::EncoderConfig& teacher, int repeats);

// The encoders' forward (eval, no grad, random weights) on `device` under `amp`:
// {"infer_encoder_b1_s": vit_t on one 1024x1024 image, "infer_resnet18_b1_s": resnet18 on the
// same, "infer_teacher_img_per_s": `teacher`
// (as in `embed`) at batch `teacher_batch`, "infer_setting"}.
nlohmann::json bench_infer(c10::Device device, models::Amp amp,
                           const models::EncoderConfig& teacher, int teacher_batch, int repeats);

// Where a vit_t training step's memory goes (batch 2, fp32, MiB): {"train_step_b2_memory":
// {weights, gradients, adamw_state, batch_and_target, activations_saved (live heap the forward
// adds: what autograd keeps for backward), backward_transient (the peak above that), allocator_
// retained (resident but free), peak_rss}, "train_step_b2_recompute_memory": the same with
// recompute_stages 1}.
nlohmann::json bench_train_memory();

}  // namespace sd::bench
