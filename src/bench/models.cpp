#include "bench/models.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <vector>

#include "models/autocast.h"
#include "models/image_encoder.h"
#include "models/predictor.h"
#include "models/tiny_vit.h"
#include "util/clock.h"
#include "util/memory.h"

namespace sd::bench {
using namespace models;
namespace {

// `run` must end with a value read back to the host, so that queued device work is timed.
double median_seconds(const std::function<void()>& run, int repeats) {
  run();  // warm-up
  std::vector<double> times;
  for (int i = 0; i < std::max(1, repeats); ++i) {
    auto start = std::chrono::steady_clock::now();
    run();
    times.push_back(seconds_since(start));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

// A figure's median seconds and its own peak resident set size (warm-up included).
void measure(nlohmann::json& figures, const std::string& key, const std::function<void()>& run,
             int repeats) {
  release_free_memory();
  reset_peak_rss();
  figures[key + "_s"] = median_seconds(run, repeats);
  figures[key + "_peak_rss_mb"] = peak_rss_mb();
}

int64_t numel(const c10::IValue& v) { return v.isTensor() ? v.toTensor().numel() : 0; }

// Multiply-adds x 2 of the matrix products and convolutions `run` dispatches (the count
// PyTorch's profiler gives them); element-wise work is not counted.
double count_gflop(const std::function<void()>& run) {
  static std::atomic<int64_t> flops{0};
  flops = 0;
  auto count = [](const at::RecordFunction& fn, at::ObserverContext*) {
    const char* name = fn.name();
    const auto& in = fn.inputs();
    const auto& out = fn.outputs();
    if (!std::strcmp(name, "sd::batched_matmul")) {  // models/batched_matmul.h: no outputs
      flops += 2 * numel(in[0]) * in[1].toTensor().size(-1);
      return;
    }
    if (!std::strcmp(name, "sd::window_attention")) {  // models/window_attention.h
      const at::Tensor& q = in[0].toTensor();          // B x heads x N x d: two N x N x d
      flops += 4 * q.numel() * q.size(2);
      return;
    }
    if (out.empty() || !out[0].isTensor()) return;
    const int64_t n_out = out[0].toTensor().numel();
    if (!std::strcmp(name, "aten::mm") || !std::strcmp(name, "aten::bmm"))
      flops += 2 * n_out * in[0].toTensor().size(-1);
    else if (!std::strcmp(name, "aten::addmm") || !std::strcmp(name, "aten::baddbmm"))
      flops += 2 * n_out * in[1].toTensor().size(-1);
    else if (!std::strcmp(name, "aten::convolution") && numel(in[1]) > 0) {
      const at::Tensor& w = in[1].toTensor();  // out x in/groups x kh x kw
      const bool transposed = in[6].toBool();
      flops += transposed ? 2 * numel(in[0]) * w.numel() / w.size(0) : 2 * n_out * w[0].numel();
    }
  };
  at::CallbackHandle handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback(nullptr, count).needsInputs(true).needsOutputs(true));
  run();
  at::removeCallback(handle);
  return double(flops) / 1e9;
}

// The machine's own matrix-multiply throughput at the threads in use: 2048^3 products.
double gemm_gflops(at::ScalarType dtype, int repeats) {
  const int64_t n = 2048;
  const at::Tensor a = at::randn({n, n}).to(dtype), b = at::randn({n, n}).to(dtype);
  double s = median_seconds([&] { at::mm(a, b)[0][0].item<float>(); }, repeats);
  return 2.0 * double(n * n * n) / s / 1e9;
}

// The figures' training step: MobileSAM's encoder under AdamW on a batch of 2 random images
// against a random target.
struct TrainingStep {
  std::shared_ptr<ImageEncoder> encoder;
  torch::optim::AdamW optimizer;
  const at::Tensor images = at::randn({2, 3, 1024, 1024}), target = at::randn({2, 256, 64, 64});

  explicit TrainingStep(std::shared_ptr<ImageEncoder> model)
      : encoder(std::move(model)),
        optimizer(encoder->parameters(), torch::optim::AdamWOptions(1e-3)) {
    encoder->train();
  }

  // Forward under `amp`, MSE in fp32, backward, AdamW; `after_forward` runs while the
  // autograd graph is alive.
  void run(Amp amp, const std::function<void()>& after_forward = {}) {
    optimizer.zero_grad();
    at::Tensor out;
    {
      AutocastScope autocast(amp, at::kCPU);
      out = encoder->forward(images);
    }
    at::Tensor loss = at::mse_loss(out.to(at::kFloat), target);
    if (after_forward) after_forward();
    loss.backward();
    optimizer.step();
    loss.item<float>();
  }
};

}  // namespace

nlohmann::json bench_decoder(Sam sam, int repeats) {
  sam->eval();
  SamPredictor predictor(sam);
  predictor.set_image_embedding(at::randn({1, 256, 64, 64}), {1200, 1800});
  Prompts prompts;
  prompts.box = at::tensor({300.0f, 200.0f, 1400.0f, 1000.0f});
  nlohmann::json figures;
  for (Amp amp : {Amp::off, Amp::bf16}) {
    const std::string key = amp == Amp::off ? "decoder_prompt" : "decoder_prompt_bf16";
    measure(
        figures, key,
        [&] {
          AutocastScope autocast(amp, sam->device());
          Prediction out = predictor.predict(prompts, /*multimask_output=*/false);
          out.iou_predictions.sum().item<float>();
        },
        std::max(repeats, 10));
  }
  return figures;
}

namespace {

// The breakdown of one training step of `training` (fp32), its first step already taken.
nlohmann::json train_memory(TrainingStep& training) {
  double weights = 0;
  for (const at::Tensor& p : training.encoder->parameters()) weights += double(p.nbytes());
  weights /= 1024.0 * 1024.0;
  const double batch =
      double(training.images.nbytes() + training.target.nbytes()) / (1024.0 * 1024.0);
  training.optimizer.zero_grad();
  release_free_memory();
  reset_peak_rss();
  const double before = heap_in_use_mb(), rss_before = rss_mb();
  double saved = 0;
  training.run(Amp::off, [&] { saved = heap_in_use_mb() - before; });
  const double peak = peak_rss_mb();
  return {{"weights_mb", weights},
          {"gradients_mb", weights},
          {"adamw_state_mb", 2 * weights},
          {"batch_and_target_mb", batch},
          {"activations_saved_mb", saved},
          {"backward_transient_mb", peak - rss_before - saved},
          {"allocator_retained_mb", rss_mb() - heap_in_use_mb()},
          {"peak_rss_mb", peak}};
}

TinyViT& as_tiny_vit(ImageEncoder& encoder) { return dynamic_cast<TinyViT&>(encoder); }

}  // namespace

nlohmann::json bench_train_memory() {
  TrainingStep training(make_image_encoder(encoder_preset("vit_t")));
  training.run(Amp::off);  // the first step allocates AdamW's state
  nlohmann::json figures{{"train_step_b2_memory", train_memory(training)}};
  as_tiny_vit(*training.encoder).recompute_stages(1);
  figures["train_step_b2_recompute_memory"] = train_memory(training);
  return figures;
}

nlohmann::json bench_infer(c10::Device device, Amp amp, const EncoderConfig& teacher,
                           int teacher_batch, int repeats) {
  auto forward = [&](ImageEncoder& encoder, int64_t batch) {
    encoder.eval();
    encoder.to(device);
    const at::Tensor images = at::randn({batch, 3, 1024, 1024}, at::TensorOptions(device));
    return [&encoder, images, amp, device] {
      torch::NoGradGuard no_grad;
      AutocastScope autocast(amp, device);
      encoder.forward(images).sum().item<float>();
    };
  };
  nlohmann::json figures;
  {
    auto vit_t = make_image_encoder(encoder_preset("vit_t"));
    figures["infer_encoder_b1_s"] = median_seconds(forward(*vit_t, 1), repeats);
  }
  auto big = make_image_encoder(teacher);
  figures["infer_teacher_img_per_s"] =
      teacher_batch / median_seconds(forward(*big, teacher_batch), repeats);
  figures["infer_setting"] = device.str() + ", amp " + std::string(word(amp)) + ", teacher " +
                             preset_name(teacher) + " at batch " + std::to_string(teacher_batch);
  return figures;
}

nlohmann::json bench_encoder(int repeats) {
  nlohmann::json figures;
  auto encoder = make_image_encoder(encoder_preset("vit_t"));
  const at::Tensor image = at::randn({1, 3, 1024, 1024});
  encoder->eval();
  auto infer = [&](Amp amp) {
    return [&, amp] {
      torch::NoGradGuard no_grad;
      AutocastScope autocast(amp, at::kCPU);
      encoder->forward(image).sum().item<float>();
    };
  };
  const double gflop = count_gflop(infer(Amp::off));
  {
    torch::NoGradGuard no_grad;
    const at::Tensor fp32 = encoder->forward(image);
    AutocastScope autocast(Amp::bf16, at::kCPU);
    const at::Tensor bf16 = encoder->forward(image).to(at::kFloat);
    figures["encoder_bf16_rel_l2"] = ((bf16 - fp32).norm() / fp32.norm()).item<double>();
  }
  measure(figures, "encoder_infer", infer(Amp::off), repeats);
  measure(figures, "encoder_infer_bf16", infer(Amp::bf16), repeats);

  TrainingStep training(encoder);
  measure(
      figures, "train_step_b2", [&] { training.run(Amp::off); }, repeats);
  measure(
      figures, "train_step_b2_bf16", [&] { training.run(Amp::bf16); }, repeats);
  // recompute_stages 1: the first stage run again in backward.
  as_tiny_vit(*encoder).recompute_stages(1);
  measure(
      figures, "train_step_b2_recompute", [&] { training.run(Amp::off); }, repeats);
  as_tiny_vit(*encoder).recompute_stages(0);

  const double fp32 = gemm_gflops(at::kFloat, repeats), bf16 = gemm_gflops(at::kBFloat16, repeats);
  // A training step at batch 2: forward, and a backward of about twice its products.
  const double step_gflop = 3 * 2 * gflop;
  const double s_fp32 = figures["encoder_infer_s"], s_bf16 = figures["encoder_infer_bf16_s"];
  const double t_fp32 = figures["train_step_b2_s"], t_bf16 = figures["train_step_b2_bf16_s"];
  const double t_recompute = figures["train_step_b2_recompute_s"];
  figures.update({{"encoder_gflop", gflop},
                  {"gemm_fp32_gflops", fp32},
                  {"gemm_bf16_gflops", bf16},
                  {"cpu_native_bf16", cpu_has_native_bf16()},
                  {"encoder_infer_of_limit", gflop / s_fp32 / fp32},
                  {"encoder_infer_bf16_of_limit", gflop / s_bf16 / bf16},
                  {"train_step_b2_of_limit", step_gflop / t_fp32 / fp32},
                  {"train_step_b2_bf16_of_limit", step_gflop / t_bf16 / bf16},
                  {"train_step_b2_recompute_of_limit", step_gflop / t_recompute / fp32},
                  {"threads", at::get_num_threads()}});
  return figures;
}

}  // namespace sd::bench
