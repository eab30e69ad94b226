#pragma once
#include <string>

namespace sd::train {

// Draws the loss of every step in `metrics_jsonl` (log scale; both axes titled, with ticks,
// values and grid lines at round numbers) into a PNG at `png_path`, atomically. Nothing is written
// when there are fewer than two finite losses.
void write_loss_plot(const std::string& metrics_jsonl, const std::string& png_path);

}  // namespace sd::train
