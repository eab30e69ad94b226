// `export --format onnx --web DIR`: the page runs both models in onnxruntime-web in headless
// Chromium (tests/onnx/node/web.js, puppeteer-core), served over http. A scripted click on an
// opened image draws the mask `predict` gives for that point, a shift-click (background point)
// after it the mask of both points, and a drag then the mask of the points and that box; the
// page logs no error.
#include <ATen/ATen.h>

#include <cstdio>
#include <regex>

#include "common/browser.h"
#include "common/pipeline.h"
#include "data/image.h"
#include "data/pil_resize.h"
#include "onnx/onnx_testing.h"
#include "util/png.h"

namespace sd {
namespace {

using namespace sd::testing;

std::string web_missing() {
  if (const std::string why = ort_missing(); !why.empty()) return why;
  if (!std::filesystem::exists(ort_runner_dir() + "/node_modules/onnxruntime-web") ||
      !std::filesystem::exists(ort_runner_dir() + "/node_modules/puppeteer-core"))
    return "onnxruntime-web or puppeteer-core is not installed (cd tests/onnx/node && npm ci "
           "--ignore-scripts)";
  if (chromium().empty()) return "no Chromium (Debian's `chromium`)";
  if (!data::image_decoding_available()) return "a build without image decoding";
  return "";
}

class OnnxWeb : public PipelineSuite {
 protected:
  static void SetUpTestSuite() {
    if (!fixtures_present()) return;
    make_folder("sd_onnx_web", 11);
  }
  // `samdistill predict` of the student for `points`; the mask (HxW bool) of the highest
  // predicted IoU among those it writes.
  static at::Tensor predicted_mask(const std::string& image, const std::string& points,
                                   bool multimask, const std::string& name) {
    const std::string out = dir() + "/" + name + ".png";
    const ProgramRun run =
        run_program("predict --student " + dir() + "/student.pth --student-model " + dir() +
                    "/student.json --decoder-from " + teacher().file("weights.pth") + " --image " +
                    image + " " + points + (multimask ? " --multimask" : "") + " --out " + out);
    EXPECT_EQ(run.status, 0) << run.output;
    std::string best = out;
    double best_iou = -1e9;
    const std::regex line("(\\S+\\.png)  predicted IoU (\\S+)");
    for (std::sregex_iterator it(run.output.begin(), run.output.end(), line), end; it != end; ++it)
      if (std::stod((*it)[2]) > best_iou) {
        best_iou = std::stod((*it)[2]);
        best = (*it)[1];
      }
    const at::Tensor rgb = data::default_image_decoder()(read_file(best), best);
    return rgb.select(2, 0) > 127;
  }
};

TEST_F(OnnxWeb, ThePageDrawsPredictsMaskForAClickInChromium) {
  if (const std::string why = web_missing(); !why.empty()) GTEST_SKIP() << why;
  // A photograph downscaled to 1100 px wide (so the page resizes it to 1024 as SAM does).
  const std::string photo = data_sample() + "/sa_100001.jpg";
  const at::Tensor full = data::default_image_decoder()(read_file(photo), photo);
  const int w = 1100, h = int(full.size(0) * w / full.size(1));
  const at::Tensor rgb = data::pil_resize_bilinear(full, h, w).contiguous();
  const std::string image = dir() + "/photo.png";
  write_file_atomic(image, encode_png_rgb(rgb.data_ptr<uint8_t>(), w, h));

  const std::string web = dir() + "/web";
  const ProgramRun exported =
      run_program("export --student " + dir() + "/student.pth --student-model " + dir() +
                  "/student.json --decoder-from " + teacher().file("weights.pth") +
                  " --format onnx --out " + dir() + "/onnx --web " + web + " --ort-web " +
                  ort_runner_dir() + "/node_modules/onnxruntime-web");
  ASSERT_EQ(exported.status, 0) << exported.output;

  const int x = 430, y = 300, bx = 700, by = 420;
  const std::vector<int> box{300, 200, 800, 560};
  std::string browser = run_command("command -v " + chromium()).output;
  browser.erase(browser.find_last_not_of(" \n") + 1);
  const std::string out = make_temp_dir("sd_web_run");
  const nlohmann::json job{{"dir", web},
                           {"image", image},
                           {"chromium", browser},
                           {"out_dir", out},
                           {"clicks",
                            {{{"x", x}, {"y", y}},
                             {{"x", bx}, {"y", by}, {"shift", true}},
                             {{"x", box[0]}, {"y", box[1]}, {"to", {box[2], box[3]}}}}}};
  write_file_atomic(out + "/job.json", job.dump());
  const ProgramRun run =
      run_command("node '" + ort_runner_dir() + "/web.js' '" + out + "/job.json'");
  ASSERT_EQ(run.status, 0) << run.output;
  const nlohmann::json result = nlohmann::json::parse(read_file(out + "/result.json"));
  for (const auto& message : result["console"])
    EXPECT_EQ(message.get<std::string>().rfind("warn", 0), 0u) << message;
  EXPECT_TRUE(result["requests_failed"].empty()) << result["requests_failed"];
  ASSERT_EQ(result["state"].size(), 3u) << result.dump();

  // After each action: the point, both points, both points and the box.
  const std::string one = "--point " + std::to_string(x) + "," + std::to_string(y);
  const std::string two = one + " --point " + std::to_string(bx) + "," + std::to_string(by) + ",0";
  const std::string boxed = two + " --box " + std::to_string(box[0]) + "," +
                            std::to_string(box[1]) + "," + std::to_string(box[2]) + "," +
                            std::to_string(box[3]);
  const std::vector<at::Tensor> expected{predicted_mask(image, one, true, "one"),
                                         predicted_mask(image, two, false, "two"),
                                         predicted_mask(image, boxed, false, "boxed")};
  for (size_t k = 0; k < 3; ++k) {
    const nlohmann::json& state = result["state"][k];
    ASSERT_TRUE(state["error"].is_null()) << state.dump();
    EXPECT_EQ(state["prompts"].size(), std::min<size_t>(k + 1, 2)) << state.dump();
    EXPECT_EQ(state["prompts"].back()["x"], k == 0 ? x : bx) << state.dump();
    EXPECT_EQ(state["prompts"].back()["label"], k == 0 ? 1 : 0) << state.dump();
    EXPECT_EQ(state["box"].is_null(), k < 2) << state.dump();
    if (k == 2) {
      EXPECT_EQ(state["box"]["x1"], box[2]) << state.dump();
    }
    const std::string bytes = read_file(out + "/mask" + std::to_string(k) + ".bin");
    ASSERT_EQ(bytes.size(), size_t(w) * h);
    const at::Tensor drawn =
        at::from_blob(const_cast<char*>(bytes.data()), {h, w}, at::kByte).clone() > 0;
    const at::Tensor& ours = expected[k];
    ASSERT_EQ(drawn.sizes(), ours.sizes());
    const double area = ours.sum().item<double>() / ours.numel();
    EXPECT_GT(area, 0.001) << "predict's mask is empty: the comparison would prove nothing";
    EXPECT_LT(area, 0.999) << "predict's mask is the whole image";
    const double iou = mask_iou(drawn, ours);
    EXPECT_GE(iou, 0.999) << "prompt " << k;
    std::printf(
        "[ web page, prompt set %zu ] mask %d, area %.3f, IoU with predict's %.6f, "
        "encoder %.0f ms, decoder %.0f ms\n",
        k + 1, state["mask"]["index"].get<int>(), area, iou,
        state["image"]["encoder_ms"].get<double>(), state["mask"]["ms"].get<double>());
  }
  std::filesystem::remove_all(out);
}

TEST_F(OnnxWeb, WithoutOnnxruntimeWebTheExportSaysHowToGetIt) {
  const std::string empty = make_temp_dir("sd_no_ort_web");
  const ProgramRun run =
      run_program_in(empty, "export --student " + dir() + "/student.pth --student-model " + dir() +
                                "/student.json --decoder-from " + teacher().file("weights.pth") +
                                " --format onnx --out " + empty + "/onnx --web " + empty + "/web");
  EXPECT_NE(run.status, 0);
  EXPECT_NE(run.output.find("npm install onnxruntime-web"), std::string::npos) << run.output;
  EXPECT_FALSE(std::filesystem::exists(empty + "/onnx/encoder.onnx"));  // refused before export
  std::filesystem::remove_all(empty);
}

}  // namespace
}  // namespace sd
