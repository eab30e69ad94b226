#pragma once
#include <set>
#include <string>

#include "eval/report.h"

// A page to look at an evaluation in a browser: one HTML file with its styles, script and
// histograms inline (no network, no external scripts), the pictures in pictures/ next to it.
namespace sd::eval {

// The page: the summary (mIoU per prompt kind and per image-size bucket, images, prompts,
// seconds), a histogram of the per-prompt IoU of each kind, and one row per image and prompt,
// worst IoU first, sortable by clicking a column and filtered by kind. `pictures`: the
// picture_name()s present in pictures/. The address's #sort=KEY (or #sort=-KEY, descending)
// sorts on load; the page then says what it did in #state ("sorted:iou first:<row id>").
std::string report_html(const EvalReport& report, const std::set<std::string>& pictures,
                        const std::string& title);

// Writes DIR/index.html, with the --vis pictures of the outcomes found in `vis_dir` copied to
// DIR/pictures (unless vis_dir is DIR/pictures; no pictures/ when vis_dir is ""). sd::Error
// naming the file it cannot write.
void write_report_html(const EvalReport& report, const std::string& dir, const std::string& vis_dir,
                       const std::string& title);

}  // namespace sd::eval
