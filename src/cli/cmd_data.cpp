#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "cli/commands.h"
#include "cli/shared_options.h"
#include "data/dataset.h"
#include "data/image.h"
#include "data/stats.h"
#include "util/error.h"
#include "util/names.h"
#include "util/progress.h"

namespace sd::cli {
namespace {

struct StatsArgs {
  std::vector<std::string> data;
  std::string coco, images;
  data::SubsetSpec subset;
  bool strict = false;
  bool json = false;
};

void run_stats(const StatsArgs& args, const Globals& globals) {
  if (args.data.empty() && args.coco.empty())
    throw Error("data stats: give --data (image folders, SA-1B tars, COCO files)");
  std::vector<std::string> sources = args.data;
  if (!args.coco.empty()) sources.push_back(args.coco);
  std::vector<data::Skip> orphans;
  const data::Dataset dataset =
      data::Dataset::open(sources, args.images, &orphans).subset(args.subset);
  if (args.strict && !orphans.empty()) throw Error(data::describe(orphans.front()));
  if (dataset.size() == 0) throw Error("data stats: no images selected from --data");
  const int threads =
      globals.threads > 0 ? globals.threads : static_cast<int>(std::thread::hardware_concurrency());
  Progress progress("data stats", static_cast<int64_t>(dataset.size()));
  data::DataStats stats = data::compute_stats(
      dataset, data::default_image_decoder(), threads, args.strict,
      [&](size_t done, size_t) { progress.update(static_cast<int64_t>(done)); });
  progress.finish();
  stats.skipped.insert(stats.skipped.begin(), orphans.begin(), orphans.end());
  if (args.json) {
    std::cout << json_text(data::to_json(stats)) << "\n";
    return;
  }
  std::cout << "images       " << stats.images << "\n"
            << "annotations  " << stats.annotations << "\n"
            << "mask_pixels  " << stats.mask_pixels << "\n"
            << "skipped      " << stats.skipped.size() << "\n";
  for (const data::Skip& s : stats.skipped) std::cout << "  " << data::describe(s) << "\n";
}

}  // namespace

void add_data_command(CLI::App& app, const Globals& globals) {
  CLI::App* data = app.add_subcommand("data", "Inspect image data");
  data->require_subcommand(1);
  auto args = std::make_shared<StatsArgs>();
  CLI::App* stats = data->add_subcommand("stats",
                                         "Read every record as the loader does; count usable "
                                         "images, masks, mask pixels and skipped records");
  add_data_options(stats, args->data, args->images);
  stats->add_option("--coco", args->coco, "A COCO instance file (the same as giving it to --data)");
  add_subset_options(stats, args->subset);
  stats->add_flag("--strict", args->strict,
                  "Stop with an error at the first bad record (default: skip it, listed)");
  stats->add_flag("--json", args->json,
                  "Print a JSON object (images, annotations, mask_pixels, skipped)");
  stats->callback([args, &globals] { run_stats(*args, globals); });
}

}  // namespace sd::cli
