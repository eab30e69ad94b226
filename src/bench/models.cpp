#include "bench/models.h"

#include <ATen/ATen.h>
#include <ATen/record_function.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <limits>
#include <tuple>
#include <vector>

#include "kernels/onednn_linear.h"
#include "models/autocast.h"
#include "models/bf16_products.h"
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
  return median(std::move(times));
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
    if (!std::strcmp(name, "sd::batched_matmul")) {  // kernels/batched_matmul.h: no outputs
      const at::Tensor &a = in[0].toTensor(), &b = in[1].toTensor();  // a batch of 1 broadcasts
      flops += 2 * std::max(a.size(0), b.size(0)) * a.size(1) * a.size(2) * a.size(3) * b.size(3);
      return;
    }
    if (!std::strcmp(name, "sd::linear")) {  // kernels/onednn_linear.h: x [..., K], weight [N, K]
      flops += 2 * numel(in[0]) * in[1].toTensor().size(0);
      return;
    }
    if (!std::strcmp(name, "sd::window_attention")) {  // models/window_attention.h
      const at::Tensor& q = in[0].toTensor();          // B x heads x N x d: two N x N x d
      flops += 4 * q.numel() * q.size(2);
      if (in.size() == 5)  // each query against the h keys of its Rh row and the w of its Rw row
        flops += 2 * q.numel() * (in[3].toTensor().size(1) + in[4].toTensor().size(1));
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

// The machine's own matrix-multiply throughput at the threads in use: the fastest of two
// products, 2048^3 and a transformer MLP's 4096 x 768 by 768 x 3072 (oneDNN's bf16 kernels run
// the second about 1.4x faster on AMX, so a model's own layers outran the square product), by
// LibTorch's mm and by the models' own inference Linear (kernels/onednn_linear.h: its weights
// laid out once), each the fastest of at least 5 runs after a warm-up (a limit: other work on a
// shared machine only slows a run, and a median of few runs then puts the limit below what a
// model reaches).
double gemm_gflops(at::ScalarType dtype, int repeats) {
  double best = 0;
  // Where autocast's bf16 products run as fp32 products (models/bf16_products.h), LibTorch's own
  // bf16 product is not what a model's costs: an fp32 one is.
  const at::ScalarType operands =
      dtype == at::kBFloat16 && bf16_products_in_fp32() ? at::kFloat : dtype;
  for (const auto& [m, k, n] : {std::array<int64_t, 3>{2048, 2048, 2048}, {4096, 768, 3072}}) {
    const at::Tensor a = at::randn({m, k}).to(operands), b = at::randn({k, n}).to(operands);
    const at::Tensor x = at::randn({m, k}), weight = at::randn({n, k});
    kernels::OnednnLinear linear;
    for (bool ours : {false, true}) {
      auto run = [&] {
        at::Tensor y = ours ? linear(x, weight, {}, dtype, kernels::Epilogue::none) : at::mm(a, b);
        if (y.defined()) y[0][0].item<float>();
        return y.defined();
      };
      if (!run()) continue;  // a build or CPU without oneDNN's product of this type
      double s = std::numeric_limits<double>::infinity();
      for (int i = 0; i < std::max(5, repeats); ++i) {
        const auto start = std::chrono::steady_clock::now();
        run();
        s = std::min(s, seconds_since(start));
      }
      best = std::max(best, 2.0 * double(m * k * n) / s / 1e9);
    }
  }
  return best;
}

// The figures' work (GFLOP) by key and precision, to be set against the machine's limit once
// all of them ran: KEY_of_limit.
struct Work {
  std::vector<std::tuple<std::string, double, Amp>> figures;
  void add(const std::string& key, double gflop, Amp amp) { figures.emplace_back(key, gflop, amp); }
};

// KEY_of_limit for each figure of `work`, and gemm_fp32_gflops / gemm_bf16_gflops: the limit
// measured before the figures (`fp32`, `bf16`) and again after them, the faster kept (other work
// on a shared machine during one measurement would put it below what the models reach).
void against_the_limit(nlohmann::json& figures, const Work& work, double fp32, double bf16,
                       int repeats) {
  fp32 = std::max(fp32, gemm_gflops(at::kFloat, repeats));
  bf16 = std::max(bf16, gemm_gflops(at::kBFloat16, repeats));
  figures["gemm_fp32_gflops"] = fp32;
  figures["gemm_bf16_gflops"] = bf16;
  for (const auto& [key, gflop, amp] : work.figures)
    figures[key + "_of_limit"] =
        gflop / figures[key + "_s"].get<double>() / (amp == Amp::off ? fp32 : bf16);
}

// The figures' training step: MobileSAM's encoder under AdamW on a batch of 2 random images
// against a random target.
struct TrainingStep {
  std::shared_ptr<ImageEncoder> encoder;
  torch::optim::AdamW optimizer;
  const at::Tensor images = at::randn({2, 3, 1024, 1024}), target = at::randn({2, 256, 64, 64});

  explicit TrainingStep(std::shared_ptr<ImageEncoder> model)
      : encoder(std::move(model)),
        optimizer(encoder->parameters(), torch::optim::AdamWOptions(1e-3)) {}

  // Forward under `amp` in train mode, MSE in fp32, backward, AdamW; `after_forward` runs
  // while the autograd graph is alive.
  void run(Amp amp, const std::function<void()>& after_forward = {}) {
    encoder->train();
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
  const Size2 original{1200, 1800};
  const at::Tensor image_embedding = at::randn({1, 256, 64, 64});
  predictor.set_image_embedding(image_embedding, original);
  Prompts prompts;
  prompts.box = at::tensor({300.0f, 200.0f, 1400.0f, 1000.0f});
  nlohmann::json figures;
  repeats = std::max(repeats, 10);
  for (Amp amp : {Amp::off, Amp::bf16}) {
    const std::string key = amp == Amp::off ? "decoder_prompt" : "decoder_prompt_bf16";
    measure(
        figures, key,
        [&] {
          AutocastScope autocast(amp, sam->device());
          Prediction out = predictor.predict(prompts, /*multimask_output=*/false);
          out.iou_predictions.sum().item<float>();
        },
        repeats);
  }
  // A new image's first prompt also makes the decoder's work on the image that its later prompts
  // share (SamPredictor::decode), which the figures above keep.
  measure(
      figures, "decoder_first_prompt",
      [&] {
        predictor.set_image_embedding(image_embedding, original);
        predictor.predict(prompts, /*multimask_output=*/false).iou_predictions.sum().item<float>();
      },
      repeats);
  // Its parts in fp32, as SamPredictor.predict runs them: the prompt encoder, the mask
  // decoder's two-way transformer, the rest of the mask decoder (output upscaling, the
  // hypernetwork MLPs and their product with the upscaled image, the IoU head: the decoder's
  // time less the transformer's) and postprocess_masks with its threshold.
  at::NoGradGuard no_grad;
  const Prompts batched =
      to_input_frame(prompts, ResizeLongestSide(sam->img_size()), original, sam->device());
  const at::Tensor& embedding = predictor.get_image_embedding();
  auto encode_prompt = [&] {
    return sam->prompt_encoder->forward(batched.point_coords, batched.point_labels, batched.box,
                                        batched.mask_input);
  };
  const auto [sparse, dense] = encode_prompt();
  const at::Tensor pe = sam->prompt_encoder->get_dense_pe();
  MaskDecoderImpl& decoder = *sam->mask_decoder;
  const at::Tensor tokens =
      at::cat({decoder.iou_token->weight, decoder.mask_tokens->weight}, 0).unsqueeze(0);
  const double prompt = median_seconds(
      [&] {
        encode_prompt().first.sum().item<float>();
        sam->prompt_encoder->get_dense_pe().sum().item<float>();
      },
      repeats);
  const double transformer = median_seconds(
      [&] {
        decoder.transformer->forward(embedding + dense, pe, at::cat({tokens, sparse}, 1))
            .first.sum()
            .item<float>();
      },
      repeats);
  // The rest of the decoder timed on its own (a difference of two noisy figures can come out
  // negative): the single-mask request's heads on the transformer's outputs.
  const auto [hs, image] =
      decoder.transformer->forward(embedding + dense, pe, at::cat({tokens, sparse}, 1));
  const double heads = median_seconds(
      [&] {
        decoder.output_heads(hs, image, embedding.size(2), embedding.size(3), 0, 1)
            .masks.sum()
            .item<float>();
      },
      repeats);
  const DecoderOutput decoded = decoder.forward(embedding, pe, sparse, dense, false);
  const Size2 input =
      ResizeLongestSide::get_preprocess_shape(original[0], original[1], sam->img_size());
  const double postprocess = median_seconds(
      [&] {
        (sam->postprocess_masks(decoded.masks, input, original) > SamImpl::mask_threshold)
            .any()
            .item<bool>();
      },
      repeats);
  figures["decoder_parts_s"] = {{"prompt_encoder", prompt},
                                {"transformer", transformer},
                                {"upscaling_and_heads", heads},
                                {"postprocess_masks", postprocess}};
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
  for (const auto& [preset, key] :
       {std::pair{"vit_t", "infer_encoder_b1_s"}, std::pair{"resnet18", "infer_resnet18_b1_s"}}) {
    auto student = make_image_encoder(encoder_preset(preset));
    figures[key] = median_seconds(forward(*student, 1), repeats);
  }
  auto big = make_image_encoder(teacher);
  figures["infer_teacher_img_per_s"] =
      teacher_batch / median_seconds(forward(*big, teacher_batch), repeats);
  figures["infer_setting"] = device.str() + ", amp " + std::string(word(amp)) + ", teacher " +
                             preset_name(teacher) + " at batch " + std::to_string(teacher_batch);
  return figures;
}

namespace {

// A CPU inference of `encoder` (eval mode) on `image` under `amp`, for median_seconds.
std::function<void()> cpu_inference(ImageEncoder& encoder, const at::Tensor& image, Amp amp) {
  encoder.eval();
  return [&encoder, image, amp] {
    torch::NoGradGuard no_grad;
    AutocastScope autocast(amp, at::kCPU);
    encoder.forward(image).sum().item<float>();
  };
}

// How far `encoder`'s bf16 embedding of `image` lies from its fp32 one (eval): relative L2.
double bf16_relative_l2(ImageEncoder& encoder, const at::Tensor& image) {
  encoder.eval();
  torch::NoGradGuard no_grad;
  const at::Tensor fp32 = encoder.forward(image);
  AutocastScope autocast(Amp::bf16, at::kCPU);
  const at::Tensor bf16 = encoder.forward(image).to(at::kFloat);
  return ((bf16 - fp32).norm() / fp32.norm()).item<double>();
}

}  // namespace

nlohmann::json bench_teacher(const EncoderConfig& teacher, int repeats) {
  nlohmann::json figures;
  auto encoder = make_image_encoder(teacher);
  const at::Tensor image = at::randn({1, 3, 1024, 1024});
  const double gflop = count_gflop(cpu_inference(*encoder, image, Amp::off));
  const double fp32 = gemm_gflops(at::kFloat, repeats), bf16 = gemm_gflops(at::kBFloat16, repeats);
  // fp32 first: bf16's run keeps its Linears' bf16 weights (kernels/onednn_linear.h), which
  // fp32's peak would otherwise count.
  measure(figures, "teacher_infer", cpu_inference(*encoder, image, Amp::off), repeats);
  measure(figures, "teacher_infer_bf16", cpu_inference(*encoder, image, Amp::bf16), repeats);
  figures["teacher_bf16_rel_l2"] = bf16_relative_l2(*encoder, image);
  Work work;
  work.add("teacher_infer", gflop, Amp::off);
  work.add("teacher_infer_bf16", gflop, Amp::bf16);
  against_the_limit(figures, work, fp32, bf16, repeats);
  figures.update({{"teacher", preset_name(teacher)},
                  {"teacher_gflop", gflop},
                  {"threads", at::get_num_threads()}});
  return figures;
}

namespace {

// A student's inference of `image` in fp32: the products (KEY_gflop, given as `gflop_key`), its
// median seconds and peak (KEY_s, KEY_peak_rss_mb). Returns the products.
double infer_figures(nlohmann::json& figures, Work& work, ImageEncoder& encoder,
                     const at::Tensor& image, const std::string& gflop_key, const std::string& key,
                     int repeats) {
  auto infer = cpu_inference(encoder, image, Amp::off);
  const double gflop = count_gflop(infer);
  measure(figures, key, infer, repeats);
  figures[gflop_key] = gflop;
  work.add(key, gflop, Amp::off);
  return gflop;
}

// A training step at batch 2 in `amp` of a student whose inference does `gflop` (a backward
// of about twice its products): KEY_s, KEY_peak_rss_mb.
void train_figures(nlohmann::json& figures, Work& work, TrainingStep& training, Amp amp,
                   const std::string& key, double gflop, int repeats) {
  measure(
      figures, key, [&] { training.run(amp); }, repeats);
  work.add(key, 3 * 2 * gflop, amp);
}

// MobileSAM's vit_t, in fp32 and bf16, and with recompute_stages 1.
void vit_t_figures(nlohmann::json& figures, Work& work, const at::Tensor& image, int repeats) {
  auto encoder = make_image_encoder(encoder_preset("vit_t"));
  const double gflop =
      infer_figures(figures, work, *encoder, image, "encoder_gflop", "encoder_infer", repeats);
  figures["encoder_bf16_rel_l2"] = bf16_relative_l2(*encoder, image);
  measure(figures, "encoder_infer_bf16", cpu_inference(*encoder, image, Amp::bf16), repeats);
  work.add("encoder_infer_bf16", gflop, Amp::bf16);

  TrainingStep training(encoder);
  train_figures(figures, work, training, Amp::off, "train_step_b2", gflop, repeats);
  train_figures(figures, work, training, Amp::bf16, "train_step_b2_bf16", gflop, repeats);
  // recompute_stages 1: the first stage run again in backward.
  as_tiny_vit(*encoder).recompute_stages(1);
  train_figures(figures, work, training, Amp::off, "train_step_b2_recompute", gflop, repeats);
  as_tiny_vit(*encoder).recompute_stages(0);
}

// A student `preset` beside vit_t, in fp32: PRESET_gflop, PRESET_infer_* and
// PRESET_train_step_b2_*.
void student_figures(nlohmann::json& figures, Work& work, const std::string& preset,
                     const at::Tensor& image, int repeats) {
  auto encoder = make_image_encoder(encoder_preset(preset));
  const double gflop =
      infer_figures(figures, work, *encoder, image, preset + "_gflop", preset + "_infer", repeats);
  TrainingStep training(encoder);
  train_figures(figures, work, training, Amp::off, preset + "_train_step_b2", gflop, repeats);
}

}  // namespace

nlohmann::json bench_encoder(int repeats) {
  const double fp32 = gemm_gflops(at::kFloat, repeats), bf16 = gemm_gflops(at::kBFloat16, repeats);
  const at::Tensor image = at::randn({1, 3, 1024, 1024});
  nlohmann::json figures{{"cpu_native_bf16", cpu_has_native_bf16()},
                         {"threads", at::get_num_threads()}};
  Work work;
  vit_t_figures(figures, work, image, repeats);
  student_figures(figures, work, "resnet18", image, repeats);
  against_the_limit(figures, work, fp32, bf16, repeats);
  return figures;
}

}  // namespace sd::bench
