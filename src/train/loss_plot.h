#pragma once
#include <string>

namespace sd::train {

// Draws the loss of every step in `metrics_jsonl` (log scale; min and max loss and the
// last step written on the axes) into a PNG at `png_path`, atomically. Nothing is written
// when there are fewer than two finite losses.
void write_loss_plot(const std::string& metrics_jsonl, const std::string& png_path);

}  // namespace sd::train
