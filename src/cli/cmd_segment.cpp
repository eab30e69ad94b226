#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "segment/run.h"

namespace sd::cli {
namespace {

struct SegmentArgs {
  segment::SegmentRequest request;
  std::string format = "rle";
};

using io::any_value;
using io::field;

// segment's options, each once (the generator's own: segment::amg_config_table).
const io::ConfigTable<SegmentArgs>& segment_table() {
  using R = segment::SegmentRequest;
  static const io::ConfigTable<SegmentArgs> table = io::agreeing(
      io::ConfigTable<R>(
          {
              field("student", &R::student, "", any_value(),
                    "Full SAM checkpoint (mobile_sam.pt from export, SAM's vit_h/l/b), or a run "
                    "folder with one"),
              field("student_model", &R::student_model, "", any_value(),
                    "Its image encoder: preset or JSON config (default: what the weights hold)"),
          })
          .plus(data_fields<R>())
          .plus(subset_table().as_part_of(&R::subset).fields())
          .plus({
              field("max_images", &R::max_images, 0, io::non_negative(),
                    "The first N images of the selection (0: all)"),
              field("out", &R::out, "", any_value(),
                    "Output folder: <id>.json (COCO RLE records), <id>/ (PNG per mask, "
                    "metadata.csv), coco_results.json; images already there are skipped"),
              field("everything", &R::everything, false, any_value(),
                    "SAM's automatic mask generator (its parameters: the flags below)"),
              field("prompts", &R::prompts_file, "", any_value(),
                    "COCO detection results JSON (image_id or file_name, bbox XYWH, score, "
                    "category_id; optional point_coords, point_labels): one mask per record, in "
                    "batches of points_per_batch on one embedding per image"),
              field("multimask", &R::multimask, false, any_value(),
                    "--prompts: the best (predicted IoU) of three masks per prompt instead of "
                    "one"),
              field("overlay", &R::overlay, false, any_value(),
                    "Also <id>.overlay.png: every mask in colour on the image"),
              device_field(&R::device),
              amp_field(&R::amp),
              field("strict", &R::strict, false, any_value(),
                    "Stop with an error at the first bad image or record (default: skip it, "
                    "named)"),
          })
          .as_part_of(&SegmentArgs::request)
          .plus({
              field("format", &SegmentArgs::format, "rle", any_value(),
                    "rle (<id>.json as amg.py --convert-to-rle, and coco_results.json), png "
                    "(amg.py's folder per image), or both: rle,png"),
          }));
  return table;
}

// The command's flags and, apart, --config and the generator's keys.
struct SegmentFlags {
  KeyFlags given;
  RunConfigArgs amg;
};

void run_segment(const SegmentFlags& flags) {
  SegmentArgs a = read_flags(flags.given, segment_table());
  segment::SegmentRequest& r = a.request;
  segment::parse_formats(a.format, r);
  const auto& table = segment::amg_config_table();
  r.amg = table.read(effective_config(flags.amg, table.keys(), table.defaults()).values,
                     flags.amg.config.empty() ? "the command line" : flags.amg.config);
  const segment::SegmentSummary s = segment::run_segment(r);
  std::cout << "images        " << s.images << " segmented, " << s.skipped_done << " done before\n"
            << "masks         " << s.masks << "\n"
            << "time          " << s.seconds << " s\n"
            << "skipped       " << s.skipped.size() << "\n";
  for (const data::Skip& skip : s.skipped) std::cout << "  " << data::describe(skip) << "\n";
  std::cout << "out           " << r.out << "\n";
  if (!s.results.empty()) std::cout << "COCO results  " << s.results << "\n";
}

}  // namespace

void add_segment_command(CLI::App& app, const Globals&) {
  auto flags = std::make_shared<SegmentFlags>();
  CLI::App* cmd = app.add_subcommand(
      "segment",
      "Masks for every image of --data as SAM makes them: its automatic mask generator "
      "(--everything) or a detector's boxes (--prompts), in SAM's amg.py formats");
  add_key_flags(cmd, flags->given, segment_table().keys(),
                {{"student", {"--checkpoint", true}},
                 {"student_model", {"--model"}},
                 {"data", {"", true}},
                 {"out", {"", true}}});
  add_config_options(cmd, flags->amg, segment::amg_config_table().keys());
  cmd->callback([flags] { run_segment(*flags); });
}

}  // namespace sd::cli
