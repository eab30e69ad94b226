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

// data stats' options, each once.
const io::ConfigTable<StatsArgs>& stats_table() {
  using S = StatsArgs;
  static const io::ConfigTable<S> table = io::agreeing(
      io::ConfigTable<S>(data_fields<S>())
          .plus({io::field("coco", &S::coco, "", io::any_value(),
                           "A COCO instance file (the same as giving it to --data)")})
          .plus(subset_table().as_part_of(&S::subset).fields())
          .plus({
              io::field("strict", &S::strict, false, io::any_value(),
                        "Stop with an error at the first bad record (default: skip it, listed)"),
              io::field("json", &S::json, false, io::any_value(),
                        "Print a JSON object (images, annotations, mask_pixels, skipped)"),
          }));
  return table;
}

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
  auto given = std::make_shared<KeyFlags>();
  CLI::App* stats = data->add_subcommand("stats",
                                         "Read every record as the loader does; count usable "
                                         "images, masks, mask pixels and skipped records");
  add_key_flags(stats, *given, stats_table().keys());
  stats->callback([given, &globals] { run_stats(read_flags(*given, stats_table()), globals); });
}

}  // namespace sd::cli
