#include <iostream>
#include <memory>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "segment/run.h"

namespace sd::cli {
namespace {

struct SegmentArgs {
  segment::SegmentRequest request;
  RunConfigArgs amg;  // --config and the generator's keys
  std::string format = "rle";
};

void run_segment(SegmentArgs& a) {
  segment::SegmentRequest& r = a.request;
  segment::parse_formats(a.format, r);
  const auto& table = segment::amg_config_table();
  r.amg = table.read(effective_config(a.amg, table.keys(), table.defaults()).values,
                     a.amg.config.empty() ? "the command line" : a.amg.config);
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
  auto a = std::make_shared<SegmentArgs>();
  segment::SegmentRequest& r = a->request;
  CLI::App* cmd = app.add_subcommand(
      "segment",
      "Masks for every image of --data as SAM makes them: its automatic mask generator "
      "(--everything) or a detector's boxes (--prompts), in SAM's amg.py formats");
  cmd->add_option("--student,--checkpoint", r.student,
                  "Full SAM checkpoint (mobile_sam.pt from export, SAM's vit_h/l/b), or a run "
                  "folder with one")
      ->required();
  cmd->add_option("--student-model,--model", r.student_model,
                  "Its image encoder: preset or JSON config (default: what the weights hold)");
  add_data_options(cmd, r.data, r.images)->required();
  add_subset_options(cmd, r.subset);
  cmd->add_option("--max-images", r.max_images, "The first N images of the selection (0: all)")
      ->capture_default_str();
  cmd->add_option("--out", r.out,
                  "Output folder: <id>.json (COCO RLE records), <id>/ (PNG per mask, "
                  "metadata.csv), coco_results.json; images already there are skipped")
      ->required();
  cmd->add_flag("--everything", r.everything,
                "SAM's automatic mask generator (its parameters: the flags below)");
  cmd->add_option("--prompts", r.prompts_file,
                  "COCO detection results JSON (image_id or file_name, bbox XYWH, score, "
                  "category_id; optional point_coords, point_labels): one mask per record, in "
                  "batches of points_per_batch on one embedding per image");
  cmd->add_flag("--multimask", r.multimask,
                "--prompts: the best (predicted IoU) of three masks per prompt instead of one");
  cmd->add_option("--format", a->format,
                  "rle (<id>.json as amg.py --convert-to-rle, and coco_results.json), png "
                  "(amg.py's folder per image), or both: rle,png")
      ->capture_default_str();
  cmd->add_flag("--overlay", r.overlay, "Also <id>.overlay.png: every mask in colour on the image");
  cmd->add_option("--device", r.device, "cpu, cuda or auto (cuda when present)")
      ->capture_default_str();
  add_amp_option(cmd, r.amp);
  cmd->add_flag("--strict", r.strict,
                "Stop with an error at the first bad image or record (default: skip it, named)");
  add_config_options(cmd, a->amg, segment::amg_config_table().keys());
  cmd->callback([a] { run_segment(*a); });
}

}  // namespace sd::cli
