#include "cli/app.h"

#include <algorithm>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "data/image.h"
#include "util/error.h"
#include "util/log.h"
#include "util/stop_signal.h"
#include "util/text.h"
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

// Edits (insert, delete, replace, swap of neighbours) that turn `a` into `b`.
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i)
    for (size_t j = 1; j <= b.size(); ++j) {
      d[i][j] = std::min(
          {d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  return d[a.size()][b.size()];
}

// The name among `names` nearest to `given`, when near enough to be a typing mistake.
std::string nearest(const std::string& given, const std::vector<std::string>& names) {
  std::string best;
  size_t best_distance = std::max<size_t>(2, given.size() / 3) + 1;
  for (const std::string& name : names) {
    const size_t d = edit_distance(given, name);
    const bool prefix = given.size() >= 3 && starts_with(name, given);
    if (d < best_distance || (prefix && best.empty())) {
      best = name;
      best_distance = d;
    }
  }
  return best;
}

// "--out_dir=x" -> "--out-dir=x": every config key (student_model) is also a flag
// (--student-model), so a flag may be spelt as the key.
void dashes_for_underscores(int argc, char** argv, std::vector<std::string>& storage) {
  storage.assign(argv, argv + argc);
  for (int i = 1; i < argc; ++i) {
    std::string& arg = storage[size_t(i)];
    if (arg == "--") break;
    if (!starts_with(arg, "--")) continue;
    std::replace(arg.begin(), arg.begin() + std::min(arg.find('='), arg.size()), '_', '-');
    argv[i] = storage[size_t(i)].data();
  }
}

// The flags and subcommands `command` takes, with those of the commands above it (the
// global ones are taken after a subcommand too).
void names_of(const CLI::App* command, std::vector<std::string>& flags,
              std::vector<std::string>& subcommands) {
  for (; command; command = command->get_parent()) {
    for (const CLI::Option* o : command->get_options())
      for (const std::string& name : o->get_lnames()) flags.push_back("--" + name);
    if (subcommands.empty() && command->get_subcommands().empty())  // the deepest command's
      for (const CLI::App* sub : command->get_subcommands({}))
        subcommands.push_back(sub->get_name());
  }
}

// The words of the command line that the parser did not take, each with the nearest flag or
// subcommand it may have meant; "" when there is none.
std::string mistakes_explained(const CLI::App& app) {
  const CLI::App* command = &app;
  for (const CLI::App* sub = &app; sub;) {
    command = sub;
    const std::vector<CLI::App*> parsed = sub->get_subcommands();
    sub = parsed.empty() ? nullptr : parsed.front();
  }
  std::vector<std::string> flags, subcommands;
  names_of(command, flags, subcommands);
  std::string out;
  for (const std::string& word : app.remaining(true)) {
    if (word == "--") break;
    const bool flag = starts_with(word, "-");
    const std::string name = flag ? word.substr(0, word.find('=')) : word;
    if (!flag && subcommands.empty()) continue;  // a stray value
    const std::string guess = nearest(name, flag ? flags : subcommands);
    const std::string what = flag ? "option" : "command";
    out += "unknown " + what + " '" + name + "' for " +
           (command->get_parent() ? command->get_name() : std::string("samdistill")) +
           (guess.empty() ? "" : ": did you mean '" + guess + "'?") + "\n";
  }
  return out;
}

// "rank 2: " before a message of one of several processes, which may each say the same.
std::string rank_prefix(const distributed::World& world) {
  return world.distributed() ? "rank " + std::to_string(world.rank) + ": " : "";
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
    globals.world = distributed::world_from_environment();
    distributed::use_local_gpu(globals.world);
    if (!globals.world.writes() && !globals.verbose) log::set_min_level(log::Level::warn);
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    configure_threads(globals.threads > 0
                          ? globals.threads
                          : distributed::worker_threads(cores, globals.world.local_size));
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

  std::vector<std::string> args;
  dashes_for_underscores(argc, argv, args);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const std::string explained = e.get_exit_code() == 0 ? "" : mistakes_explained(app);
    if (explained.empty()) return app.exit(e);
    std::cerr << explained << "Run with --help for more information.\n";
    return e.get_exit_code();
  } catch (const ExitStatus& e) {
    return e.status;
  } catch (const Stopped& e) {  // the work is saved; the message says how to continue
    log::warn(rank_prefix(globals.world) + e.what());
    return 128 + e.signal();
  } catch (const Error& e) {
    log::error(rank_prefix(globals.world) + e.what());
    return 1;
  } catch (const std::exception& e) {
    log::error(rank_prefix(globals.world) + "unexpected failure: " + e.what());
    return 2;
  }
  return 0;
}

}  // namespace sd::cli
