#include "bench/segment.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>

#include "data/image.h"
#include "data/preprocess.h"
#include "models/autocast.h"
#include "models/config.h"
#include "models/sam_weights.h"
#include "segment/amg.h"
#include "segment/box_prompts.h"
#include "util/atomic_file.h"

namespace sd::bench {
using namespace segment;
namespace {

double seconds_of(const std::function<void()>& work) {
  const auto start = std::chrono::steady_clock::now();
  work();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// 100 boxes inside the image, from a seeded generator (as the Python side draws them).
std::vector<Detection> bench_boxes(int64_t height, int64_t width) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(0);
  const at::Tensor xy = at::rand({100, 2}, g) * at::tensor({width * 0.7, height * 0.7});
  const at::Tensor wh = at::rand({100, 2}, g) * at::tensor({width * 0.3, height * 0.3}) + 8;
  std::vector<Detection> boxes(100);
  for (int64_t i = 0; i < 100; ++i) {
    boxes[size_t(i)].has_box = true;
    boxes[size_t(i)].bbox = {xy[i][0].item<double>(), xy[i][1].item<double>(),
                             wh[i][0].item<double>(), wh[i][1].item<double>()};
  }
  return boxes;
}

}  // namespace

nlohmann::json bench_amg_params() {
  return {{"pred_iou_thresh", 0.12},
          {"stability_score_thresh", 0.19},
          {"stability_score_offset", 0.05}};
}

nlohmann::json bench_segment(const std::string& student, const std::string& image) {
  at::NoGradGuard no_grad;
  at::manual_seed(0);
  models::Sam sam = student.empty() ? models::build_sam(models::encoder_preset("vit_t"))
                                    : models::load_sam(student, "", "--segment-student");
  sam->eval();
  const std::string path = image.empty() ? "data/sample/sa_100001.jpg" : image;
  at::Tensor rgb = data::default_image_decoder()(read_file(path), path);
  if (image.empty()) rgb = data::resize_longest_side(rgb, 2250);
  AutomaticMaskGenerator generator(sam, amg_config_table().read(bench_amg_params(), "bench"));
  models::SamPredictor& predictor = generator.predictor();
  const models::Size2 size{rgb.size(0), rgb.size(1)};
  predictor.set_image(data::resize_longest_side(rgb), size);  // warm-up

  nlohmann::json figures;
  size_t masks = 0;
  figures["amg_image_s"] = seconds_of([&] { masks = generator.generate(rgb).size(); });
  figures["amg_masks"] = masks;
  figures["amg_image"] = {size[0], size[1]};
  figures["amg_image_bf16_s"] = seconds_of([&] {
    models::AutocastScope autocast(models::Amp::bf16, sam->device());
    generator.generate(rgb);
  });
  predictor.set_image(data::resize_longest_side(rgb), size);
  const std::vector<Detection> boxes = bench_boxes(size[0], size[1]);
  figures["segment_boxes_per_s"] = double(boxes.size()) / seconds_of([&] {
                                     segment_prompts(predictor, boxes, 100, false, 1.0);
                                   });
  return figures;
}

}  // namespace sd::bench
