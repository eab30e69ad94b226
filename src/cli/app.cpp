#include "cli/app.h"

#include <iostream>
#include <thread>

#include "cli/commands.h"
#include "data/image.h"
#include "util/error.h"
#include "util/log.h"
#include "util/stop_signal.h"
#include "util/threads.h"

#ifdef SAMDISTILL_WITH_SPDLOG
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#endif

namespace sd::cli {
namespace {

// Logs on stderr (spdlog's default logger writes to stdout), so that results on stdout, a
// --json object above all, parse as they come.
void route_logs_to_spdlog() {
#ifdef SAMDISTILL_WITH_SPDLOG
  spdlog::set_default_logger(std::make_shared<spdlog::logger>(
      "", std::make_shared<spdlog::sinks::stderr_color_sink_mt>()));
  log::set_sink([](log::Level level, const std::string& message) {
    switch (level) {
      case log::Level::debug:
        spdlog::debug(message);
        break;
      case log::Level::info:
        spdlog::info(message);
        break;
      case log::Level::warn:
        spdlog::warn(message);
        break;
      case log::Level::error:
        spdlog::error(message);
        break;
    }
  });
#endif
}

}  // namespace

int run(int argc, char** argv) {
  CLI::App app{"samdistill: distil SAM into MobileSAM-class students (LibTorch)"};
  app.require_subcommand(1);
  app.fallthrough();  // --threads and --verbose before or after the subcommand alike
  Globals globals;
  app.add_option("--threads", globals.threads, "CPU threads (0: all cores)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("-v,--verbose", globals.verbose, "Log debug messages");
  int64_t max_pixels = 0;
  app.add_option("--max-image-pixels", max_pixels,
                 "The most pixels an image (its header, or its record's size) may declare; "
                 "larger ones are skipped, named (default: $SAMDISTILL_MAX_IMAGE_PIXELS, else "
                 "100000000)")
      ->check(CLI::PositiveNumber);
  app.add_option("--dist-timeout", globals.dist_timeout_s,
                 "Seconds a rank of a multi-process run waits for the others (rendezvous, "
                 "collectives) before it stops with an error")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  app.parse_complete_callback([&] {
    route_logs_to_spdlog();
    data::set_max_image_pixels(max_pixels);
#ifdef SAMDISTILL_WITH_SPDLOG
    if (globals.verbose) spdlog::set_level(spdlog::level::debug);
#endif
    if (globals.verbose) log::set_min_level(log::Level::debug);
    globals.world = dist::world_from_environment();
    dist::use_local_gpu(globals.world);
    if (!globals.world.writes() && !globals.verbose) log::set_min_level(log::Level::warn);
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    configure_threads(globals.threads > 0 ? globals.threads
                                          : dist::worker_threads(cores, globals.world.local_size));
  });

  add_checkpoint_command(app, globals);
  add_embed_command(app, globals);
  add_store_command(app, globals);
  add_data_command(app, globals);
  add_train_command(app, globals);
  add_export_command(app, globals);
  add_bench_command(app, globals);
  add_eval_command(app, globals);
  add_demo_command(app, globals);
  add_predict_command(app, globals);
  add_segment_command(app, globals);
  add_finetune_command(app, globals);
  add_launch_command(app, globals);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const ExitStatus& e) {
    return e.status;
  } catch (const Stopped& e) {  // the work is saved; the message says how to continue
    log::warn(e.what());
    return 128 + e.signal();
  } catch (const Error& e) {
    log::error(e.what());
    return 1;
  } catch (const std::exception& e) {
    log::error(std::string("unexpected failure: ") + e.what());
    return 2;
  }
  return 0;
}

}  // namespace sd::cli
