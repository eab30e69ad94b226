#include "eval/events.h"

#include <filesystem>

#include "eval/picture.h"
#include "io/tensorboard.h"
#include "util/atomic_file.h"

namespace fs = std::filesystem;

namespace sd::eval {
namespace {

// Width or height from a PNG's IHDR chunk (big-endian, at byte 16 or 20).
int64_t png_dimension(const std::string& png, size_t at) {
  if (png.size() < at + 4) return 0;
  int64_t v = 0;
  for (size_t i = at; i < at + 4; ++i) v = v << 8 | uint8_t(png[i]);
  return v;
}

}  // namespace

void write_eval_events(const EvalReport& report, const std::string& vis_dir,
                       const std::string& dir) {
  io::EventWriter events(dir);
  for (const auto& [kind, miou] : report.mean_by_kind(&PromptOutcome::iou))
    events.scalar("eval/miou/" + kind, 0, miou);
  if (vis_dir.empty()) return;
  for (const PromptOutcome& o : report.outcomes) {
    const fs::path file = fs::path(vis_dir) / picture_name(o);
    if (!fs::exists(file)) continue;
    const std::string png = read_file(file.string());
    events.image("eval/" + o.kind + "/" + o.image + "_" + std::to_string(o.annotation), 0, png,
                 png_dimension(png, 16), png_dimension(png, 20));
  }
}

}  // namespace sd::eval
