#pragma once
#include <nlohmann/json.hpp>

#include "models/autocast.h"
#include "models/sam.h"

// Timings of the model stages for the `bench` command: medians over `repeats` runs after
// one warm-up, on the model's device, with the current LibTorch thread count.
namespace sd::bench {

// {"decoder_prompt_s": seconds for one box prompt through the prompt encoder, the mask
// decoder and postprocess_masks to 1200x1800 (thresholded), on a random embedding}.
nlohmann::json bench_decoder(models::Sam sam, int repeats);

// MobileSAM's encoder (vit_t, random weights) on the CPU: {"encoder_infer_s": one 1024x1024
// image in eval mode, "train_step_b2_s": forward, MSE against a random target, backward and
// an AdamW step at batch 2 in train mode, "peak_rss_mb": the process's peak so far,
// "threads": the LibTorch thread count}.
nlohmann::json bench_encoder(int repeats);

// The encoders' forward (eval, no grad, random weights) on `device` under `amp`:
// {"infer_encoder_b1_s": vit_t on one 1024x1024 image, "infer_teacher_img_per_s": `teacher`
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
