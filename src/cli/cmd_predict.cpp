#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <iostream>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "data/image.h"
#include "data/preprocess.h"
#include "eval/picture.h"
#include "io/checkpoint.h"
#include "io/state_dict.h"
#include "io/weights.h"
#include "models/predictor.h"
#include "models/sam.h"
#include "models/sam_weights.h"
#include "util/atomic_file.h"
#include "util/device.h"
#include "util/error.h"

namespace sd::cli {
namespace {

struct PredictArgs {
  std::string checkpoint, model, decoder_from, image, box, out, overlay;
  std::vector<std::string> points;
  bool multimask = false;
  DeviceChoice device = DeviceChoice::automatic;
  models::Amp amp = models::Amp::off;
};

using io::any_value;
using io::field;

// predict's options, each once.
const io::ConfigTable<PredictArgs>& predict_table() {
  using P = PredictArgs;
  static const io::ConfigTable<P> table = io::agreeing(io::ConfigTable<P>({
      field("student", &P::checkpoint, "", any_value(),
            "Full SAM checkpoint (e.g. mobile_sam.pt from export), or a run folder with one"),
      field("student_model", &P::model, "", any_value(),
            "Its image encoder: preset or JSON config (default: what the weights hold)"),
      field("decoder_from", &P::decoder_from, "", any_value(),
            "Full SAM checkpoint whose prompt encoder and mask decoder to use (default: "
            "--student's own; needed for a train run's weights, an encoder alone)"),
      field("image", &P::image, "", any_value(), "Image file (JPEG, PNG)"),
      field("point", &P::points, {}, any_value(),
            "x,y[,label] in image pixels; label 1 foreground (default), 0 background; "
            "repeatable"),
      field("box", &P::box, "", any_value(), "x0,y0,x1,y1 in image pixels"),
      field("multimask", &P::multimask, false, any_value(),
            "Three masks (mask.png, mask_1.png, mask_2.png) instead of one"),
      field("out", &P::out, "", any_value(), "Mask PNG (white = mask)"),
      field("overlay", &P::overlay, "", any_value(),
            "Also write the image with the best mask and the prompts drawn"),
      device_field(&P::device),
      amp_field(&P::amp),
  }));
  return table;
}

// "a,b,c[,d]" -> numbers; sd::Error naming the flag and the text otherwise.
std::vector<float> numbers(const std::string& text, const std::string& flag, size_t min,
                           size_t max) {
  std::vector<float> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    size_t used = 0;
    try {
      out.push_back(std::stof(item, &used));
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size())
      throw Error(flag + " '" + text + "': '" + item + "' is not a number");
  }
  if (out.size() < min || out.size() > max)
    throw Error(flag + " '" + text + "': expected " + std::to_string(min) +
                (min == max ? "" : " or " + std::to_string(max)) + " comma-separated numbers");
  return out;
}

models::Prompts prompts_of(const PredictArgs& a) {
  models::Prompts p;
  if (!a.points.empty()) {
    std::vector<float> xy;
    std::vector<int> labels;
    for (const std::string& text : a.points) {
      std::vector<float> v = numbers(text, "--point", 2, 3);
      xy.insert(xy.end(), {v[0], v[1]});
      labels.push_back(v.size() == 3 ? int(v[2]) : 1);
    }
    p.point_coords = at::tensor(xy).view({int64_t(labels.size()), 2});
    p.point_labels = at::tensor(labels, at::kInt);
  }
  if (!a.box.empty()) p.box = at::tensor(numbers(a.box, "--box", 4, 4));
  if (!p.box.defined() && !p.point_coords.defined())
    throw Error("predict: give --point and/or --box");
  return p;
}

models::Sam load_sam(const PredictArgs& a) {
  models::Sam sam = models::load_sam(a.checkpoint, a.model, "--student-model", a.decoder_from);
  sam->to(resolve_device(a.device));
  return sam;
}

// Prompts are in image pixels: one outside the image is a mistake, not a prompt.
void check_inside(const PredictArgs& a, const models::Prompts& p, int64_t height, int64_t width) {
  auto outside = [&](float x, float y) { return x < 0 || y < 0 || x > width || y > height; };
  const std::string size =
      std::to_string(width) + "x" + std::to_string(height) + " (WxH) image '" + a.image + "'";
  for (size_t i = 0; i < a.points.size(); ++i)
    if (outside(p.point_coords[int64_t(i)][0].item<float>(),
                p.point_coords[int64_t(i)][1].item<float>()))
      throw Error("--point " + a.points[i] + " lies outside the " + size);
  if (p.box.defined()) {
    const float x0 = p.box[0].item<float>(), y0 = p.box[1].item<float>(),
                x1 = p.box[2].item<float>(), y1 = p.box[3].item<float>();
    if (outside(x0, y0) || outside(x1, y1) || x1 < x0 || y1 < y0)
      throw Error("--box " + a.box + " is not x0,y0,x1,y1 with x0 <= x1 and y0 <= y1 inside the " +
                  size);
  }
}

// "mask.png" -> "mask_1.png" for the masks after the first of a multimask prediction.
std::string numbered(const std::string& path, int64_t i) {
  if (i == 0) return path;
  const size_t dot = path.rfind('.');
  const size_t slash = path.rfind('/');
  const bool ext = dot != std::string::npos && (slash == std::string::npos || dot > slash);
  return (ext ? path.substr(0, dot) : path) + "_" + std::to_string(i) +
         (ext ? path.substr(dot) : "");
}

void run_predict(const PredictArgs& a) {
  at::NoGradGuard no_grad;
  const models::Prompts prompts = prompts_of(a);
  const at::Tensor rgb = data::default_image_decoder()(read_file(a.image), a.image);
  check_inside(a, prompts, rgb.size(0), rgb.size(1));
  models::SamPredictor predictor(load_sam(a));
  models::AutocastScope autocast(a.amp, predictor.model()->device());
  predictor.set_image(data::resize_longest_side(rgb), {rgb.size(0), rgb.size(1)});
  models::Prediction p = predictor.predict(prompts, a.multimask);
  const at::Tensor masks = p.masks.cpu(), scores = p.iou_predictions.cpu();
  const int64_t best = scores.argmax().item<int64_t>();
  for (int64_t i = 0; i < masks.size(0); ++i) {
    const std::string path = numbered(a.out, i);
    eval::write_png(path, masks[i].to(at::kByte) * 255);
    std::cout << path << "  predicted IoU " << scores[i].item<float>() << "  area "
              << masks[i].sum().item<int64_t>() << " px"
              << (i == best && masks.size(0) > 1 ? "  (best)" : "") << "\n";
  }
  if (!a.overlay.empty()) {
    at::Tensor picture = eval::tint(rgb, masks[best], {30, 144, 255});
    eval::draw_prompt(picture, prompts);
    eval::write_png(a.overlay, picture);
    std::cout << a.overlay << "  the image with mask " << best << " and the prompts\n";
  }
}

}  // namespace

void add_predict_command(CLI::App& app, const Globals&) {
  auto given = std::make_shared<KeyFlags>();
  CLI::App* cmd = app.add_subcommand("predict",
                                     "Masks and predicted IoUs for point / box prompts on one "
                                     "image, as SAM's predictor gives them");
  add_key_flags(cmd, *given, predict_table().keys(),
                {{"student", {"--checkpoint", true}},
                 {"student_model", {"--model"}},
                 {"image", {"", true}},
                 {"point", {"", false, true}},
                 {"out", {"", true}}});
  cmd->callback([given] { run_predict(read_flags(*given, predict_table())); });
}

}  // namespace sd::cli
