#include <filesystem>
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
#include "util/progress.h"

namespace fs = std::filesystem;

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
    throw Error("data stats: give --data (SA-1B folders) or --coco (a COCO file)");
  std::vector<data::Skip> orphans;
  const std::string image_dir =
      args.images.empty() ? fs::path(args.coco).parent_path().string() : args.images;
  const data::Dataset dataset = (args.coco.empty() ? data::Dataset::index_sa1b(args.data, &orphans)
                                                   : data::Dataset::from_coco(args.coco, image_dir))
                                    .subset(args.subset);
  if (args.strict && !orphans.empty()) throw Error(data::describe(orphans.front()));
  const int threads =
      globals.threads > 0 ? globals.threads : static_cast<int>(std::thread::hardware_concurrency());
  Progress progress("data stats", static_cast<int64_t>(dataset.size()));
  data::DataStats stats = data::compute_stats(dataset, data::default_image_decoder(), threads,
                                              args.strict, [&](size_t done, size_t total) {
                                                if (done < total)
                                                  progress.update(static_cast<int64_t>(done));
                                              });
  progress.finish();
  stats.skipped.insert(stats.skipped.begin(), orphans.begin(), orphans.end());
  if (args.json) {
    std::cout << data::to_json(stats).dump(2) << "\n";
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
  CLI::App* data = app.add_subcommand("data", "Inspect SA-1B data");
  data->require_subcommand(1);
  auto args = std::make_shared<StatsArgs>();
  CLI::App* stats = data->add_subcommand("stats",
                                         "Read every record as the loader does; count usable "
                                         "images, masks, mask pixels and skipped records");
  auto* folders =
      stats
          ->add_option("--data", args->data,
                       "SA-1B folder(s) of sa_<id>.jpg + sa_<id>.json (space- or comma-separated)")
          ->delimiter(',');
  auto* coco = stats->add_option("--coco", args->coco,
                                 "A COCO instance file (polygons or RLE) instead of SA-1B folders");
  stats
      ->add_option("--images", args->images,
                   "Folder of the COCO file's images (default: the file's folder)")
      ->needs(coco);
  folders->excludes(coco);
  add_subset_options(stats, args->subset);
  stats->add_flag("--strict", args->strict,
                  "Stop with an error at the first bad record (default: skip it, listed)");
  stats->add_flag("--json", args->json,
                  "Print a JSON object (images, annotations, mask_pixels, skipped)");
  stats->callback([args, &globals] { run_stats(*args, globals); });
}

}  // namespace sd::cli
